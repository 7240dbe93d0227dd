"""Graph-to-graph rewrites that never change what a graph computes."""
from compiler.ir import Graph
from compiler.passes.cse import cse
from compiler.passes.dce import dce
from compiler.passes.simplify import simplify


def optimize(graph: Graph) -> Graph:
    """The standard pipeline: merge duplicates, simplify, drop dead code, to a fixpoint."""
    for _ in range(8):
        changed = cse(graph) | simplify(graph)
        changed |= dce(graph)
        if not changed:
            break
    return graph


__all__ = ["cse", "dce", "simplify", "optimize"]

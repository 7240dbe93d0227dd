"""Graph-to-graph rewrites that never change what a graph computes."""
from compiler.ir import Graph
from compiler.passes.cse import cse
from compiler.passes.dce import dce
from compiler.passes.simplify import column_sums_as_products, simplify, spell_divisions


def optimize(graph: Graph) -> Graph:
    """The standard pipeline: merge duplicates, simplify, drop dead code, to a fixpoint;
    then spell multiplications by exact reciprocals as divisions (`x / 32`) and
    compute column sums as matrix-vector products (`ones @ g`).

    A round in which simplify and dce change nothing ends it even when cse merged
    something: cse is idempotent (one pass in topological order also merges what its
    own merges make equal), so another round would change nothing either. That
    saves a full cse pass over the graph per compile. The graph records its changes
    meanwhile, so that the later rounds simplify only near them."""
    graph.changes = []
    try:
        for k in range(8):
            cse(graph)
            changed = simplify(graph, near_changes=k > 0)  # later rounds: only near what changed
            changed |= dce(graph)
            if not changed:
                break
    finally:
        graph.changes = None
    spell_divisions(graph)
    column_sums_as_products(graph)
    return graph


__all__ = ["cse", "dce", "simplify", "spell_divisions", "column_sums_as_products", "optimize"]

"""Dead-code elimination: drop nodes no output depends on (inputs always stay)."""
from compiler.ir import Graph


def dce(graph: Graph) -> bool:
    # one walk from all outputs at once: a walk per output is quadratic when a
    # graph has many outputs (one gradient per parameter)
    live = graph.ancestors(graph.outputs) | set(graph.inputs)
    dead = [i for i in graph.dag.nodes if i not in live]
    if dead:
        graph.dag.remove_nodes_from(dead)
    return bool(dead)

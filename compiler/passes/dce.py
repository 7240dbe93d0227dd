"""Dead-code elimination: drop nodes no output depends on. Inputs always stay, and so
do effectful nodes (random draws): dropping an unused draw would shift every later
draw of the same Generator, so compiled code would no longer draw what NumPy draws."""
from compiler.ir import Graph
from compiler.primitives import registry


def dce(graph: Graph) -> bool:
    # one walk from all roots at once: a walk per output is quadratic when a graph
    # has many outputs (one gradient per parameter)
    effectful = registry.effectful_ops()
    effects = [i for i, data in graph.dag.nodes(data="node") if data.op in effectful]
    live = graph.ancestors(list(graph.outputs) + effects) | set(graph.inputs)
    dead = [i for i in graph.dag.nodes if i not in live]
    if dead:
        graph.dag.remove_nodes_from(dead)
    return bool(dead)

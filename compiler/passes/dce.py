"""Dead-code elimination: drop nodes no output depends on. Inputs always stay, and so
do effectful nodes (random draws): dropping an unused draw would shift every later
draw of the same Generator, so compiled code would no longer draw what NumPy draws."""
from compiler.ir import Graph
from compiler.primitives import registry


def effects(graph: Graph) -> list[int]:
    """The effectful nodes (random draws): kept and kept in order like outputs."""
    effectful = registry.effectful_ops()
    return [i for i, node in graph.dag.nodes(data="node") if node.op in effectful]


def dce(graph: Graph) -> bool:
    # one walk from all roots at once: a walk per output is quadratic when a graph
    # has many outputs (one gradient per parameter)
    live = graph.ancestors(list(graph.outputs) + effects(graph)) | set(graph.inputs)
    dead = [i for i in graph.dag.nodes if i not in live]
    if dead:
        graph.remove_all(dead)
    return bool(dead)

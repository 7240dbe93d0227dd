"""Dead-code elimination: drop nodes no output depends on (inputs always stay)."""
import networkx as nx

from compiler.ir import Graph


def dce(graph: Graph) -> bool:
    live = set(graph.inputs) | set(graph.outputs)
    for out in graph.outputs:
        live |= nx.ancestors(graph.dag, out)
    dead = [i for i in graph.dag.nodes if i not in live]
    graph.dag.remove_nodes_from(dead)
    return bool(dead)

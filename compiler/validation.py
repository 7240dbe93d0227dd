"""The graph validator: single assignment, definition before use, operands that
agree with edges, and every node's shape and dtype equal to what its primitive's rule
says. Every compile path runs it after optimizing (compiler/lowering.py)."""
from __future__ import annotations

import networkx as nx

from compiler.ir import Graph
from compiler.primitives import registry


def validate(graph: Graph) -> None:
    """Check single assignment, definition before use, operand/edge agreement, and
    that every node's shape and dtype equal what its primitive's rule says."""
    try:
        nodes = graph.nodes()
    except nx.NetworkXUnfeasible:
        raise AssertionError("graph has a cycle") from None
    order = {n.id: k for k, n in enumerate(nodes)}
    assert len(order) == graph.dag.number_of_nodes(), "node ids are not unique"
    pred, data = graph.dag._pred, graph.dag._node
    inputs = set(graph.inputs)
    for node in nodes:
        assert node.id == data[node.id]["node"].id, f"node %{node.id} stored under another id"
        assert pred[node.id].keys() == set(node.inputs), f"edges of %{node.id} disagree with its operands"
        k = order[node.id]
        for i in node.inputs:
            assert i in order and order[i] < k, f"%{node.id} uses %{i} before it is defined"
        if node.is_input:
            assert node.id in inputs, f"input node %{node.id} is not a graph input"
            continue
        if node.is_const:
            continue
        expected = registry.get(node.op).abstract(*(data[i]["node"].aval for i in node.inputs), **node.params)
        assert expected == node.aval, f"%{node.id} = {node.op}: recorded {node.aval}, rule gives {expected}"
    for i in graph.outputs:
        assert i in order, f"output %{i} is not in the graph"

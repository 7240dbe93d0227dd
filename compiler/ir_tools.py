"""Reading a graph: the printer behind `print(graph)` and the validator.

These need the primitive table, which itself needs `compiler.ir`, so they live
beside the IR rather than in it.
"""
from __future__ import annotations

import networkx as nx

from compiler.ir import Graph, Node
from compiler.primitives import registry


def _label(graph: Graph, i: int) -> str:
    node = graph.node(i)
    if node.op == "const" and node.aval.weak:
        return repr(node.params["value"])
    return f"%{i}" + (f":{node.name}" if node.name else "")


def _params(node: Node) -> str:
    shown = {k: v for k, v in node.params.items() if k not in ("value", "ndim")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def format_graph(graph: Graph) -> str:
    """One line per value: name, dtype[shape], op, operands, params, file:line."""
    lines = []
    for node in graph.nodes():
        if node.op == "const" and node.aval.weak:
            continue
        target = _label(graph, node.id)
        if node.cotangent_of is not None:
            target += f" (grad of %{node.cotangent_of})"
        operands = ", ".join(_label(graph, i) for i in node.inputs)
        params = _params(node)
        call = f"{node.op}({operands}{', ' if operands and params else ''}{params})"
        where = f"  # {node.loc}" if node.loc is not None else ""
        lines.append(f"{target}: {node.aval} = {call}{where}")
    outs = ", ".join(_label(graph, i) for i in graph.outputs)
    lines.append(f"return {outs}")
    return "\n".join(lines)


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
        if node.op == "input":
            assert node.id in inputs, f"input node %{node.id} is not a graph input"
            continue
        if node.op == "const":
            continue
        expected = registry.get(node.op).abstract(*(data[i]["node"].aval for i in node.inputs), **node.params)
        assert expected == node.aval, f"%{node.id} = {node.op}: recorded {node.aval}, rule gives {expected}"
    for i in graph.outputs:
        assert i in order, f"output %{i} is not in the graph"

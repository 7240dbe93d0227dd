"""The graph validator: single assignment, definition before use, operands that
agree with edges, and every node's shape and dtype equal to what its primitive's rule
says. Every compile path runs it after optimizing (compiler/lowering.py)."""
from __future__ import annotations

from typing import Any, Optional

import networkx as nx
import numpy as np

from compiler.ir import Aval, Graph
from compiler.primitives import registry

# parameter values a remembered shape rule may be keyed on: hashable, compared by
# value, and holding nothing large or of the user's alive (no arrays, no functions)
_PLAIN = (bool, int, float, complex, str, type(None), np.dtype)
_CACHE_SIZE = 4096
_ABSTRACT: dict[Any, Aval] = {}


def abstract(op: str, avals: tuple[Aval, ...], params: dict[str, Any]) -> Aval:
    """`registry.get(op).abstract(*avals, **params)`, remembered per distinct
    (op, avals, params): a program repeats a few such calls many times (every
    `sin` of a float64[64]), and a rule such as NumPy's broadcasting costs far more
    than the lookup. Rules are pure; one that raises is not remembered."""
    key = _key(op, avals, params)
    aval = _ABSTRACT.get(key) if key is not None else None
    if aval is None:
        aval = registry.get(op).abstract(*avals, **params)
        if key is not None:
            if len(_ABSTRACT) >= _CACHE_SIZE:
                _ABSTRACT.clear()
            _ABSTRACT[key] = aval
    return aval


def _key(op: str, avals: tuple[Aval, ...], params: dict[str, Any]) -> Optional[tuple]:
    """A key that tells apart whatever a rule could (the classes of values too:
    `1`, `1.0` and `True` are equal), or None when a value is not plain."""
    items = []
    for name, value in params.items():
        classes = _classes(value)
        if classes is None:
            return None
        items.append((name, classes, value))
    return (op, avals, tuple(items))


def _classes(value: Any) -> Any:
    """The class of a plain value (of each item, for a tuple), or None."""
    if type(value) is tuple:
        classes = tuple(_classes(v) for v in value)
        return None if None in classes else classes
    return value.__class__ if isinstance(value, _PLAIN) else None


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
        expected = abstract(node.op, tuple(data[i]["node"].aval for i in node.inputs), node.params)
        assert expected == node.aval, f"%{node.id} = {node.op}: recorded {node.aval}, rule gives {expected}"
    for i in graph.outputs:
        assert i in order, f"output %{i} is not in the graph"

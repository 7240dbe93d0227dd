"""Common-subexpression elimination: one node per distinct (op, operands, params)."""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from compiler.ir import Graph, Node
from compiler.passes.rewrite import can_replace, replace


def _freeze(value: Any) -> Hashable:
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes()) if value.size <= 64 else ("array-id", id(value))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, float):
        return ("float", value.hex())  # keeps 0.0 and -0.0 apart; every nan alike
    return (type(value).__name__, value)


def key(node: Node) -> Hashable:
    return (node.op, node.inputs, _freeze(node.params), node.aval)


def cse(graph: Graph) -> bool:
    seen: dict[Hashable, int] = {}
    changed = False
    for node in graph.nodes():
        if node.op == "input":
            continue
        k = key(node)
        if k in seen and can_replace(graph, node.id, seen[k]):
            replace(graph, node.id, seen[k])
            changed = True
        else:
            seen.setdefault(k, node.id)
    return changed

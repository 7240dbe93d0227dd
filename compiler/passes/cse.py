"""Common-subexpression elimination: one node per distinct (op, operands, params)."""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from compiler.ir import Graph, Node
from compiler.passes.rewrite import can_replace, replace
from compiler.primitives import registry


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
    if node.is_const and node.params.get("captured"):
        return (node.kind, "captured", id(node.params["value"]), node.aval)  # the user's own array
    return (node.kind, node.op, node.inputs, _freeze(node.params) if node.params else (), node.aval)


def _mergeable(node: Node) -> bool:
    """Inputs are distinct by definition; an `effectful` primitive (a random draw)
    is never merged with an equal-looking one."""
    if node.is_input:
        return False
    return node.is_const or not registry.get(node.op).effectful


def cse(graph: Graph) -> bool:
    """One pass in topological order: each node whose key was seen before becomes
    the first node with that key (a dict lookup per node, so linear overall)."""
    seen: dict[Hashable, int] = {}
    changed = False
    for node in graph.nodes():
        if not _mergeable(node):
            continue
        k = key(node)
        if k in seen and can_replace(graph, node.id, seen[k]):
            replace(graph, node.id, seen[k])
            changed = True
        else:
            seen.setdefault(k, node.id)
    return changed

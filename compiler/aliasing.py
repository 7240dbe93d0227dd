"""Which values may share memory: the one view analysis the reverse transform, the
passes, the memory plan and the compile paths all ask.

A primitive marked `view` in the registry (reshape, transpose, basic indexing,
broadcast_to) may return a view of its first operand; integer-array indexing copies.
"""
from __future__ import annotations

from compiler.ir import Graph, Node
from compiler.primitives import registry


def is_view(node: Node) -> bool:
    """Whether `node`'s value may be a view of its first operand."""
    if node.op is None:  # an input or a constant
        return False
    view = registry.get(node.op).view
    if callable(view):
        return view(node)
    return view and not (node.op == "getitem" and len(node.inputs) > 1)  # integer-array indexing copies


def view_source(graph: Graph, i: int) -> Node:
    """The node whose memory `i` may share: `i` itself unless it is a view."""
    node = graph.node(i)
    while is_view(node):
        node = graph.node(node.inputs[0])
    return node


def aliases_argument(graph: Graph, i: int) -> bool:
    """Whether the value of node `i` may share memory with a graph input or a bound
    constant, or be a read-only broadcast view: then it cannot be handed out as a
    fresh result."""
    node = graph.node(i)
    while True:
        if not node.is_call or node.op == "broadcast_to":
            return True
        if not is_view(node):
            return False
        node = graph.node(node.inputs[0])


def views_of(graph: Graph, i: int) -> set[int]:
    """`i` and every value that may share its memory (views of views)."""
    out, pending = set(), [i]
    while pending:
        j = pending.pop()
        if j in out:
            continue
        out.add(j)
        pending.extend(u for u in graph.users(j) if graph.node(u).inputs[0] == j and is_view(graph.node(u)))
    return out

"""The one lowering pipeline every compile path uses: optimize the graph, check it,
and generate its NumPy function.

`grad`, `value_and_grad`, `jit`, `compile_step` and a step's `predict` build their
graphs differently, then all lower them here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from compiler.aliasing import aliases_argument, view_source
from compiler.codegen import Generated, flat_ids, generate
from compiler.config import debug_nans_enabled
from compiler.ir import Graph
from compiler.validation import validate
from compiler.passes import dce, optimize

OutTree = Any  # a node id, or nested tuples of node ids


@dataclass
class Lowered:
    """The generated function, and what it returns in terms of the optimized graph."""

    generated: Generated
    out_tree: OutTree
    updates: list[tuple[int, int]]


def lower(graph: Graph, fn_name: str, out_tree: OutTree, updates: Optional[list[tuple[int, int]]] = None,
          before_codegen: Optional[Callable[[Graph, OutTree], None]] = None, workspace: bool = False) -> Lowered:
    """Optimize `graph` for the values in `out_tree` and the in-place `updates`
    ((buffer input, node) pairs), validate it, and generate `fn_name`.
    `before_codegen(graph, out_tree)` may adjust names on the optimized graph; with
    `workspace`, large intermediate values go into arrays the function keeps."""
    updates = list(updates or [])
    flat = flat_ids(out_tree)
    graph.outputs = flat + [node for _, node in updates]
    optimize(graph)
    _fresh_outputs(graph, len(flat))
    validate(graph)
    final = list(graph.outputs)
    out_tree = _refill(out_tree, iter(final[: len(flat)]))
    updates = [(buffer, node) for (buffer, _), node in zip(updates, final[len(flat):])
               if not _unchanged(graph, buffer, node)]
    if len(flat) + len(updates) < len(final):  # drop what only the no-op writes read
        graph.outputs = final[: len(flat)] + [node for _, node in updates]
        dce(graph)
    if before_codegen is not None:
        before_codegen(graph, out_tree)
    generated = generate(graph, fn_name, out_tree, updates=updates, debug_nans=debug_nans_enabled(),
                         workspace=workspace)
    return Lowered(generated, out_tree, updates)


def _unchanged(graph: Graph, buffer: int, node: int) -> bool:
    """Whether an update writes the buffer's own value back (a parameter whose gradient
    is zero under plain SGD: `W - lr * 0` simplifies to a copy of W)."""
    value = graph.node(node)
    return node == buffer or (value.op == "copy" and value.inputs[0] == buffer)


def _fresh_outputs(graph: Graph, returned: int) -> None:
    """Every returned value is a fresh array: a caller may write into each result, so
    none may be an argument, a view of one, a bound constant or another result.
    Rewrites keep this for the node they replace; this catches the case where an
    output became a view of an argument because a node it reads was simplified."""
    outputs = list(graph.outputs)
    seen: set[int] = set()  # the memory (view sources) of the results so far
    for k in range(returned):
        i = outputs[k]
        if aliases_argument(graph, i) or view_source(graph, i).id in seen:
            node = graph.node(i)
            copy = graph.add("copy", (i,), {}, node.aval, loc=node.loc, grad_of=node.grad_of)
            if node.is_call:
                fresh = graph.node(copy)
                fresh.name, fresh.cotangent_of, fresh.tangent_of = node.name, node.cotangent_of, node.tangent_of
                node.name = node.cotangent_of = node.tangent_of = None
            outputs[k] = i = copy
        seen.add(view_source(graph, i).id)
    graph.outputs = outputs


def _refill(out_tree: OutTree, ids) -> OutTree:
    if isinstance(out_tree, tuple):
        return tuple(_refill(t, ids) for t in out_tree)
    return next(ids)

"""The forward-mode transform: tangent nodes beside a graph's nodes, built only from
the primitives' JVP rules (the lecture's dual numbers: each value carries its
tangent, computed from its operands' values and tangents).

Walking the graph in topological order, a node whose operands carry a tangent gets
one from its primitive's rule; a path from no seed carries the symbolic zero None,
and nothing is computed for it. A rule may return a tangent at a shape that
broadcasts to its primal's (a lanewise rule with one broadcast operand); it is
broadcast to the primal's shape, and cast to its dtype, here. Tangents are named
after their primals (`t_h` for `h`) by codegen.

Where a primitive has no rule of its own, `jvp_rule` derives one: a `linear`
primitive applied to its first operand's tangent, or, for a `lanewise` one, its
VJP rule applied to each operand's tangent (a lanewise primitive's Jacobian is
diagonal, so it is its own transpose). Primitives with neither are refused.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import UnsupportedError
from compiler.ir import Graph, Node
from compiler.primitives import registry
from compiler.primitives.registry import Primitive
from compiler.tracing import Tracer, bind, rule_mode


def jvp_rule(prim: Primitive) -> Optional[Callable[..., Any]]:
    """`prim`'s forward-mode rule: its own, or one derived from `linear` or
    `lanewise`; None when it has neither."""
    if prim.jvp is not None:
        return prim.jvp
    if prim.linear:
        return _linear_rule(prim)
    if prim.lanewise:
        return _lanewise_rule(prim)
    return None


def _linear_rule(prim: Primitive) -> Callable[..., Any]:
    def jvp(tangents: tuple, out: Tracer, *operands: Tracer, **params: Any) -> Optional[Tracer]:
        if tangents[0] is None:
            return None
        return bind(prim.name, tangents[0], *operands[1:], **params)

    return jvp


def _lanewise_rule(prim: Primitive) -> Callable[..., Any]:
    def jvp(tangents: tuple, out: Tracer, *operands: Tracer, **params: Any) -> Optional[Tracer]:
        total = None
        for k, t in enumerate(tangents):
            if t is None:
                continue
            term = prim.vjp(t, out, *operands, **params)[k]
            if term is not None:
                total = term if total is None else total + term
        return total

    return jvp


def forward(graph: Graph, seeds: dict[int, int], nodes: Optional[list[Node]] = None,
            batch: Optional[int] = None) -> dict[int, Optional[int]]:
    """Add to `graph` (in place) the tangent of every node that depends on a seed.

    `seeds` maps a node (usually a graph input) to the node holding its tangent,
    of the same shape. Returns, for every node of the graph as it was (or of
    `nodes`, a topologically ordered part of it: several passes over one graph walk
    only the primal nodes), the node holding its tangent, or None for zero.

    With `batch`, every tangent carries a leading axis of that length (a seed of
    shape `(batch, *x.shape)`): `batch` directions pushed forward at once, as a
    Jacobian needs. Rules see one batch element each (`_per_element`), except
    where a batched form exists: a primitive's own `batched_jvp`, or the derived
    rule of a lanewise primitive, whose operands broadcast against the batch axis.
    """
    tangents: dict[int, Optional[int]] = {}
    nodes = graph.nodes() if nodes is None else nodes
    with rule_mode(graph) as mode:
        for node in nodes:
            if node.id in seeds:
                tangents[node.id] = seeds[node.id]
                continue
            if not node.is_call or not any(tangents.get(i) is not None for i in node.inputs):
                continue
            tangents[node.id] = _tangent(graph, node, tangents, mode, batch)
    return tangents


def _batched_rule(prim: Primitive, batch: int) -> Callable[..., Any]:
    """The rule for tangents with a leading batch axis of length `batch`."""
    if prim.batched_jvp is not None:
        return prim.batched_jvp
    if prim.lanewise and prim.jvp is None:
        lanewise = _lanewise_rule(prim)

        def jvp(tangents: tuple, out: Tracer, *operands: Tracer, **params: Any) -> Optional[Tracer]:
            # (batch, 1, ..., 1, *x.shape): every operand broadcasts against it from the right
            padded = tuple(None if t is None else np.reshape(t, (batch,) + (1,) * (out.ndim - x.ndim) + x.shape)
                           for t, x in zip(tangents, operands))
            return lanewise(padded, out, *operands, **params)

        return jvp
    return _per_element(jvp_rule(prim), batch)


def _per_element(rule: Callable[..., Any], batch: int) -> Callable[..., Any]:
    """A rule applied to each batch element's tangents, the results stacked."""

    def jvp(tangents: tuple, out: Tracer, *operands: Tracer, **params: Any) -> Optional[Tracer]:
        rows = []
        for b in range(batch):
            t = rule(tuple(None if t is None else t[b] for t in tangents), out, *operands, **params)
            rows.append(np.zeros_like(out) if t is None else np.broadcast_to(t, out.shape))
        return np.stack(rows)

    return jvp


def _tangent(graph: Graph, node: Node, tangents: dict[int, Optional[int]], mode: rule_mode,
             batch: Optional[int] = None) -> Optional[int]:
    prim = registry.get(node.op)
    if not prim.differentiable or node.dtype.kind not in "fc":
        return None  # comparisons, integer results, piecewise constants: zero tangent
    where = f"{node.loc.user}: " if node.loc is not None else ""
    if node.dtype.kind == "c" or any(graph.node(i).dtype.kind == "c" for i in node.inputs if tangents.get(i) is not None):
        raise UnsupportedError(
            f"{where}forward-mode derivatives through complex values ({node.aval}) are not supported yet; "
            "differentiate with respect to the real and imaginary parts as separate float arrays."
        )
    rule = jvp_rule(prim)
    if rule is None:
        raise UnsupportedError(f"{where}{node.op} has no forward-mode (JVP) rule yet; use reverse mode (grad, vjp, jacrev).")
    mode.at(loc=node.loc)
    first_new = graph.next_id
    ts = tuple(None if tangents.get(i) is None else Tracer(graph, tangents[i]) for i in node.inputs)
    operands = [Tracer(graph, i) for i in node.inputs]
    if batch is not None:
        rule = _batched_rule(prim, batch)
    t = rule(ts, Tracer(graph, node.id), *operands, **node.params)
    if t is NotImplemented:  # a batched rule that does not cover these operands
        t = _per_element(jvp_rule(prim), batch)(ts, Tracer(graph, node.id), *operands, **node.params)
    if t is None:
        return None
    if t.dtype != node.dtype:  # (a Python-number tangent of a NumPy scalar may stay one: every node recasts)
        t = bind("astype", t, dtype=node.dtype)
    shape = node.shape if batch is None else (batch,) + node.shape
    if tuple(t.shape) != shape:
        t = bind("broadcast_to", t, shape=shape)
    fresh = graph.node(t.id)
    if t.id >= first_new and fresh.tangent_of is None and fresh.cotangent_of is None:
        fresh.tangent_of = node.id
    return t.id


def zeros_like_node(graph: Graph, i: int) -> int:
    """A zero array shaped like node `i`: the tangent of a value no seed reaches."""
    node = graph.node(i)
    with rule_mode(graph) as mode:
        mode.at(loc=node.loc)
        return bind("full", shape=node.shape, value=0, dtype=node.dtype).id

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

Complex values: w = f(z) has the tangent t_w = f'(z) t_z, not conjugated. A VJP
rule sends g * conj(f'(z)) (the convention of compiler/transforms/reverse.py), so
the lanewise derivation builds it under `registry.conjugation_suspended`, which
makes it t * f'(z) for every primitive holomorphic in each operand; np.abs and
np.angle, which are not, have rules of their own, and conj, np.real and np.imag
are linear. As in reverse mode, only the primitives of `registry.COMPLEX_VJPS`
(and `COMPLEX_JVPS`, slogdet's sign) may read or make a complex value on a
differentiated path; others are refused at the user's line. A real value's tangent is real: a real input seeded with a
complex tangent is refused, and so is a Jacobian with respect to a complex input
(its basis spans only the real directions).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import GradError, UnsupportedError, at_user_line
from compiler.ir import Graph, Node
from compiler.primitives import registry
from compiler.primitives.registry import Primitive
from compiler.tracing import Tracer, bind, rule_mode
from compiler.transforms.reverse import spelled


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
            with registry.conjugation_suspended():
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
    _check_seeds(graph, seeds, batch)
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


def _check_seeds(graph: Graph, seeds: dict[int, int], batch: Optional[int]) -> None:
    """A real value's tangent is real; a Jacobian's basis (the identity) spans only
    a complex input's real directions, so its derivatives along the imaginary ones
    would be missing."""
    for primal, seed in seeds.items():
        node = graph.node(primal)
        if node.dtype.kind != "c" and graph.node(seed).dtype.kind == "c":
            raise at_user_line(GradError, f"a complex tangent ({graph.node(seed).aval}) for the real value "
                               f"{node.aval}; the tangent of a real value is real (make the value complex to "
                               "move it off the real axis)")
        if batch is not None and node.dtype.kind == "c":
            raise at_user_line(UnsupportedError, f"forward-mode Jacobians (jacfwd, hessian) with respect to complex "
                               f"values ({node.aval}) are not supported: the basis would span only the real "
                               "directions. Use jacrev for a real function, or take the real and imaginary parts "
                               "as separate float arguments.")


def _batched_rule(prim: Primitive, batch: int) -> Callable[..., Any]:
    """The rule for tangents with a leading batch axis of length `batch`."""
    if prim.batched_jvp is not None:
        return prim.batched_jvp
    if prim.lanewise and prim.jvp is None:
        derived = jvp_rule(prim)  # a linear one's rule first: np.real's VJP (g) is not its JVP (Re t)

        def jvp(tangents: tuple, out: Tracer, *operands: Tracer, **params: Any) -> Optional[Tracer]:
            # (batch, 1, ..., 1, *x.shape): every operand broadcasts against it from the right
            padded = tuple(None if t is None else np.reshape(t, (batch,) + (1,) * (out.ndim - x.ndim) + x.shape)
                           for t, x in zip(tangents, operands))
            return derived(padded, out, *operands, **params)

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
    if node.dtype.kind not in "fc" or not (prim.differentiable or node.dtype.kind == "c"):
        return None  # comparisons, integer results, piecewise constants of real values: zero tangent
    where = f"{node.loc.user}: " if node.loc is not None else ""
    _refuse_complex(graph, node, tangents, where)
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


def _refuse_complex(graph: Graph, node: Node, tangents: dict[int, Optional[int]], where: str) -> None:
    """A node that makes a complex value, or reads one that carries a tangent, must
    be a primitive whose rules are verified for complex values (`registry.COMPLEX_VJPS`
    and `COMPLEX_JVPS`), differentiated only in the operands listed there. np.sign(z)
    is z / |z|, not a piecewise constant: other non-differentiable primitives are
    refused too."""
    moving = [k for k, i in enumerate(node.inputs) if tangents.get(i) is not None]
    complex_ = [graph.node(node.inputs[k]) for k in moving if graph.node(node.inputs[k]).dtype.kind == "c"]
    if node.dtype.kind != "c" and not complex_:
        return
    detail = ""
    verified_ops = {**registry.COMPLEX_VJPS, **registry.COMPLEX_JVPS}
    if node.op in verified_ops:
        verified = verified_ops[node.op]
        blocked = [k for k in moving if verified is not None and k not in verified]
        if not blocked:
            return
        allowed = ", ".join(str(k + 1) for k in verified)
        detail = f" differentiated in operand {blocked[0] + 1} (only in operand {allowed})"
    value = node if node.dtype.kind == "c" else complex_[0]
    raise UnsupportedError(
        f"{where}forward-mode derivatives through {spelled(node.op)} of complex values ({value.aval}){detail} are not "
        "supported; split the complex value into its real and imaginary parts (np.real(z), np.imag(z)) and "
        "differentiate those float arrays, or write it with operations that support complex derivatives."
    )


def zeros_like_node(graph: Graph, i: int) -> int:
    """A zero array shaped like node `i`: the tangent of a value no seed reaches."""
    node = graph.node(i)
    with rule_mode(graph) as mode:
        mode.at(loc=node.loc)
        return bind("full", shape=node.shape, value=0, dtype=node.dtype).id

"""The reverse-mode transform: a forward graph becomes its joint forward+backward
(adjoint) graph, built only from the primitives' VJP rules.

Walking forward nodes in reverse topological order, each node's cotangent is the sum
of its consumers' contributions, summed in forward order so the backward pass reads
like the lecture's (`g_a = d + 1.0 / b - f / a`). Paths that carry no gradient stay
symbolic zeros (None): nothing is materialized for them. Contributions computed at a
broadcast shape are summed back to the operand's shape with reductions fixed at
compile time. Forward values are referenced, never recomputed.

Masked cotangents make `np.where` NaN-safe without the "double where" workaround.
`np.where(c, f(x), y)` sends `f` a cotangent that is exactly zero wherever `c` is
False, but `f`'s VJP multiplies it by a partial derivative that may be infinite or
NaN there (`0.5 * 0 / np.sqrt(0)`), and the NaN would reach the gradient. So every
contribution carries a mask, the terms `(condition, polarity)` wherever one of
which is False it is zero in exact arithmetic, and the subset of those terms
wherever one of which is False its computed value may be garbage ("dirty"). Masks
flow through lane-wise (elementwise) nodes; garbage lanes are zeroed with
`np.where(c, ct, 0.0)` at the latest point where they could mix with lanes that
matter: before an unbroadcast sums across a condition's lanes, before a sum with a
contribution that is not masked alike, and before a node whose VJP is not
lane-wise (reductions, matmul, reshapes) or at a gradient. Masked-out lanes get
exactly 0, the true contribution of the discarded branch; a program without
`np.where` gets no masks and generates exactly as before.

Complex values follow PyTorch's convention: the cotangent of a complex value w is
dL/dRe(w) + i dL/dIm(w) for the real loss L, so a holomorphic w = f(z) sends
g_z = g_w * conj(f'(z)) (the rules conjugate only complex values, so real programs
generate as before), and a real operand receives the real part of its complex
contribution. Only primitives listed in `registry.COMPLEX_VJPS` may meet complex
values on a differentiated path; any other is refused at the user's line.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from compiler.errors import GradError, UnsupportedError
from compiler.ir import CONST, INPUT, Aval, Graph, Node
from compiler.primitives import registry
from compiler.aliasing import aliases_argument
from compiler.primitives.reduce import unbroadcast
from compiler.tracing import Tracer, bind, rule_mode

# A mask term `(condition node, polarity)` holds where the condition equals polarity.
Term = tuple[int, bool]

# Operations through which a cotangent that is exactly 0 in a lane stays exactly 0
# when every other operand is a finite constant (see `_scales`).
_SCALING = {"negative", "multiply", "divide", "astype", "copy", "broadcast_to"}


class _Part(NamedTuple):
    """One cotangent contribution to a node, from the forward node `consumer`.

    `mask`: in exact arithmetic the contribution is 0 wherever one of these terms
    is False. `dirty` (a subset of `mask`): the computed value may be non-finite
    garbage only where one of these terms is False; elsewhere it is exact.
    """

    consumer: int
    ct: Tracer
    mask: frozenset = frozenset()
    dirty: frozenset = frozenset()
    running: bool = False  # a running total of several contributions (`_contribute`)


def active_nodes(graph: Graph, wrt: list[int], output: int) -> set[int]:
    """Nodes on a differentiable path from some `wrt` input to `output`."""
    reach = graph.descendants(wrt) & graph.ancestors([output])
    return {i for i in reach if _carries_gradient(graph.node(i))}


# How a refusal names primitives that are not spelled `np.<name>`.
_SPELLED = {"absolute": "np.abs", "setitem": "assignment x[...] = v", "custom_rule": "a custom_vjp / custom_jvp rule"}


def spelled(op: str) -> str:
    """How an error message names primitive `op` to the user (`np.exp`, `np.abs`)."""
    return _SPELLED.get(op) or (op if "." in op else f"np.{op}")


def _refuse_complex(graph: Graph, active: set[int], output: int) -> None:
    """Complex values on a differentiated path pass only through primitives whose VJP
    rules are verified for them (`registry.COMPLEX_VJPS`, PyTorch's convention: the
    gradient of a real loss L in z = x + iy is dL/dx + i dL/dy, so `z -= lr * g`
    descends). Any other primitive there is refused, never differentiated with rules
    written for real numbers (that would be silently wrong); so is a complex output,
    which has no gradient of this kind."""
    out = graph.node(output)
    if out.dtype.kind == "c":
        where = f"{out.loc.user}: " if out.loc is not None else ""
        raise GradError(
            f"{where}the value being differentiated is complex ({out.aval}); gradients are taken of a "
            "real loss. Return a real value, e.g. np.abs(z) ** 2 or np.real(...)."
        )
    for i in sorted(active | _cut_complex(graph, active, output)):
        node = graph.node(i)
        if not node.is_call:
            continue
        operands = [graph.node(j) for j in node.inputs]
        if node.dtype.kind != "c" and all(o.dtype.kind != "c" for o in operands):
            continue
        detail = ""
        if node.op in registry.COMPLEX_VJPS:
            verified = registry.COMPLEX_VJPS[node.op]
            if verified is None:
                continue
            blocked = [k for k, j in enumerate(node.inputs) if j in active and k not in verified]
            if not blocked:
                continue
            allowed = ", ".join(str(k + 1) for k in verified)  # (the base of `**`, not its exponent)
            detail = f" differentiated in operand {blocked[0] + 1} (only in operand {allowed})"
        where = f"{node.loc.user}: " if node.loc is not None else ""
        value = node if node.dtype.kind == "c" else next(o for o in operands if o.dtype.kind == "c")
        raise UnsupportedError(
            f"{where}gradients through {spelled(node.op)} of complex values ({value.aval}){detail} are not supported; "
            "split the complex value into its real and imaginary parts (np.real(z), np.imag(z)) and "
            "differentiate those float arrays, or write it with operations that support complex gradients."
        )


def _cut_complex(graph: Graph, active: set[int], output: int) -> set[int]:
    """Non-differentiable nodes on the way to `output` that read a complex value on
    the path and return a complex one: np.sign(z) is z / |z| there, not the real
    sign's zero derivative, so they must meet the allow-list too rather than cut the
    gradient silently."""
    found = set()
    for i in active:
        if graph.node(i).dtype.kind != "c":
            continue
        for user in graph.users(i):
            node = graph.node(user)
            if node.dtype.kind == "c" and not registry.get(node.op).differentiable:
                found.add(user)
    return found & graph.ancestors([output]) if found else found


def _carries_gradient(node: Node) -> bool:
    if node.dtype.kind not in "fc":
        return False
    return not node.is_call or registry.get(node.op).differentiable


def reverse(graph: Graph, wrt: list[int], output: int, in_place: bool = False,
            seed: Optional[int] = None) -> tuple[Graph, list[int]]:
    """The joint graph and, for each `wrt` input, the node holding its gradient.

    `output` must be a scalar node of `graph`. The joint graph keeps every forward
    node (ids unchanged); the caller chooses the joint graph's outputs. With
    `in_place` the backward nodes are added to `graph` itself (a Jacobian adds one
    backward pass per output element to one graph). `seed`, a Python-number node of
    `graph`, is the output's cotangent instead of 1: every cotangent, gradients
    included, is then `seed` times the derivative (the backward pass is linear in
    it, for every rule but a user's custom_vjp).
    """
    joint = graph if in_place else graph.copy()
    active = active_nodes(joint, wrt, output)
    _refuse_complex(joint, active, output)
    forward_ids = set(joint.dag.nodes)
    terms = _Conditions(joint)
    contributions: dict[int, list[_Part]] = {}
    grads: dict[int, Optional[Tracer]] = {}
    with rule_mode(joint) as mode:
        mode.at(loc=joint.node(output).loc, grad_of=output)
        seed_id = joint.add_const(1.0, Aval((), np.dtype(float), True)) if seed is None else seed
        contributions[output] = [_Part(output, Tracer(joint, seed_id))]
        for node in reversed(joint.nodes()):
            if node.id not in forward_ids or node.id not in active or node.id not in contributions:
                continue
            parts = contributions.pop(node.id)
            if node.is_input:
                # an input's gradient sums its consumers' parts: it reads as part of the
                # backward group of its first consumer, not of the function's `def` line
                first = joint.node(min(part.consumer for part in parts))
                mode.at(loc=first.loc, grad_of=first.id)
            else:
                mode.at(loc=node.loc, grad_of=node.id)
            g, mask, dirty = _accumulate(joint, parts, node, forward_ids)
            if node.is_input:
                grads[node.id] = g
                continue
            if node.is_const:
                continue
            if g.aval.weak and g.dtype != node.dtype:
                # A Python-scalar cotangent (the seed) takes the primal's precision before
                # a rule reshapes or broadcasts it into an array.
                g = g.astype(node.dtype)
            operands = [Tracer(joint, i) for i in node.inputs]
            first_new = joint.next_id
            cts = registry.get(node.op).vjp(g, Tracer(joint, node.id), *operands, **node.params)
            _drop_unread(joint, first_new, [ct.id for operand, ct in zip(node.inputs, cts)
                                            if ct is not None and operand in active])
            for k, (operand, ct) in enumerate(zip(node.inputs, cts)):
                if ct is None or operand not in active:
                    continue
                ct_mask, ct_dirty = mask, dirty
                if node.op == "where":
                    # where's own rule zeroes the lanes its condition discards
                    own = terms.term(node.inputs[0], k == 1)
                    ct_mask, ct_dirty = mask | {own}, dirty - {own}
                elif mask and not _scales(joint, ct, g, first_new):
                    ct_dirty = mask  # the rule's partial derivative may be inf or NaN there
                if ct.dtype.kind == "c" and joint.node(operand).dtype.kind != "c":
                    ct = np.real(ct)  # a real operand's share of a complex cotangent: dL/dx
                _contribute(joint, contributions.setdefault(operand, []),
                            _to_operand(joint, node.id, ct, ct_mask, ct_dirty, joint.node(operand).shape), operand)
        outputs: list[int] = []
        for i in wrt:
            source = joint.node(grads[i].id) if grads.get(i) is not None else None
            if source is not None and source.grad_of is not None:
                mode.at(loc=source.loc, grad_of=source.grad_of)
            else:
                mode.at(loc=joint.node(i).loc, grad_of=i)
            outputs.append(_as_gradient(joint, grads.get(i), joint.node(i), taken=outputs))
    return joint, outputs


RUNNING_TOTAL_PARTS = 4  # contributions to one value before they become a running total


def _contribute(graph: Graph, parts: list[_Part], part: _Part, operand: int) -> None:
    """Add `part` to an operand's contributions. Once RUNNING_TOTAL_PARTS clean ones
    (no masks) have come, they are summed, and every later one is added to that
    running total as it comes: a value read in every iteration of a loop (a weight)
    accumulates its gradient inside the backward loop (`g_W += ...`) instead of
    keeping every iteration's share for one sum at the end. Fewer parts are summed
    in one expression when the operand's cotangent is needed (`g_a = d + 1.0 / b`)."""
    if len(parts) == 1 and parts[0].running and not part.mask and parts[0].ct.shape == part.ct.shape:
        parts[0] = _Part(min(parts[0].consumer, part.consumer), _named_total(graph, parts[0].ct + part.ct, operand),
                         running=True)
        return
    parts.append(part)
    if len(parts) < RUNNING_TOTAL_PARTS or any(p.mask for p in parts) or len({p.ct.shape for p in parts}) > 1:
        return
    parts.sort(key=lambda p: p.consumer)
    total = parts[0].ct
    for p in parts[1:]:
        total = total + p.ct
    parts[:] = [_Part(parts[0].consumer, _named_total(graph, total, operand), running=True)]


def _named_total(graph: Graph, total: Tracer, operand: int) -> Tracer:
    node = graph.node(total.id)
    if node.cotangent_of is None:
        node.cotangent_of = operand
    return total


def _drop_unread(graph: Graph, first_new: int, kept: list[int]) -> None:
    """Remove what a rule built (the nodes from `first_new` on) that no cotangent in
    `kept` reads: the cotangents of operands that carry no gradient (`g * x` for the
    constant of `x * 1.001`), which every pass would otherwise carry until dce."""
    pred = graph.dag._pred
    live: set[int] = set()
    stack = [i for i in kept if i >= first_new]
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(j for j in pred[i] if j >= first_new)
    dead = [i for i in range(first_new, graph.next_id) if i in pred and i not in live]
    if dead:
        graph.remove_all(dead)


def _to_operand(graph: Graph, consumer: int, ct: Tracer, mask: frozenset, dirty: frozenset,
                shape: tuple[int, ...]) -> _Part:
    """The contribution `ct` summed back to its operand's `shape`. A mask term whose
    condition does not broadcast into `shape` cannot describe the summed lanes: it
    is dropped, after zeroing the garbage lanes it guards so the sum cannot spread
    them."""
    keep = frozenset(t for t in mask if _fits(graph.node(t[0]).shape, shape))
    if dirty - keep:
        ct = _zero_where_false(ct, dirty - keep)
    return _Part(consumer, unbroadcast(ct, shape), keep, dirty & keep)


def _accumulate(graph: Graph, parts: list[_Part], node: Node,
                forward_ids: set[int]) -> tuple[Tracer, frozenset, frozenset]:
    """`node`'s cotangent, the sum of `parts`, with its mask and dirty terms. The
    mask is what all parts share; a part's garbage outside it is zeroed before the
    sum. Through a node whose VJP is not lane-wise only terms on 0-d conditions
    pass (they hold in every lane or in none); an input's gradient is clean."""
    parts.sort(key=lambda part: part.consumer)
    mask = frozenset.intersection(*(part.mask for part in parts))
    dirty = frozenset().union(*(part.dirty & mask for part in parts))
    cts: list[Optional[Tracer]] = [part.ct for part in parts]
    for k, part in enumerate(parts):
        extra = part.dirty - mask
        if not extra or cts[k] is None:
            continue
        other = _complement(parts, cts, k, extra, mask)
        if other is not None:
            # where(c, a, 0) + where(c, 0, b) is where(c, a, b) exactly
            (cond, polarity), = extra
            pair = (part.ct, parts[other].ct) if polarity else (parts[other].ct, part.ct)
            cts[k], cts[other] = np.where(Tracer(graph, cond), *pair), None
        else:
            cts[k] = _zero_where_false(part.ct, extra)
    cts = [ct for ct in cts if ct is not None]
    total = cts[0]
    for ct in cts[1:]:
        total = total + ct
    if mask and (not node.is_call or not registry.get(node.op).lanewise or tuple(total.shape) != node.shape):
        keep = frozenset() if node.is_input else frozenset(t for t in mask if graph.node(t[0]).shape == ())
        if dirty - keep:
            total = _zero_where_false(total, dirty - keep)
        mask, dirty = keep, dirty & keep
    fresh = graph.node(total.id)
    if fresh.id not in forward_ids and not fresh.is_const and fresh.cotangent_of is None:
        fresh.cotangent_of = node.id
    return total, mask, dirty


def _complement(parts: list[_Part], cts: list, k: int, extra: frozenset, mask: frozenset) -> Optional[int]:
    """A later part, not yet summed, whose garbage is exactly where part `k`'s is not:
    part `k` is dirty only where `c` is False and it only where `c` is True."""
    if len(extra) != 1:
        return None
    (cond, polarity), = extra
    for j in range(k + 1, len(parts)):
        if cts[j] is not None and parts[j].dirty - mask == {(cond, not polarity)} and parts[j].ct.shape == parts[k].ct.shape:
            return j
    return None


def _zero_where_false(ct: Tracer, terms: frozenset) -> Tracer:
    """`ct` with 0 wherever a term is False (`np.where(c, ct, 0.0)`; the Python
    0.0 keeps ct's precision)."""
    for cond, polarity in sorted(terms):
        c = Tracer(ct.graph, cond)
        ct = np.where(c, ct, 0.0) if polarity else np.where(c, 0.0, ct)
    return ct


def _fits(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether `small` broadcasts to `shape` without enlarging it."""
    return len(small) <= len(shape) and all(a in (1, b) for a, b in zip(reversed(small), reversed(shape)))


def _scales(graph: Graph, ct: Tracer, g: Tracer, first_new: int) -> bool:
    """Whether `ct` (built by a VJP rule from nodes numbered `first_new` on) is `g`
    scaled by finite constants, so it is exactly 0 wherever `g` is: `-g`, `2.0 * g`,
    `g * (x > 0)`."""
    stack = [ct.id]
    while stack:
        i = stack.pop()
        node = graph.node(i)
        if i == g.id or node.dtype.kind in "biu" or (node.is_const and _finite(node.params["value"])):
            continue
        if i < first_new or node.op not in _SCALING:
            return False
        if node.op == "divide":
            divisor = graph.node(node.inputs[1])
            if not divisor.is_const or not _finite(divisor.params["value"]) or np.any(divisor.params["value"] == 0):
                return False
            stack.append(node.inputs[0])
        else:
            stack.extend(node.inputs)
    return True


def _finite(value: Any) -> bool:
    try:
        return bool(np.all(np.isfinite(value)))
    except TypeError:
        return False


class _Conditions:
    """Canonical mask terms: structurally equal conditions (`x > 0` traced twice) are
    one term, and `np.logical_not(c)` is `c` with the opposite polarity."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.keys: dict[int, int] = {}  # node -> number of its structure
        self.numbers: dict[Any, int] = {}
        self.representative: dict[int, int] = {}

    def term(self, cond: int, polarity: bool) -> Term:
        while self.graph.node(cond).op == "logical_not":
            cond, polarity = self.graph.node(cond).inputs[0], not polarity
        key = self.key(cond)
        return self.representative.setdefault(key, cond), polarity

    def key(self, i: int) -> int:
        """Equal keys mean equal values: the same op, params and operand keys."""
        stack = [i]
        while stack:
            j = stack[-1]
            node = self.graph.node(j)
            missing = [k for k in node.inputs if k not in self.keys]
            if missing and node.is_call:
                stack.extend(missing)
                continue
            stack.pop()
            if node.is_const:
                structure: Any = (CONST, node.aval, _frozen(node.params["value"]))
            elif node.is_input:
                structure = (INPUT, j)
            else:
                params = tuple(sorted((k, _frozen(v)) for k, v in node.params.items()))
                structure = (node.op, node.aval, params, tuple(self.keys[k] for k in node.inputs))
            self.keys[j] = self.numbers.setdefault(structure, len(self.numbers))
        return self.keys[i]


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a static value that tells different values apart."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,) + tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return (type(value).__name__, repr(value))


def _as_gradient(graph: Graph, g: Optional[Tracer], primal: Node, taken: list[int]) -> int:
    """A node holding exactly the gradient for `primal`: its shape and dtype, a
    fresh writable array (never an alias of an input, a broadcast view, or a
    gradient already in `taken`), named as `primal`'s cotangent."""
    if g is None:
        result = bind("full", shape=primal.shape, value=0, dtype=primal.dtype)
    elif graph.node(g.id).is_const and g.aval.weak:
        result = bind("full", shape=primal.shape, value=graph.node(g.id).params["value"], dtype=primal.dtype)
    else:
        result = g
        if result.aval.weak:  # a Python-scalar expression: make it an array
            result = bind("copy", result)
        if result.dtype != primal.dtype:
            result = result.astype(primal.dtype)
        if result.shape != primal.shape:
            result = np.broadcast_to(result, primal.shape)
        if aliases_argument(graph, result.id) or result.id in taken:
            result = result.copy()
        if result.id != g.id and graph.node(g.id).cotangent_of == primal.id:
            graph.node(g.id).cotangent_of = None
    if graph.node(result.id).grad_of is not None:
        graph.node(result.id).cotangent_of = primal.id
    return result.id

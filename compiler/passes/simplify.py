"""Algebraic simplification: the rewrites that make generated code read as if
written by hand. Multiplying by one, adding zero and pass-through cotangents vanish,
scalar constant arithmetic folds, broadcasts that an elementwise consumer would do
anyway disappear, chains of reshapes and broadcasts collapse, and negations move
outward so that `x + -y` prints as `x - y`.

Every rewrite keeps each node's exact shape and dtype (the validator checks), and
never makes a graph output share memory with an argument or another output.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np

from compiler.aliasing import is_view
from compiler.errors import ShapeError
from compiler.ir import Aval, Graph, Node
from compiler.passes.rewrite import can_replace, replace
from compiler.primitives import registry
from compiler.primitives.elementwise import result_dtype

_MOVES = ("reshape", "broadcast_to")  # the layout changes `_collapse_moves` merges
_IDENTITY_OPS = ("multiply", "add", "subtract", "divide", "power", "reshape", "broadcast_to", "astype", "sum", "negative")

Rule = Callable[[Graph, Node], bool]
_APPLIES: dict[Rule, Callable[[str, registry.Primitive], bool]] = {}


def _applies_to(predicate: Callable[[str, registry.Primitive], bool]) -> Callable[[Rule], Rule]:
    """Declare which primitives a rewrite rule can apply to (by name and properties);
    `simplify` tries each node only with the rules that can apply to it."""

    def declare(rule: Rule) -> Rule:
        _APPLIES[rule] = predicate
        return rule

    return declare


def constant_value(graph: Graph, i: int) -> Optional[object]:
    """The Python number every element of node `i` equals, when known at compile
    time: a Python-scalar constant, `full`, or a reshape, broadcast, copy or cast
    of one."""
    node = graph.node(i)
    if node.is_const:
        value = node.params["value"]
        if node.aval.weak:
            return value
        if node.params.get("captured"):  # the user's array, read live: never folded
            return None
        return value.item() if np.ndim(value) == 0 and value.dtype.kind in "biuf" else None
    if node.op == "full":
        return node.params["value"]
    if node.op == "copy" or is_view(node):
        return constant_value(graph, node.inputs[0])
    if node.op == "astype":
        value = constant_value(graph, node.inputs[0])
        if value is None:
            return None
        with np.errstate(all="ignore"):
            return node.dtype.type(value).item()
    return None


def _is(graph: Graph, i: int, value: float) -> bool:
    v = constant_value(graph, i)
    return v is not None and not isinstance(v, bool) and v == value


def _identity_operand(graph: Graph, node: Node) -> Optional[int]:
    """The operand `node` merely passes through, if any (x*1, 1*x, x+0, 0+x, x-0,
    x/1, x**1, --x, no-op reshapes, broadcasts, casts and sums over no axes)."""
    op, ins = node.op, node.inputs
    candidates = []
    if op == "multiply":
        candidates = [ins[0]] if _is(graph, ins[1], 1) else [ins[1]] if _is(graph, ins[0], 1) else []
    elif op == "add":
        candidates = [ins[0]] if _is(graph, ins[1], 0) else [ins[1]] if _is(graph, ins[0], 0) else []
    elif op in ("subtract", "divide", "power"):
        unit = 0 if op == "subtract" else 1
        candidates = [ins[0]] if _is(graph, ins[1], unit) else []
    elif op in ("reshape", "broadcast_to", "astype") or (op == "sum" and not node.params["axis"]):
        candidates = [ins[0]]
    elif op == "negative" and graph.node(ins[0]).op == "negative":
        candidates = [graph.node(ins[0]).inputs[0]]
    return next((c for c in candidates if graph.node(c).aval == node.aval), None)


@_applies_to(lambda op, prim: op in _IDENTITY_OPS)
def _remove_identity(graph: Graph, node: Node) -> bool:
    same = _identity_operand(graph, node)
    if same is None:
        return False
    if can_replace(graph, node.id, same):
        replace(graph, node.id, same)
    elif node.aval.weak:
        return False
    else:
        # an output must stay a fresh array: the pass-through becomes an explicit copy
        node.op, node.params = "copy", {}
        graph.set_inputs(node.id, (same,))
    return True


def _broadcast_source(graph: Graph, i: int) -> Optional[int]:
    """For `broadcast_to(s, ...)`, or a reshape of s that only adds or removes
    leading 1-dims, the node s: in an elementwise operation it broadcasts alike."""
    node = graph.node(i)
    if node.op == "broadcast_to":
        return node.inputs[0]
    if node.op == "reshape":
        source = graph.node(node.inputs[0])
        if _strip_leading_ones(source.shape) == _strip_leading_ones(node.shape):
            return source.id
    return None


def _strip_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    k = 0
    while k < len(shape) and shape[k] == 1:
        k += 1
    return tuple(shape[k:])


def _try_inputs(graph: Graph, node: Node, inputs: tuple[int, ...], op: Optional[str] = None) -> bool:
    """Give `node` these operands (and primitive `op`, if given) if its shape and
    dtype stay exactly the same."""
    op = op or node.op
    avals = [graph.node(j).aval for j in inputs]
    try:
        aval = registry.get(op).abstract(*avals, **node.params)
    except ShapeError:
        return False
    if aval != node.aval:
        return False
    node.op = op
    graph.set_inputs(node.id, inputs)
    return True


@_applies_to(lambda op, prim: op == "index_add" or prim.lanewise)
def _drop_broadcast(graph: Graph, node: Node) -> bool:
    """An operand broadcast or reshaped only to meet the other operands' shape needs
    no copy: elementwise ops broadcast by themselves (`broadcast_to(s, (5,)) * y` ->
    `s * y`, `x == broadcast_to(m, x.shape)` -> `x == m`)."""
    if node.op == "index_add":
        # assigning or adding into the gradient buffer broadcasts the update itself
        source = _broadcast_source(graph, node.inputs[0])
        return source is not None and _try_inputs(graph, node, (source,) + node.inputs[1:])
    for k, i in enumerate(node.inputs):
        source = _broadcast_source(graph, i)
        if source is not None and _try_inputs(graph, node, node.inputs[:k] + (source,) + node.inputs[k + 1 :]):
            return True
    return False


@_applies_to(lambda op, prim: op in _MOVES)
def _collapse_moves(graph: Graph, node: Node) -> bool:
    """Reshapes and broadcasts of reshapes and broadcasts become one:
    reshape(reshape(x)) -> reshape(x); broadcast_to(broadcast_to(x)) and
    broadcast_to(x with leading 1s added) -> broadcast_to(x); and a reshape of a
    broadcast scalar -> one broadcast of the scalar."""
    inner = graph.node(node.inputs[0])
    if inner.op not in _MOVES:
        return False
    source = graph.node(inner.inputs[0])
    shape = node.params["shape"]
    if node.op == inner.op or (inner.op == "reshape" and _broadcast_source(graph, inner.id) is not None):
        op = node.op
    elif source.aval.size == 1:
        op = "broadcast_to" if source.aval.ndim <= len(shape) else "reshape"
    else:
        return False
    try:
        aval = registry.get(op).abstract(source.aval, shape=shape)
    except ShapeError:
        return False
    if aval != node.aval:
        return False
    node.op = op
    graph.set_inputs(node.id, (source.id,))
    return True


@_applies_to(lambda op, prim: op in ("copy", "astype"))
def _fill_constant(graph: Graph, node: Node) -> bool:
    """A copy or cast of a constant-valued array is `np.full` (or np.ones/np.zeros)."""
    if node.dtype.kind not in "fc":
        return False
    if node.op == "astype" and node.shape == () and graph.node(node.inputs[0]).is_const:
        return False  # np.float32(1.0) is already the plainest spelling
    value = constant_value(graph, node.inputs[0])
    if value is None:
        return False
    with np.errstate(all="ignore"):
        value = node.dtype.type(value).item()
    node.op, node.params = "full", {"shape": node.shape, "value": value, "dtype": node.dtype}
    graph.set_inputs(node.id, ())
    return True


@_applies_to(lambda op, prim: prim.lanewise)
def _weaken_scalar(graph: Graph, node: Node) -> bool:
    """A NumPy-scalar constant next to an array of its own dtype prints as a Python
    number: `np.float32(0.5) * x` -> `0.5 * x` when x is float32 (NEP 50 casts the
    Python float back to exactly the same float32)."""
    for k, i in enumerate(node.inputs):
        operand = graph.node(i)
        numpy_scalar = operand.is_const and not operand.aval.weak and operand.shape == ()
        cast_scalar = operand.op == "astype" and operand.shape == () and graph.python_scalar(operand.inputs[0]) is not None
        if not (numpy_scalar or cast_scalar):
            continue
        value = constant_value(graph, i)
        if not isinstance(value, float):
            continue
        weak = _constant(graph, value)
        if _try_inputs(graph, node, node.inputs[:k] + (weak,) + node.inputs[k + 1 :]):
            return True
        graph.remove(weak)
    return False


@_applies_to(lambda op, prim: op == "multiply")
def _reassociate(graph: Graph, node: Node) -> bool:
    """c1 * (c2 * x) -> (c1 * c2) * x for Python scalars c1, c2 and float x."""
    if node.dtype.kind not in "fc":
        return False
    for k in (0, 1):
        c1, inner = graph.python_scalar(node.inputs[k]), graph.node(node.inputs[1 - k])
        if c1 is None or inner.op != "multiply" or graph.use_count(inner.id) != 1:
            continue
        for j in (0, 1):
            c2, x = graph.python_scalar(inner.inputs[j]), inner.inputs[1 - j]
            value = _evaluate("multiply", [c1, c2]) if c2 is not None else None
            if value is None or graph.node(x).aval.weak:
                continue
            if _try_inputs(graph, node, (_constant(graph, value), x)):
                return True
    return False


def _scalar_factor(graph: Graph, node: Node) -> Optional[tuple[int, int]]:
    """(c, x) for `node` = c * x with c a Python-number scalar (a literal or a
    hyperparameter such as the learning rate) and x a float array of node's dtype."""
    if node.dtype.kind != "f":
        return None
    for k in (0, 1):
        c, x = graph.node(node.inputs[k]), graph.node(node.inputs[1 - k])
        if c.aval.weak and c.shape == () and x.aval == node.aval and not x.aval.weak:
            return c.id, x.id
    return None


def _existing_scaled(graph: Graph, c: int, x: int) -> Optional[int]:
    for user in graph.users(x):
        other = graph.node(user)
        if other.op == "multiply" and set(other.inputs) == {c, x} and other.aval == graph.node(x).aval:
            return user
    return None


def _has_scaled(graph: Graph, c: int, x: int) -> bool:
    return _existing_scaled(graph, c, x) is not None


def _scaled(graph: Graph, c: int, x: int, like: Node) -> int:
    """The node c * x (an existing one when there is), with `like`'s source line."""
    existing = _existing_scaled(graph, c, x)
    if existing is not None:
        return existing
    return graph.add("multiply", (c, x), {}, graph.node(x).aval, loc=like.loc, grad_of=like.grad_of,
                     name=_scaled_name(graph, c, x))


def _scaled_name(graph: Graph, c: int, x: int) -> Optional[str]:
    """`lr_g_W1` for lr times the cotangent of W1: what the scaled value holds."""
    factor, value = graph.node(c), graph.node(x)
    base = value.name
    if base is None and value.cotangent_of is not None and value.cotangent_of in graph:
        primal = graph.node(value.cotangent_of).name
        base = f"g_{primal}" if primal else None
    return f"{factor.name or 'scaled'}_{base}" if base else None


def _scalable(factor: Node, product: Node, scaled: Node) -> bool:
    """Whether scaling `factor` of `product` costs less than scaling the product, and
    keeps the product's dtype."""
    return factor.aval.size < product.aval.size and factor.dtype == scaled.dtype and not factor.aval.weak


@_applies_to(lambda op, prim: op == "multiply")
def _scale_smaller_factor(graph: Graph, node: Node) -> bool:
    """c * (A @ B) -> A @ (c * B) when B has fewer elements than the product (or
    (c * A) @ B): the scaling costs a pass over the smaller array. An SGD update
    `W -= lr * (a.T @ g)` that compile_step could not seed with lr (a custom_vjp in
    the way) then scales the batch's g, not the weight-sized product. And c * L(x),
    L linear in x (a sum), -> L(c * x) once c * x exists, so the bias gradient shares
    the scaled g."""
    found = _scalar_factor(graph, node)
    if found is None:
        return False
    c, inner_id = found
    inner = graph.node(inner_id)
    if not inner.is_call or graph.use_count(inner_id) != 1 or inner_id in graph.outputs:
        return False
    if inner.op == "matmul":
        # the smaller factor; on a tie one already scaled, then the right one (g in a.T @ g)
        eligible = [j for j in (0, 1) if _scalable(graph.node(inner.inputs[j]), inner, node)]
        if not eligible:
            return False
        k = min(eligible, key=lambda j: (graph.node(inner.inputs[j]).aval.size,
                                         not _has_scaled(graph, c, inner.inputs[j]), -j))
    elif registry.get(inner.op).linear and len(inner.inputs) == 1:
        k, operand = 0, graph.node(inner.inputs[0])
        if operand.dtype != node.dtype or not _has_scaled(graph, c, operand.id):
            return False
    else:
        return False
    if not can_replace(graph, node.id, inner_id):
        return False
    inputs = list(inner.inputs)
    inputs[k] = _scaled(graph, c, inputs[k], inner)
    name = _scaled_name(graph, c, inner_id)
    if inner.op == "matmul":
        # the product, read only here, becomes the scaled value in place: it keeps its
        # id, so it is scheduled where it was (and the new c * B just before it)
        inner.name, inner.cotangent_of = name, None
        graph.set_inputs(inner_id, inputs)
        graph.replace_uses(node.id, inner_id)
        graph.remove(node.id)
    else:  # a new sum, scheduled where the scaled value is read: c * B need not come early
        replace(graph, node.id, graph.add(inner.op, inputs, inner.params, node.aval, loc=inner.loc,
                                          grad_of=inner.grad_of, name=name))
    return True


def _evaluate(op: str, values: list) -> Optional[object]:
    """`op` on Python scalars, or None when the result would not be a finite scalar
    of the first operand's type."""
    with np.errstate(all="ignore"):
        result = getattr(np, op)(*values).item()
    if not np.isfinite(result) or type(result) is not type(values[0]):
        return None
    return result


def _constant(graph: Graph, value: object) -> int:
    return graph.add_const(value, Aval((), np.result_type(type(value)), weak=True))


def _typed_constant(graph: Graph, i: int) -> Optional[object]:
    """A constant-valued operand as the scalar NumPy would compute with: a Python
    number for a weak constant, a NumPy scalar of the node's dtype otherwise."""
    node = graph.node(i)
    value = constant_value(graph, i)
    if value is None or node.aval.weak:
        return value
    return node.dtype.type(value)


@_applies_to(lambda op, prim: prim.foldable)
def _fold(graph: Graph, node: Node) -> bool:
    """Evaluate arithmetic on constant-valued operands at compile time: `2.0 * 0.5`
    -> `1.0`, `np.float32(1.0) / 4` -> `np.float32(0.25)`, `0.5 * broadcast_to(1.0, s)`
    -> `broadcast_to(0.5, s)` (`np.full` where the result is a graph output)."""
    values = [_typed_constant(graph, i) for i in node.inputs]
    if any(v is None for v in values):
        return False
    if node.aval.weak:
        try:
            result = _evaluate(node.op, values)
        except (ValueError, ZeroDivisionError):
            return False
        if result is None:
            return False
        replace(graph, node.id, _constant(graph, result))
        return True
    try:
        with np.errstate(all="ignore"):
            result = np.asarray(getattr(np, node.op)(*values))
    except (ValueError, ZeroDivisionError):
        return False
    if result.dtype != node.dtype or result.dtype.kind not in "fc" or not np.isfinite(result):
        return False
    value = result.item()
    if node.id in graph.outputs:
        node.op, node.params = "full", {"shape": node.shape, "value": value, "dtype": node.dtype}
        graph.set_inputs(node.id, ())
        return True
    meta = {"loc": node.loc, "grad_of": node.grad_of}
    new = _constant(graph, value)
    if node.shape == () or graph.node(new).dtype != node.dtype:
        new = graph.add("astype", (new,), {"dtype": node.dtype}, Aval((), node.dtype), **meta)
    if node.shape != ():
        new = graph.add("broadcast_to", (new,), {"shape": node.shape}, node.aval, **meta)
    replace(graph, node.id, new)
    return True


@_applies_to(lambda op, prim: op == "multiply")
def _minus_one_to_negation(graph: Graph, node: Node) -> bool:
    """-1 * x and x * -1 -> -x, so the negation can fold into a sum or difference."""
    for k in (0, 1):
        other = node.inputs[1 - k]
        if _is(graph, node.inputs[k], -1) and graph.node(other).aval == node.aval:
            node.op = "negative"
            graph.set_inputs(node.id, (other,))
            return True
    return False


def spell_divisions(graph: Graph) -> bool:
    """After the rewrites: print multiplications by exact reciprocals as divisions."""
    changed = False
    for node in graph.nodes():
        if node.op == "multiply" and node.id in graph:
            changed |= _reciprocal_to_division(graph, node)
    return changed


def column_sums_as_products(graph: Graph) -> bool:
    """After the rewrites: column sums of a matrix the program computed, `g.sum(axis=0)`
    for float g of shape (N, K), as the matrix-vector product `ones @ g` with
    `ones = np.ones(N)` made once when the module loads. BLAS does it in one pass, at
    2-6x the speed of NumPy's reduction (a bias gradient: 4 us against 7.5 us at
    128 x 256, 2.7 against 15.7 at 1024 x 10). Only arrays the program made (C-ordered),
    not arguments, whose layout is the caller's."""
    ones: dict[tuple[int, np.dtype], int] = {}
    changed = False
    for node in graph.nodes():
        if node.op != "sum" or node.params.get("axis") != (0,) or node.params.get("keepdims"):
            continue
        operand = graph.node(node.inputs[0])
        if (len(operand.shape) != 2 or operand.dtype not in (np.float32, np.float64) or operand.dtype != node.dtype
                or not operand.is_call or is_view(operand)):
            continue
        n, dtype = operand.shape[0], operand.dtype
        if (n, dtype) not in ones:
            spelled = f"np.ones({n})" if dtype == np.float64 else f"np.ones({n}, dtype=np.{dtype.name})"
            ones[n, dtype] = graph.add_const(np.ones(n, dtype), Aval((n,), dtype), recipe=spelled, name="ones")
        node.op, node.params = "matmul", {}
        graph.set_inputs(node.id, (ones[n, dtype], operand.id))
        changed = True
    return changed


def _reciprocal_to_division(graph: Graph, node: Node) -> bool:
    """c * x -> x / k when c is exactly 1 / k for an integer k: a mean's `/ 32` reads as
    written instead of as `0.03125 * x` (and x / 3 is the correctly rounded value)."""
    if node.dtype.kind not in "fc":
        return False
    for k in (0, 1):
        c, x = graph.python_scalar(node.inputs[k]), node.inputs[1 - k]
        if not isinstance(c, float) or c in (0.0, 1.0, -1.0) or not np.isfinite(c):
            continue
        divisor = round(1 / c)
        if not 3 <= abs(divisor) <= 1_000_000 or 1.0 / divisor != c:
            continue  # (0.5 * g reads like the math; only counts become divisions)
        if _try_inputs(graph, node, (x, _constant(graph, divisor)), "divide"):
            return True
    return False


@_applies_to(lambda op, prim: op in ("multiply", "divide", "add", "subtract"))
def _pull_negation(graph: Graph, node: Node) -> bool:
    """(-a) * b and a * (-b) -> -(a * b), likewise for /; a + (-b) -> a - b,
    (-a) + b -> b - a, a - (-b) -> a + b; for single-use negations."""
    def neg_operand(k: int) -> Optional[int]:
        i = node.inputs[k]
        n = graph.node(i)
        return n.inputs[0] if n.op == "negative" and graph.use_count(i) == 1 else None

    if node.op in ("multiply", "divide"):
        if graph.use_count(node.id) != 1 or node.dtype.kind not in "fc":
            return False
        for k in (0, 1):
            inner = neg_operand(k)
            if inner is None:
                continue
            if _try_inputs(graph, node, node.inputs[:k] + (inner,) + node.inputs[k + 1 :]):
                _wrap_negative(graph, node)
                return True
        return False
    rewrites = {
        ("add", 1): ("subtract", lambda a, b: (a, b)),
        ("add", 0): ("subtract", lambda a, b: (node.inputs[1], a)),
        ("subtract", 1): ("add", lambda a, b: (node.inputs[0], b)),
    }
    for k in (1, 0):
        inner = neg_operand(k)
        if inner is None or (node.op, k) not in rewrites:
            continue
        op, operands = rewrites[(node.op, k)]
        new = operands(node.inputs[0], inner) if k == 1 else operands(inner, None)
        candidate = Aval(node.shape, result_dtype(op, tuple(graph.node(i).dtype for i in new)), node.aval.weak)
        if candidate != node.aval or any(graph.node(i).aval.weak for i in new):
            continue
        node.op = op
        graph.set_inputs(node.id, new)
        return True
    return False


@_applies_to(lambda op, prim: prim.linear)
def _negation_outward(graph: Graph, node: Node) -> bool:
    """sum(-a) -> -sum(a), and likewise through means, reshapes, transposes,
    broadcasts and indexing, so the negation can reach a sum or difference."""
    if graph.use_count(node.id) != 1 or node.dtype.kind not in "fc":
        return False
    operand = graph.node(node.inputs[0])
    if operand.op != "negative" or graph.use_count(operand.id) != 1:
        return False
    if not _try_inputs(graph, node, (operand.inputs[0],) + node.inputs[1:]):
        return False
    _wrap_negative(graph, node)
    return True


def _wrap_negative(graph: Graph, node: Node) -> None:
    """Put a negation after `node`: its users read -node."""
    users = [u for u in graph.users(node.id)]
    outputs = list(graph.outputs)
    neg = graph.add("negative", (node.id,), {}, node.aval, loc=node.loc, grad_of=node.grad_of)
    neg_node = graph.node(neg)
    neg_node.name, neg_node.cotangent_of, neg_node.tangent_of = node.name, node.cotangent_of, node.tangent_of
    node.name = node.cotangent_of = node.tangent_of = None
    for u in users:
        graph.set_inputs(u, (neg if j == node.id else j for j in graph.node(u).inputs))
    graph.outputs = [neg if j == node.id else j for j in outputs]


_RULES = (
    _remove_identity, _fold, _fill_constant, _collapse_moves, _drop_broadcast, _weaken_scalar,
    _reassociate, _scale_smaller_factor, _minus_one_to_negation, _pull_negation, _negation_outward,
)


@functools.lru_cache(maxsize=None)
def _rules_for(op: str) -> tuple[Rule, ...]:
    """The rewrites that can apply to primitive `op`, in `_RULES` order."""
    prim = registry.get(op)
    return tuple(rule for rule in _RULES if _APPLIES[rule](op, prim))


def _transparent(node: Node) -> bool:
    """Whether rewrites read through `node` to its first operand, to any depth
    (`constant_value` and the view analysis follow copies, casts and views)."""
    return node.op == "copy" or node.op == "astype" or is_view(node)


class _NearChanges:
    """The nodes a rewrite of which may read a changed node: the changed node itself,
    its readers and theirs (no rule reads deeper than an operand's operand), where
    reading through a copy, cast or view costs no depth. Grown as changes come in.

    A Python-number constant never changes, and no rule asks who reads one or how
    often (it prints as a literal): when it is recorded, it gained or lost a reader,
    and that reader was recorded too. (A change of the graph's outputs records the
    readers of the values it adds or drops.) So its readers, often every node that
    multiplies by the same literal, are not reached through it."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.reached: dict[int, int] = {}  # node -> the most depth left when it was reached

    def add(self, changed: list[int]) -> None:
        succ, data, reached = self.graph.dag._succ, self.graph.dag._node, self.reached
        stack = [(i, 2) for i in changed if i in succ]
        while stack:
            i, left = stack.pop()
            if reached.get(i, -1) >= left:
                continue
            reached[i] = left
            node = data[i]["node"]
            if node.is_const and node.aval.weak:
                continue
            left -= 0 if _transparent(node) else 1
            if left >= 0:
                stack.extend((r, left) for r in succ[i])


def simplify(graph: Graph, near_changes: bool = False) -> bool:
    """Apply the rewrites once over the graph; True when anything changed.

    With `near_changes`, while the graph records its changes (`Graph.changes`), only
    nodes near a change recorded since the previous simplify began are tried: every
    rule on any other node reads exactly what it read when that pass tried the node,
    and finds nothing again. So the result is the same as a full pass, for the cost
    of the changed part of the graph (the optimizer's later rounds)."""
    since = graph.changes
    near = None
    if since is not None:
        graph.changes = []  # what this pass changes: the next pass's `since`
        if near_changes:
            near = _NearChanges(graph)
            near.add(since)
    seen = 0  # changes of this pass already added to `near`
    changed = False
    for node in graph.nodes():
        if not node.is_call or node.id not in graph:
            continue
        if near is not None:
            if len(graph.changes) > seen:
                near.add(graph.changes[seen:])
                seen = len(graph.changes)
            if node.id not in near.reached:
                continue
        if any(rule(graph, node) for rule in _rules_for(node.op)):
            changed = True
    return changed


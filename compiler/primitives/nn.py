"""Fused neural-network primitives: runtime.nn functions marked `@fused` compile to
one node each (see compiler.fused_dispatch), with a numerically stable VJP of their
own instead of a trace of their NumPy bodies.

Generated code spells each one in plain NumPy with the runtime's own stable formula
(`np.exp(-np.logaddexp(0, -x))` for sigmoid), so a saved module needs NumPy alone.

logsumexp, log_softmax and softmax cross-entropy are built (compiler.fused_dispatch)
from the parts a careful hand-written version computes once: the shift m (the
maximum, held constant: `softmax_shift`), exps = exp(x - m) and their sums. Softmax
cross-entropy's backward pass reuses those exponentials, (exps / sums - onehot) / N
computed in place; that backward primitive has VJP and JVP rules of its own, so
second derivatives (Hessian-vector products) pass through it.
"""
from __future__ import annotations

import ast

import numpy as np

from compiler.ir import Aval
from compiler.primitives.elementwise import dtype_or_weak_type, elementwise_abstract, result_dtype
from compiler.primitives.reduce import reduced_shape
from compiler.primitives.registry import Primitive, literal, method_call, np_call, register


def _name(target: ast.Name) -> ast.Name:
    return ast.Name(target.id, ast.Load())


def _assign(target: ast.Name, value: ast.expr) -> ast.stmt:
    return ast.Assign([ast.Name(target.id, ast.Store())], value)


def _axis(axis: tuple[int, ...]) -> object:
    return axis[0] if len(axis) == 1 else axis


def _shift_stmts(target: ast.Name, x: ast.expr, *, axis: tuple[int, ...], guard: bool) -> list[ast.stmt]:
    """`m = x.max(axis, keepdims=True)`; with `guard`, a non-finite maximum replaced by
    0 (so a row of -inf stays at -inf instead of becoming nan, and a row holding +inf
    at +inf, as in runtime.nn.logsumexp)."""
    kept = {"axis": _axis(axis), "keepdims": True}
    stmts = [_assign(target, method_call(x, "max", **kept))]
    if guard:
        finite = np_call("where", np_call("isfinite", _name(target)), _name(target), literal(0))
        stmts.append(_assign(target, finite))
    return stmts


# softmax_shift(x, axis, guard): the shift m of the stable softmax family. Every value
# built from it is invariant to it: log(sum(exp(x - m))) + m and exp(x - m) / sum(exp(x - m))
# do not depend on m. So it is held constant (zero derivative, like JAX's
# stop_gradient on the max), and derivatives of those values are exact.
register(
    Primitive(
        "softmax_shift",
        abstract=lambda x, *, axis, guard: Aval(reduced_shape(x.shape, axis, True), x.dtype),
        emit_stmts=_shift_stmts,
        differentiable=False,
    )
)


# sigmoid: s' = s (1 - s), from the saved output
register(
    Primitive(
        "runtime.nn.sigmoid",
        abstract=elementwise_abstract("exp"),
        emit=lambda x: np_call("exp", ast.UnaryOp(ast.USub(), np_call("logaddexp", literal(0), ast.UnaryOp(ast.USub(), x)))),
        vjp=lambda g, out, x: (g * (out * (1 - out)),),
        lanewise=True,
    )
)

# relu: gradient 1 where the output is positive, 0 elsewhere (0 at 0, like PyTorch and JAX)
register(
    Primitive(
        "runtime.nn.relu",
        abstract=lambda x: Aval(x.shape, x.dtype),
        emit=lambda x: np_call("maximum", x, literal(0)),
        vjp=lambda g, out, x: (g * (out > 0),),
        lanewise=True,
        takes_out=True,
    )
)


# softmax cross-entropy over the last axis of (N, K) logits z, with integer labels (N,)
# or one-hot / probability rows (N, K). Operands: z, the softmax parts of its rows
# (shift m (N, 1), exps = exp(z - m), sums = sum(exps, axis=1, keepdims=True)), the
# labels, and for integer labels the row numbers np.arange(N). Its value is
# mean(lse - z[label]) (or sum(labels * (lse - z)) / N) with lse = m + log(sums).


def _split(rest: tuple, sparse: bool) -> tuple:
    """(rows, g) from the operands after the labels: rows for integer labels, then
    the cotangent g when there is one (either may be None)."""
    rows = rest[0] if sparse else None
    tail = rest[1:] if sparse else rest
    return rows, (tail[0] if tail else None)


def _sce_abstract(z: Aval, shift: Aval, exps: Aval, sums: Aval, labels: Aval, *rows: Aval, n: int,
                  sparse: bool) -> Aval:
    return Aval((), z.dtype if sparse else result_dtype("multiply", (z.dtype, labels.dtype)))


def _column(x: ast.expr) -> ast.expr:
    """`x[:, 0]`."""
    return ast.Subscript(x, ast.Tuple([ast.Slice(), literal(0)], ast.Load()), ast.Load())


def _sce_emit(z: ast.expr, shift: ast.expr, exps: ast.expr, sums: ast.expr, labels: ast.expr, *rows: ast.expr,
              n: int, sparse: bool) -> ast.expr:
    if sparse:
        picked = ast.Subscript(z, ast.Tuple([rows[0], labels], ast.Load()), ast.Load())
        per_row = ast.BinOp(ast.BinOp(_column(shift), ast.Sub(), picked), ast.Add(), np_call("log", _column(sums)))
        return ast.BinOp(method_call(per_row, "sum"), ast.Div(), literal(n))  # .mean() costs 1 us more
    lse_minus_z = ast.BinOp(ast.BinOp(shift, ast.Sub(), z), ast.Add(), np_call("log", sums))
    return ast.BinOp(method_call(ast.BinOp(labels, ast.Mult(), lse_minus_z), "sum"), ast.Div(), literal(n))


def _sce_vjp(g, out, z, shift, exps, sums, labels, *rows, n, sparse):
    """The whole derivative in z, (softmax - labels) / n from the saved exps and sums,
    goes to z: the paths through shift, exps and sums, which are functions of z
    alone, are folded into it (they get no cotangent)."""
    # the seed of a loss needs no multiply; a cotangent of a wider dtype (float32 logits
    # under float64 arithmetic) is cast, so the gradient has the logits' dtype
    seed = () if _is_unit(g) else (g if g.dtype == exps.dtype else g.astype(exps.dtype),)
    g_z = exps.apply("softmax_cross_entropy_grad", sums, labels, *rows, *seed, n=n, sparse=sparse)
    g_labels = None if sparse else g * (shift - z + np.log(sums)) / n
    return (g_z, None, None, None, g_labels) + (None,) * len(rows)


def _sce_jvp(tangents, out, z, shift, exps, sums, labels, *rows, n, sparse):
    """The loss is linear in (z, lse) and in the labels, with lse = shift + log(sums):
    d = mean over rows of dlse - dz[label] (sparse), or sum(labels (dlse - dz) +
    dlabels (lse - z)) / n. Every operand's tangent is used (the VJP folds them)."""
    t_z, t_shift, _, t_sums, t_labels = tangents[:5]
    t_lse = _total([t for t in (t_shift, None if t_sums is None else t_sums / sums) if t is not None])
    terms = []
    if sparse:
        if t_lse is not None:
            terms.append(np.sum(t_lse) / n)
        if t_z is not None:
            terms.append(-np.sum(t_z[rows[0], labels]) / n)
    else:
        shift_tangent = _difference(t_lse, t_z)
        if shift_tangent is not None:
            terms.append(np.sum(labels * shift_tangent) / n)
        if t_labels is not None:
            terms.append(np.sum(t_labels * (shift - z + np.log(sums))) / n)
    return _total(terms)


def _difference(a, b):
    """a - b for tangents that may be None (zero)."""
    if b is None:
        return a
    return -b if a is None else a - b


def _total(terms):
    """The sum of `terms`, None (zero) when there are none."""
    total = None
    for term in terms:
        total = term if total is None else total + term
    return total


register(Primitive("softmax_cross_entropy", abstract=_sce_abstract, emit=_sce_emit, vjp=_sce_vjp, jvp=_sce_jvp))


def _is_unit(g) -> bool:
    """Whether cotangent `g` is the constant 1 (`1.0`, or its cast `np.float32(1.0)`)."""
    graph, node = g.graph, g.graph.node(g.id)
    if node.op == "astype":
        node = graph.node(node.inputs[0])
    return graph.python_scalar(node.id) == 1


def _sce_grad_stmts(target: ast.Name, exps, sums, labels, *rest, n: int, sparse: bool) -> list[ast.stmt]:
    """`t = exps * (mass * s / sums); t -= labels * s` with s = g / n, in place in t:
    for integer labels `t = exps / (sums * n); t[rows, labels] -= 1 / n`."""
    rows, g = _split(rest, sparse)
    scale = literal(1 / n) if g is None else ast.BinOp(g, ast.Div(), literal(n))
    if sparse:
        factor = ast.BinOp(sums, ast.Mult(), literal(n))
        first = ast.BinOp(exps, ast.Div(), factor) if g is None else ast.BinOp(exps, ast.Mult(), ast.BinOp(g, ast.Div(), factor))
        picked = ast.Subscript(_name(target), ast.Tuple([rows, labels], ast.Load()), ast.Store())
        return [_assign(target, first), ast.AugAssign(picked, ast.Sub(), scale)]
    mass = method_call(labels, "sum", axis=1, keepdims=True)
    factor = ast.BinOp(mass, ast.Div(), ast.BinOp(sums, ast.Mult(), literal(n)))
    if g is not None:
        factor = ast.BinOp(g, ast.Mult(), factor)
    onehot = ast.BinOp(labels, ast.Div(), literal(n)) if g is None else ast.BinOp(labels, ast.Mult(), scale)
    return [_assign(target, ast.BinOp(exps, ast.Mult(), factor)),
            ast.AugAssign(ast.Name(target.id, ast.Store()), ast.Sub(), onehot)]


# softmax_cross_entropy_grad(exps, sums, labels[, rows][, g]) = (p * mass - labels) * s,
# with p = exps / sums (the softmax), mass = sum(labels, axis=1) (1 for integer labels,
# whose `labels` term is their one-hot rows) and s = g / n (1 / n without g). Its
# derivatives treat exps and sums as the operands they are; their own nodes carry them
# back to the logits.


def _sce_grad_scale(g, n):
    """s = g / n, or 1 / n when the cotangent g was the unit seed (left out)."""
    return 1 / n if g is None else g / n


def _sce_grad_p_scale(labels, s, sparse):
    """mass * s, the factor of p (mass is 1 for integer labels)."""
    return s if sparse else np.sum(labels, axis=1, keepdims=True) * s


def _sce_grad_unscaled(exps, sums, labels, rest, *, n, sparse):
    """(p * mass - labels) / n: the result's derivative in its cotangent g (the last
    of `rest`, left out)."""
    return exps.apply("softmax_cross_entropy_grad", sums, labels, *rest[:-1], n=n, sparse=sparse)


def _sce_grad_vjp(gg, out, exps, sums, labels, *rest, n, sparse):
    """With c = mass * s: gg c / sums for exps, -sum(gg exps, axis=1) c / sums^2 for
    sums, s (sum(gg p, axis=1) - gg) for float labels, sum(gg (p mass - labels)) / n
    for g."""
    _, g = _split(rest, sparse)
    s = _sce_grad_scale(g, n)
    c_over_sums = _sce_grad_p_scale(labels, s, sparse) / sums
    weighted = np.sum(gg * exps, axis=1, keepdims=True)
    g_labels = None if sparse else s * (weighted / sums - gg)
    cts = (gg * c_over_sums, -weighted * c_over_sums / sums, g_labels) + ((None,) if sparse else ())
    if g is None:
        return cts
    return cts + (np.sum(gg * _sce_grad_unscaled(exps, sums, labels, rest, n=n, sparse=sparse)),)


def _sce_grad_jvp(tangents, out, exps, sums, labels, *rest, n, sparse):
    """d = c (dexps - p dsums) / sums + s (p dmass - dlabels) + dg (p mass - labels) / n,
    with p = exps / sums and c = mass * s."""
    _, g = _split(rest, sparse)
    t_exps, t_sums, t_labels = tangents[:3]
    s = _sce_grad_scale(g, n)
    c_over_sums = _sce_grad_p_scale(labels, s, sparse) / sums
    terms = []
    d_exps = _difference(t_exps, None if t_sums is None else exps / sums * t_sums)  # sums * d(exps / sums)
    if d_exps is not None:
        terms.append(d_exps * c_over_sums)
    if t_labels is not None:
        terms.append((exps / sums * np.sum(t_labels, axis=1, keepdims=True) - t_labels) * s)
    if g is not None and tangents[-1] is not None:
        terms.append(tangents[-1] * _sce_grad_unscaled(exps, sums, labels, rest, n=n, sparse=sparse))
    return _total(terms)


register(
    Primitive(
        "softmax_cross_entropy_grad",
        abstract=lambda exps, sums, labels, *rest, n, sparse: Aval(exps.shape, exps.dtype),
        emit_stmts=_sce_grad_stmts,
        vjp=_sce_grad_vjp,
        jvp=_sce_grad_jvp,
    )
)


def _bce_abstract(z: Aval, y: Aval, *, n: int) -> Aval:
    return Aval((), result_dtype("multiply", (dtype_or_weak_type(z), dtype_or_weak_type(y))))


def _bce_vjp(g, out, z, y, *, n):
    p = z.apply("runtime.nn.sigmoid")
    if y.dtype.kind not in "fc":
        return g * (p - y) / n, None
    g_y = g * -z / n
    shape = np.broadcast_shapes(z.shape, y.shape)
    if g_y.shape != shape:  # labels broadcast the logits: the loss sums over both
        g_y = np.broadcast_to(g_y, shape)
    return g * (p - y) / n, g_y


def _bce_jvp(tangents, out, z, y, *, n):
    """d = sum((sigmoid(z) - y) dz - z dy) / n, summed over the broadcast shape."""
    t_z, t_y = tangents
    terms = []
    if t_z is not None:
        terms.append(np.sum((z.apply("runtime.nn.sigmoid") - y) * t_z) / n)
    if t_y is not None:
        terms.append(-np.sum(z * t_y) / n)
    return _total(terms)


register(
    Primitive(
        "runtime.nn.binary_cross_entropy_with_logits",
        abstract=_bce_abstract,
        emit=lambda z, y, *, n: ast.BinOp(
            method_call(ast.BinOp(np_call("logaddexp", literal(0), z), ast.Sub(), ast.BinOp(y, ast.Mult(), z)), "sum"),
            ast.Div(), literal(n),
        ),
        vjp=_bce_vjp,
        jvp=_bce_jvp,
    )
)

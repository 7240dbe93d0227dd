"""Fused neural-network primitives: runtime.nn functions marked `@fused` compile to
one node each (see compiler.fused_dispatch), with a numerically stable VJP of their
own instead of a trace of their NumPy bodies.

Generated code spells each one in plain NumPy with the runtime's own stable formula
(`np.exp(-np.logaddexp(0, -x))` for sigmoid, max-shifted log-sum-exp), so a saved
module needs NumPy alone. Softmax
cross-entropy keeps the row-wise log-sum-exp of the forward pass, and its backward
pass is (softmax(z) - onehot) / N computed from it in place; that backward primitive
has VJP and JVP rules of its own, so second derivatives (Hessian-vector products)
pass through it. The JVP rules use the same stable forms (softmax as exp(x - lse)).
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


def _logsumexp_stmts(target: ast.Name, x: ast.expr, axis: tuple[int, ...]) -> list[ast.stmt]:
    """`t = log(sum(exp(x - m))) + m` with m the maximum along `axis` (kept), using the
    target as the scratch for m; a non-finite maximum is not subtracted, which keeps
    a row of -inf at -inf instead of nan (as runtime.nn.logsumexp)."""
    t, kept = _name(target), {"axis": _axis(axis), "keepdims": True}
    finite = np_call("where", np_call("isfinite", t), _name(target), literal(0))
    total = method_call(np_call("exp", ast.BinOp(x, ast.Sub(), _name(target))), "sum", **kept)
    return [
        _assign(target, method_call(x, "max", **kept)),
        _assign(target, finite),
        _assign(target, ast.BinOp(np_call("log", total), ast.Add(), _name(target))),
    ]


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


def _lse_abstract(x: Aval, *, axis: tuple[int, ...], keepdims: bool) -> Aval:
    return Aval(reduced_shape(x.shape, axis, keepdims), result_dtype("exp", (x.dtype,)))


def _lse_stmts(target: ast.Name, x: ast.expr, *, axis: tuple[int, ...], keepdims: bool) -> list[ast.stmt]:
    stmts = _logsumexp_stmts(target, x, axis)
    if not keepdims:
        stmts.append(_assign(target, np_call("squeeze", _name(target), axis=_axis(axis))))
    return stmts


def _lse_vjp(g, out, x, *, axis, keepdims):
    if not keepdims:
        kept = reduced_shape(x.shape, axis, True)
        g, out = np.reshape(g, kept), np.reshape(out, kept)
    return (g * np.exp(x - out),)


def _lse_jvp(tangents, out, x, *, axis, keepdims):
    """d lse = sum(softmax(x) * dx, axis), with softmax(x) = exp(x - lse) (at most 1)."""
    (t,) = tangents
    kept = out if keepdims else np.reshape(out, reduced_shape(x.shape, axis, True))
    return np.sum(t * np.exp(x - kept), axis=axis, keepdims=keepdims)


register(Primitive("runtime.nn.logsumexp", abstract=_lse_abstract, emit_stmts=_lse_stmts, vjp=_lse_vjp,
                   jvp=_lse_jvp, inline_operands=False))


def _log_softmax_stmts(target: ast.Name, x: ast.expr, *, axis: int) -> list[ast.stmt]:
    """`t = x - logsumexp(x, axis, keepdims=True)`."""
    return _logsumexp_stmts(target, x, (axis,)) + [_assign(target, ast.BinOp(x, ast.Sub(), _name(target)))]


register(
    Primitive(
        "runtime.nn.log_softmax",
        abstract=lambda x, *, axis: Aval(x.shape, result_dtype("exp", (x.dtype,))),
        emit_stmts=_log_softmax_stmts,
        vjp=lambda g, out, x, *, axis: (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),),
        # d log_softmax = dx - sum(softmax(x) * dx, axis), with softmax(x) = exp(out)
        jvp=lambda ts, out, x, *, axis: ts[0] - np.sum(np.exp(out) * ts[0], axis=axis, keepdims=True),
        inline_operands=False,
    )
)


# softmax cross-entropy over the last axis of (N, K) logits, with integer labels (N,)
# or one-hot / probability rows (N, K). Operands: logits, lse (N, 1), labels.


def _sce_abstract(z: Aval, lse: Aval, labels: Aval, *, n: int, sparse: bool) -> Aval:
    return Aval((), z.dtype if sparse else result_dtype("multiply", (z.dtype, labels.dtype)))


def _rows(n: int) -> ast.expr:
    return np_call("arange", literal(n))


def _sce_emit(z: ast.expr, lse: ast.expr, labels: ast.expr, *, n: int, sparse: bool) -> ast.expr:
    if sparse:
        column = ast.Subscript(lse, ast.Tuple([ast.Slice(), literal(0)], ast.Load()), ast.Load())
        picked = ast.Subscript(z, ast.Tuple([_rows(n), labels], ast.Load()), ast.Load())
        return method_call(ast.BinOp(column, ast.Sub(), picked), "mean")
    total = method_call(ast.BinOp(labels, ast.Mult(), ast.BinOp(lse, ast.Sub(), z)), "sum")
    return ast.BinOp(total, ast.Div(), literal(n))


def _sce_vjp(g, out, z, lse, labels, *, n, sparse):
    if _is_unit(g):  # the seed of a loss: no multiply
        g_z = z.apply("softmax_cross_entropy_grad", lse, labels, n=n, sparse=sparse)
    else:
        g_z = z.apply("softmax_cross_entropy_grad", lse, labels, g, n=n, sparse=sparse)
    g_labels = None if sparse else g * (lse - z) / n
    return g_z, None, g_labels


def _sce_jvp(tangents, out, z, lse, labels, *, n, sparse):
    """The loss is linear in (z, lse) and in the labels: d = mean over rows of
    dlse - dz[label] (sparse), or sum(labels (dlse - dz) + dlabels (lse - z)) / n.
    Unlike the VJP, which folds the lse path into z's cotangent, every operand's
    tangent is used here (lse's comes from its own logsumexp node)."""
    t_z, t_lse, t_labels = tangents
    terms = []
    if sparse:
        if t_lse is not None:
            terms.append(np.sum(t_lse) / n)
        if t_z is not None:
            terms.append(-np.sum(t_z[np.arange(n), labels]) / n)
    else:
        shift = _difference(t_lse, t_z)
        if shift is not None:
            terms.append(np.sum(labels * shift) / n)
        if t_labels is not None:
            terms.append(np.sum(t_labels * (lse - z)) / n)
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


def _sce_grad_stmts(target: ast.Name, z, lse, labels, g=None, *, n: int, sparse: bool) -> list[ast.stmt]:
    name = target.id
    load = lambda: ast.Name(name, ast.Load())  # noqa: E731
    stmts: list[ast.stmt] = [ast.Assign([ast.Name(name, ast.Store())], np_call("exp", ast.BinOp(z, ast.Sub(), lse)))]
    if sparse:
        rows = ast.Subscript(load(), ast.Tuple([_rows(n), labels], ast.Store()), ast.Store())
        stmts.append(ast.AugAssign(rows, ast.Sub(), literal(1)))
    else:
        mass = method_call(labels, "sum", axis=1, keepdims=True)
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Mult(), mass))
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Sub(), labels))
    if g is None:
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Div(), literal(n)))
    else:
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Mult(), ast.BinOp(g, ast.Div(), literal(n))))
    return stmts


# softmax_cross_entropy_grad(z, lse, labels[, g]) = (p * mass - labels) * s, with
# p = exp(z - lse), mass = sum(labels, axis=1) (1 for integer labels, whose `labels`
# term is their one-hot rows) and s = g / n (1 / n without g). Its derivatives treat
# lse as the operand it is; its own logsumexp node carries it back to z.


def _sce_grad_scale(g, n):
    """s = g / n, or 1 / n when the cotangent g was the unit seed (left out)."""
    return 1 / n if g is None else g / n


def _sce_grad_p_scale(labels, s, sparse):
    """mass * s, the factor of p (mass is 1 for integer labels)."""
    return s if sparse else np.sum(labels, axis=1, keepdims=True) * s


def _sce_grad_unscaled(z, lse, labels, *, n, sparse):
    """(p * mass - labels) / n: the result's derivative in g."""
    return z.apply("softmax_cross_entropy_grad", lse, labels, n=n, sparse=sparse)


def _sce_grad_vjp(gg, out, z, lse, labels, g=None, *, n, sparse):
    """With u = gg * p * mass * s: u for z, -sum(u, axis=1) for lse,
    s (sum(gg * p, axis=1) - gg) for float labels, sum(gg * (p * mass - labels)) / n for g."""
    s, p = _sce_grad_scale(g, n), np.exp(z - lse)
    u = gg * p * _sce_grad_p_scale(labels, s, sparse)
    g_labels = None if sparse else s * (np.sum(gg * p, axis=1, keepdims=True) - gg)
    cts = (u, -np.sum(u, axis=1, keepdims=True), g_labels)
    if g is None:
        return cts
    return cts + (np.sum(gg * _sce_grad_unscaled(z, lse, labels, n=n, sparse=sparse)),)


def _sce_grad_jvp(tangents, out, z, lse, labels, g=None, *, n, sparse):
    """d = s (p (mass (dz - dlse) + dmass) - dlabels) + dg (p * mass - labels) / n."""
    t_z, t_lse, t_labels = tangents[:3]
    s, p = _sce_grad_scale(g, n), np.exp(z - lse)
    terms = []
    shift = _difference(t_z, t_lse)
    if shift is not None:
        terms.append(p * shift * _sce_grad_p_scale(labels, s, sparse))
    if t_labels is not None:
        terms.append((p * np.sum(t_labels, axis=1, keepdims=True) - t_labels) * s)
    if g is not None and tangents[3] is not None:
        terms.append(tangents[3] * _sce_grad_unscaled(z, lse, labels, n=n, sparse=sparse))
    return _total(terms)


register(
    Primitive(
        "softmax_cross_entropy_grad",
        abstract=lambda z, lse, labels, g=None, *, n, sparse: Aval(z.shape, z.dtype),
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

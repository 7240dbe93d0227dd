"""Fused neural-network primitives: runtime.nn functions marked `@fused` compile to
one node each (see compiler.fused_dispatch), with a numerically stable VJP of their
own instead of a trace of their NumPy bodies.

Generated code calls the runtime function back (`runtime.nn.logsumexp(x, axis=1)`),
so the forward pass is the runtime's own stable implementation. Softmax
cross-entropy keeps the row-wise log-sum-exp of the forward pass, and its backward
pass is (softmax(z) - onehot) / N computed from it in place.
"""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import UnsupportedError
from compiler.ir import Aval
from compiler.primitives.elementwise import dtype_or_weak_type, elementwise_abstract, result_dtype
from compiler.primitives.reduce import reduced_shape
from compiler.primitives.registry import Primitive, literal, np_call, register


def runtime_call(fn: str, *args: ast.expr, **kwargs) -> ast.expr:
    target = ast.Attribute(ast.Attribute(ast.Name("runtime", ast.Load()), "nn", ast.Load()), fn, ast.Load())
    return ast.Call(target, list(args), [ast.keyword(k, literal(v)) for k, v in kwargs.items()])


# sigmoid: s' = s (1 - s), from the saved output
register(
    Primitive(
        "runtime.nn.sigmoid",
        abstract=elementwise_abstract("exp"),
        emit=lambda x: runtime_call("sigmoid", x),
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
    )
)


def _lse_abstract(x: Aval, *, axis: tuple[int, ...], keepdims: bool) -> Aval:
    return Aval(reduced_shape(x.shape, axis, keepdims), result_dtype("exp", (x.dtype,)))


def _lse_emit(x: ast.expr, *, axis: tuple[int, ...], keepdims: bool) -> ast.expr:
    return runtime_call("logsumexp", x, axis=axis[0] if len(axis) == 1 else axis, keepdims=keepdims)


def _lse_vjp(g, out, x, *, axis, keepdims):
    if not keepdims:
        kept = reduced_shape(x.shape, axis, True)
        g, out = np.reshape(g, kept), np.reshape(out, kept)
    return (g * np.exp(x - out),)


register(Primitive("runtime.nn.logsumexp", abstract=_lse_abstract, emit=_lse_emit, vjp=_lse_vjp))


register(
    Primitive(
        "runtime.nn.log_softmax",
        abstract=lambda x, *, axis: Aval(x.shape, result_dtype("exp", (x.dtype,))),
        emit=lambda x, *, axis: runtime_call("log_softmax", x, axis=axis),
        vjp=lambda g, out, x, *, axis: (g - np.exp(out) * np.sum(g, axis=axis, keepdims=True),),
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
        return np_call("mean", ast.BinOp(column, ast.Sub(), picked))
    total = np_call("sum", ast.BinOp(labels, ast.Mult(), ast.BinOp(lse, ast.Sub(), z)))
    return ast.BinOp(total, ast.Div(), literal(n))


def _sce_vjp(g, out, z, lse, labels, *, n, sparse):
    if _is_unit(g):  # the seed of a loss: no multiply
        g_z = z.apply("softmax_cross_entropy_grad", lse, labels, n=n, sparse=sparse)
    else:
        g_z = z.apply("softmax_cross_entropy_grad", lse, labels, g, n=n, sparse=sparse)
    g_labels = None if sparse else g * (lse - z) / n
    return g_z, None, g_labels


register(Primitive("softmax_cross_entropy", abstract=_sce_abstract, emit=_sce_emit, vjp=_sce_vjp))


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
        mass = np_call("sum", labels, axis=1, keepdims=True)
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Mult(), mass))
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Sub(), labels))
    if g is None:
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Div(), literal(n)))
    else:
        stmts.append(ast.AugAssign(ast.Name(name, ast.Store()), ast.Mult(), ast.BinOp(g, ast.Div(), literal(n))))
    return stmts


def _sce_grad_vjp(gg, out, z, lse, labels, g=None, *, n, sparse):
    raise UnsupportedError("second derivatives of softmax_cross_entropy are not supported yet")


register(
    Primitive(
        "softmax_cross_entropy_grad",
        abstract=lambda z, lse, labels, g=None, *, n, sparse: Aval(z.shape, z.dtype),
        emit_stmts=_sce_grad_stmts,
        vjp=_sce_grad_vjp,
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


register(
    Primitive(
        "runtime.nn.binary_cross_entropy_with_logits",
        abstract=_bce_abstract,
        emit=lambda z, y, *, n: runtime_call("binary_cross_entropy_with_logits", z, y),
        vjp=_bce_vjp,
    )
)

"""Matrix products: `@` / np.matmul (NumPy's rules for 1-D operands and batch
broadcasting) and np.outer. Gradients are products with transposed views
(`g @ W.T`, `x.T @ g`), which BLAS consumes without copies."""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.reduce import unbroadcast
from compiler.primitives.registry import Primitive, call, register


def _matmul_abstract(a: Aval, b: Aval) -> Aval:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("np.matmul: operands must be at least 1-D; use * for scalars")
    a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
    b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(
            f"np.matmul: shapes {a.shape} and {b.shape} do not align "
            f"({a_shape[-1]} columns vs {b_shape[-2]} rows)"
        )
    try:
        batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    except ValueError:
        raise ShapeError(f"np.matmul: batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
    shape = batch + (a_shape[-2] if a.ndim > 1 else None, b_shape[-1] if b.ndim > 1 else None)
    dtype = np.result_type(a.dtype, b.dtype)
    return Aval(tuple(d for d in shape if d is not None), dtype)


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _matmul_vjp(g, out, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if a.ndim <= 2 and b.ndim <= 2:
        if a.ndim == 1:
            return b @ g, np.outer(a, g)
        if b.ndim == 1:
            return np.outer(g, b), g @ a
        return g @ b.T, a.T @ g
    # batched: promote 1-D operands to matrices, sum broadcast batch axes, undo
    a2 = np.reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = np.reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    g2 = np.reshape(g, (a2 @ b2).shape)
    g_a = np.reshape(unbroadcast(g2 @ _mT(b2), a2.shape), a.shape)
    g_b = np.reshape(unbroadcast(_mT(a2) @ g2, b2.shape), b.shape)
    return g_a, g_b


register(Primitive("matmul", abstract=_matmul_abstract, emit=lambda a, b: ast.BinOp(a, ast.MatMult(), b),
                   vjp=_matmul_vjp, ufunc=True))


def _outer_abstract(a: Aval, b: Aval) -> Aval:
    return Aval((a.size, b.size), np.result_type(a.dtype, b.dtype))


def _outer_vjp(g, out, a, b):
    return np.reshape(g @ np.ravel(b), a.shape), np.reshape(np.ravel(a) @ g, b.shape)


register(Primitive("outer", abstract=_outer_abstract, emit=call("outer"), vjp=_outer_vjp))

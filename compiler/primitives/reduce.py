"""Reductions over static axes: sum, mean, max, min.

`axis` is always a sorted tuple of non-negative ints here (the tracer normalizes
NumPy's None / int / negative / tuple spellings), so gradients are decided at
compile time: the cotangent is reshaped to keep the reduced axes and broadcast back.
"""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, np_call, register


def reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def _axis_arg(ndim: int, axis: tuple[int, ...]):
    if len(axis) == ndim:
        return None
    return axis[0] if len(axis) == 1 else axis


def _emit(fn: str):
    def emit(x: ast.expr, *, axis: tuple[int, ...], keepdims: bool, ndim: int) -> ast.expr:
        kwargs = {}
        arg = _axis_arg(ndim, axis)
        if arg is not None:
            kwargs["axis"] = arg
        if keepdims:
            kwargs["keepdims"] = True
        return np_call(fn, x, **kwargs)

    return emit


def _abstract(fn: str):
    def abstract(x: Aval, *, axis: tuple[int, ...], keepdims: bool, ndim: int) -> Aval:
        if fn in ("max", "min") and any(x.shape[i] == 0 for i in axis):
            raise ShapeError(f"np.{fn}: zero-size axis has no maximum or minimum")
        dtype = getattr(np, fn)(np.ones(1, x.dtype)).dtype
        return Aval(reduced_shape(x.shape, axis, keepdims), dtype)

    return abstract


def expand_cotangent(g, x, axis: tuple[int, ...], keepdims: bool):
    """Cotangent of a reduction's output, reshaped to keep dims and broadcast to x."""
    leading = axis == tuple(range(len(axis)))
    if not keepdims and not leading:
        g = np.reshape(g, reduced_shape(x.shape, axis, True))
    return np.broadcast_to(g, x.shape)


def unbroadcast(g, shape: tuple[int, ...]):
    """Sum a cotangent of a broadcast result back to an operand's `shape`.

    Leading axes the operand lacks are summed away; axes where it has size 1 are
    summed with keepdims. Decided from static shapes: `np.sum(g, axis=0)` for a bias.
    """
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    ones = tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if ones:
        g = np.sum(g, axis=ones, keepdims=True)
    if lead:
        g = np.sum(g, axis=tuple(range(lead)))
    return g


def _sum_vjp(g, out, x, *, axis, keepdims, ndim):
    return (expand_cotangent(g, x, axis, keepdims),)


def _mean_vjp(g, out, x, *, axis, keepdims, ndim):
    count = int(np.prod([x.shape[i] for i in axis], dtype=np.int64))
    return (expand_cotangent(g / count, x, axis, keepdims),)


def _extremum_vjp(g, out, x, *, axis, keepdims, ndim):
    """Ties share the gradient evenly, as NumPy users of autograd/JAX expect."""
    winners = x == expand_cotangent(out, x, axis, keepdims)
    count = np.sum(winners, axis=axis, keepdims=True).astype(x.dtype)
    kept = g if keepdims else np.reshape(g, reduced_shape(x.shape, axis, True))
    return (np.where(winners, kept / count, 0),)


for _fn, _vjp in [("sum", _sum_vjp), ("mean", _mean_vjp), ("max", _extremum_vjp), ("min", _extremum_vjp)]:
    register(Primitive(_fn, abstract=_abstract(_fn), emit=_emit(_fn), vjp=_vjp, linear=_fn in ("sum", "mean")))

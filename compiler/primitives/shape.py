"""Primitives that move data without arithmetic: reshape, transpose, broadcast,
concatenate, stack, astype and copy. Shapes are static, so every gradient here is
the inverse movement with shapes fixed at compile time."""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, literal, np_call, register


def _reshape_abstract(x: Aval, *, shape: tuple[int, ...]) -> Aval:
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"np.reshape: cannot reshape an array of shape {x.shape} into shape {shape}")
    return Aval(tuple(shape), x.dtype)


register(
    Primitive(
        "reshape",
        abstract=_reshape_abstract,
        emit=lambda x, *, shape: np_call("reshape", x, literal(shape)),
        vjp=lambda g, out, x, *, shape: (np.reshape(g, x.shape),),
        view=True,
        linear=True,
    )
)


def _transpose_abstract(x: Aval, *, axes: tuple[int, ...]) -> Aval:
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"np.transpose: axes {axes} are not a permutation of an array of shape {x.shape}")
    return Aval(tuple(x.shape[a] for a in axes), x.dtype)


def _transpose_emit(x: ast.expr, *, axes: tuple[int, ...]) -> ast.expr:
    if axes == tuple(reversed(range(len(axes)))):
        return ast.Attribute(x, "T", ast.Load())
    return np_call("transpose", x, literal(axes))


register(
    Primitive(
        "transpose",
        abstract=_transpose_abstract,
        emit=_transpose_emit,
        vjp=lambda g, out, x, *, axes: (np.transpose(g, tuple(np.argsort(axes).tolist())),),
        view=True,
        linear=True,
    )
)


def _broadcast_abstract(x: Aval, *, shape: tuple[int, ...]) -> Aval:
    try:
        if tuple(np.broadcast_shapes(x.shape, shape)) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ShapeError(f"np.broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return Aval(tuple(shape), x.dtype)


register(
    Primitive(
        "broadcast_to",
        abstract=_broadcast_abstract,
        emit=lambda x, *, shape: np_call("broadcast_to", x, literal(shape)),
        vjp=lambda g, out, x, *, shape: (g,),
        view=True,
        linear=True,
    )
)


def _concat_abstract(*xs: Aval, axis: int) -> Aval:
    first = xs[0]
    for x in xs[1:]:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            shapes = ", ".join(str(v.shape) for v in xs)
            raise ShapeError(f"np.concatenate: shapes {shapes} differ outside axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Aval(tuple(shape), np.result_type(*(x.dtype for x in xs)))


def _concat_vjp(g, out, *xs, axis: int):
    pieces, start = [], 0
    for x in xs:
        index = (slice(None),) * axis + (slice(start, start + x.shape[axis]),)
        pieces.append(g[index])
        start += x.shape[axis]
    return tuple(pieces)


register(
    Primitive(
        "concatenate",
        abstract=_concat_abstract,
        emit=lambda *xs, axis: np_call("concatenate", ast.List(list(xs), ast.Load()), axis=axis),
        vjp=_concat_vjp,
    )
)


def _stack_abstract(*xs: Aval, axis: int) -> Aval:
    if any(x.shape != xs[0].shape for x in xs):
        shapes = ", ".join(str(v.shape) for v in xs)
        raise ShapeError(f"np.stack: all inputs need the same shape, got {shapes}")
    shape = list(xs[0].shape)
    shape.insert(axis, len(xs))
    return Aval(tuple(shape), np.result_type(*(x.dtype for x in xs)))


register(
    Primitive(
        "stack",
        abstract=_stack_abstract,
        emit=lambda *xs, axis: np_call("stack", ast.List(list(xs), ast.Load()), axis=axis),
        vjp=lambda g, out, *xs, axis: tuple(g[(slice(None),) * axis + (i,)] for i in range(len(xs))),
    )
)


def _astype_vjp(g, out, x, *, dtype):
    if x.dtype.kind not in "fc":
        return (None,)
    return (g.astype(x.dtype),)


def _astype_emit(x: ast.expr, *, dtype) -> ast.expr:
    return ast.Call(ast.Attribute(x, "astype", ast.Load()), [literal(np.dtype(dtype))], [])


def _scalar_cast_emit(x: ast.expr, *, dtype) -> ast.expr:
    """A Python number has no `.astype`: `np.float32(1.0)`."""
    return np_call(np.dtype(dtype).name, x)


register(
    Primitive(
        "astype",
        abstract=lambda x, *, dtype: Aval(x.shape, np.dtype(dtype)),
        emit=_astype_emit,
        emit_weak=_scalar_cast_emit,
        vjp=_astype_vjp,
        lanewise=True,
    )
)

register(
    Primitive(
        "copy",
        abstract=lambda x: Aval(x.shape, x.dtype),
        emit=lambda x: np_call("array", x, copy=True),
        vjp=lambda g, out, x: (g,),
        lanewise=True,
    )
)


def _full_emit(*, shape: tuple[int, ...], value, dtype) -> ast.expr:
    if shape == ():  # a NumPy scalar, as reductions return
        return np_call(np.dtype(dtype).name, literal(value))
    if value == 0:
        return np_call("zeros", literal(tuple(shape)), dtype=np.dtype(dtype))
    return np_call("full", literal(tuple(shape)), literal(value), dtype=np.dtype(dtype))


register(
    Primitive(
        "full",
        abstract=lambda *, shape, value, dtype: Aval(tuple(shape), np.dtype(dtype)),
        emit=_full_emit,
        differentiable=False,
    )
)

"""Indexing: `x[...]` with ints, slices (any step), None, Ellipsis and integer
arrays, and its adjoint, a scatter-add into a fresh zero buffer.

An index is a static spec, a tuple of entries ("int", i), ("slice", start, stop,
step), ("none",), ("ellipsis",) or ("array", k), where k counts the integer-array
operands that follow `x`. The gradient of a gather with repeated indices
accumulates (`np.add.at`); basic indexing never repeats, so it assigns a slice.
"""
from __future__ import annotations

import ast
from typing import Any, Sequence

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, literal, np_attr, np_call, register

Spec = tuple[tuple, ...]


def concrete_index(spec: Spec, arrays: Sequence[Any]) -> tuple:
    """The NumPy index a spec stands for, with `arrays` in the array slots."""
    out = []
    for entry in spec:
        kind = entry[0]
        if kind == "int":
            out.append(entry[1])
        elif kind == "slice":
            out.append(slice(*entry[1:]))
        elif kind == "none":
            out.append(None)
        elif kind == "ellipsis":
            out.append(Ellipsis)
        else:
            out.append(arrays[entry[1]])
    return tuple(out)


def _stand_ins(avals: Sequence[Aval]) -> list[np.ndarray]:
    return [np.zeros(a.shape, dtype=a.dtype) for a in avals]


def _getitem_abstract(x: Aval, *arrays: Aval, spec: Spec) -> Aval:
    base = np.broadcast_to(np.empty((), dtype=x.dtype), x.shape)
    try:
        result = base[concrete_index(spec, _stand_ins(arrays))]
    except IndexError as err:
        raise ShapeError(f"indexing an array of shape {x.shape}: {err}") from None
    return Aval(np.shape(result), x.dtype)


def index_expr(spec: Spec, arrays: Sequence[ast.expr]) -> ast.expr:
    items = []
    for entry in spec:
        kind = entry[0]
        if kind == "slice":
            parts = [None if v is None else literal(v) for v in entry[1:]]
            items.append(ast.Slice(*parts))
        elif kind == "int":
            items.append(literal(entry[1]))
        elif kind == "none":
            items.append(ast.Constant(None))
        elif kind == "ellipsis":
            items.append(ast.Constant(Ellipsis))
        else:
            items.append(arrays[entry[1]])
    return items[0] if len(items) == 1 else ast.Tuple(items, ast.Load())


def _getitem_vjp(g, out, x, *arrays, spec):
    return (g.apply("index_add", *arrays, spec=spec, shape=x.shape, dtype=x.dtype),) + (None,) * len(arrays)


register(
    Primitive(
        "getitem",
        abstract=_getitem_abstract,
        emit=lambda x, *arrays, spec: ast.Subscript(x, index_expr(spec, arrays), ast.Load()),
        vjp=_getitem_vjp,
        view=True,
        linear=True,
    )
)


def _index_add_stmts(target: ast.Name, g: ast.expr, *arrays: ast.expr, spec, shape, dtype) -> list[ast.stmt]:
    store = ast.Name(target.id, ast.Store())
    zeros = ast.Assign([store], np_call("zeros", literal(tuple(shape)), dtype=np.dtype(dtype)))
    index = index_expr(spec, arrays)
    if arrays:
        where = ast.Subscript(np_attr("s_"), index, ast.Load())
        add = ast.Expr(ast.Call(np_attr("add.at"), [ast.Name(target.id, ast.Load()), where, g], []))
    else:
        add = ast.Assign([ast.Subscript(ast.Name(target.id, ast.Load()), index, ast.Store())], g)
    return [zeros, add]


def _index_add_abstract(g: Aval, *arrays: Aval, spec: Spec, shape, dtype) -> Aval:
    """A buffer of `shape` with `g` added at the indexed positions: `g` must
    broadcast to the indexed region's shape (without enlarging it), as the write
    `buffer[index] = g` does at run time."""
    region = _getitem_abstract(Aval(tuple(shape), np.dtype(dtype)), *arrays, spec=spec).shape
    try:
        fits = np.broadcast_shapes(g.shape, region) == region
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"a cotangent of shape {g.shape} cannot be added into an indexed region of shape {region}")
    return Aval(tuple(shape), np.dtype(dtype))


def _index_add_vjp(g, out, ct, *arrays, spec, shape, dtype):
    return (g[concrete_index(spec, arrays)],) + (None,) * len(arrays)


register(
    Primitive(
        "index_add",
        abstract=_index_add_abstract,
        emit_stmts=_index_add_stmts,
        vjp=_index_add_vjp,
    )
)

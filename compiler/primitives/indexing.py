"""Indexing: `x[...]` with ints, slices (any step), None, Ellipsis and integer
arrays, and its adjoint, a scatter-add into a fresh zero buffer; and the
functional update `x[...] = v` (`setitem`: a copy of x with v written in).

An index is a static spec, a tuple of entries ("int", i), ("slice", start, stop,
step), ("none",), ("ellipsis",) or ("array", k), where k counts the integer-array
operands that follow `x` (after `v` for setitem). The gradient of a gather with
repeated indices accumulates (`np.add.at`); basic indexing never repeats, so it
assigns a slice. An assignment with repeated indices keeps NumPy's result, the
last write to each position: only that write of `v` receives a gradient.

Integer-array operands may be computed by the traced function (`np.floor(x).astype(int)`):
every program indexes with them at run time as NumPy does, wrapping negative indices
and raising IndexError past either end (`np.add.at` checks them as indexing does). They
carry no derivative.
"""
from __future__ import annotations

import ast
from typing import Any, Sequence

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, joint_linear_rule, literal, np_attr, np_call, register

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


def _getitem_batched_jvp(ts, out, x, *arrays, spec):
    """The same index behind a full slice over the leading batch axis. Advanced
    indices (integer arrays, and with them plain ints) that are not side by side
    would move their axes in front of the batch (NumPy's rule for separated advanced
    indices): those go element by element."""
    arrays_present = any(entry[0] == "array" for entry in spec)
    slots = [k for k, entry in enumerate(spec) if entry[0] == "array" or arrays_present and entry[0] == "int"]
    if slots and slots[-1] - slots[0] != len(slots) - 1:
        return NotImplemented
    return ts[0].apply("getitem", *arrays, spec=(("slice", None, None, None),) + tuple(spec))


def _getitem_vjp(g, out, x, *arrays, spec):
    return (g.apply("index_add", *arrays, spec=spec, shape=x.shape, dtype=x.dtype),) + (None,) * len(arrays)


register(
    Primitive(
        "getitem",
        abstract=_getitem_abstract,
        emit=lambda x, *arrays, spec: ast.Subscript(x, index_expr(spec, arrays), ast.Load()),
        vjp=_getitem_vjp,
        batched_jvp=_getitem_batched_jvp,
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


def broadcasts_into(shape: tuple[int, ...], region: tuple[int, ...]) -> bool:
    """Whether an array of `shape` broadcasts to `region` without enlarging it."""
    try:
        return np.broadcast_shapes(shape, region) == tuple(region)
    except ValueError:
        return False


def _index_add_abstract(g: Aval, *arrays: Aval, spec: Spec, shape, dtype) -> Aval:
    """A buffer of `shape` with `g` added at the indexed positions: `g` must
    broadcast to the indexed region's shape (without enlarging it), as the write
    `buffer[index] = g` does at run time."""
    region = _getitem_abstract(Aval(tuple(shape), np.dtype(dtype)), *arrays, spec=spec).shape
    if not broadcasts_into(g.shape, region):
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
        jvp=joint_linear_rule("index_add", (0,)),
    )
)


def _setitem_abstract(x: Aval, v: Aval, *arrays: Aval, spec: Spec) -> Aval:
    region = _getitem_abstract(x, *arrays, spec=spec).shape
    if not broadcasts_into(v.shape, region):
        raise ShapeError(f"cannot assign a value of shape {v.shape} into an indexed region of shape {region}")
    return Aval(x.shape, x.dtype)


def _setitem_stmts(target: ast.Name, x: ast.expr, v: ast.expr, *arrays: ast.expr, spec: Spec) -> list[ast.stmt]:
    """`y = x.copy()` then `y[index] = v`."""
    copy = ast.Call(ast.Attribute(x, "copy", ast.Load()), [], [])
    write = ast.Subscript(ast.Name(target.id, ast.Load()), index_expr(spec, arrays), ast.Store())
    return [ast.Assign([ast.Name(target.id, ast.Store())], copy), ast.Assign([write], v)]


def _setitem_vjp(g, out, x, v, *arrays, spec):
    """x gets g with the overwritten positions zeroed; v gets g at the positions it
    was written to (only where its write was the last one). A real v written into a
    complex x gets the real part of its share (dL/dv), cast without NumPy's
    ComplexWarning."""
    g_x = g.apply("setitem", 0.0, *arrays, spec=spec)
    g_v = g[concrete_index(spec, arrays)]
    if not _writes_once(x.shape, spec, arrays):
        last = arrays[0].apply("last_write", *arrays[1:], spec=spec, shape=x.shape, region=g_v.shape)
        g_v = np.where(last, g_v, 0.0)
    if g_v.dtype.kind == "c" and v.dtype.kind != "c":
        g_v = np.real(g_v)
    if v.dtype != g_v.dtype and not v.aval.weak:
        g_v = g_v.astype(v.dtype)
    return (g_x, g_v) + (None,) * len(arrays)


def _writes_once(shape: tuple[int, ...], spec: Spec, arrays: Sequence[Any]) -> bool:
    """Whether the index is known at compile time to name no position twice: basic
    indexing, or constant index arrays without repeats."""
    if not arrays:
        return True
    nodes = [a.graph.node(a.id) for a in arrays]
    if not all(n.is_const and not n.params.get("captured") for n in nodes):
        return False  # known only at run time: computed, or a captured global (it may change in place)
    positions = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    written = positions[concrete_index(spec, [n.params["value"] for n in nodes])]
    return np.unique(written).size == written.size


def _setitem_jvp(ts, out, x, v, *arrays, spec):
    """Linear in x and v together: dx with dv written in (the same last write wins),
    0 standing in for a missing tangent."""
    t_x, t_v = ts[:2]
    if t_x is None:
        t_x = np.zeros_like(x)
    return t_x.apply("setitem", 0.0 if t_v is None else t_v, *arrays, spec=spec)


register(
    Primitive(
        "setitem",
        abstract=_setitem_abstract,
        emit_stmts=_setitem_stmts,
        vjp=_setitem_vjp,
        jvp=_setitem_jvp,
    )
)


def _last_write_abstract(*arrays: Aval, spec: Spec, shape, region) -> Aval:
    written = _getitem_abstract(Aval(tuple(shape), np.dtype(np.intp)), *arrays, spec=spec).shape
    if written != tuple(region):
        raise ShapeError(f"an index writing a region of shape {written} numbered as {tuple(region)}")
    return Aval(tuple(region), np.dtype(bool))


def _last_write_stmts(target: ast.Name, *arrays: ast.expr, spec: Spec, shape, region) -> list[ast.stmt]:
    """Which writes of `buffer[index] = values` land last, found the way NumPy
    resolves them: write each write's number, then read back which numbers stayed.

        keep = np.zeros(shape, dtype=np.intp)
        keep[index] = np.arange(n)
        keep = keep[index] == np.arange(n)
    """
    def numbers() -> ast.expr:
        count = np_call("arange", literal(int(np.prod(region, dtype=np.int64))))
        if len(region) == 1:
            return count
        return ast.Call(ast.Attribute(count, "reshape", ast.Load()), [literal(tuple(region))], [])

    def written(ctx: ast.expr_context) -> ast.expr:
        return ast.Subscript(ast.Name(target.id, ast.Load()), index_expr(spec, arrays), ctx)

    store = ast.Name(target.id, ast.Store())
    return [
        ast.Assign([store], np_call("zeros", literal(tuple(shape)), dtype=np.dtype(np.intp))),
        ast.Assign([written(ast.Store())], numbers()),
        ast.Assign([store], ast.Compare(written(ast.Load()), [ast.Eq()], [numbers()])),
    ]


register(
    Primitive(
        "last_write",
        abstract=_last_write_abstract,
        emit_stmts=_last_write_stmts,
        differentiable=False,
    )
)


# --- selections whose size the data decides -------------------------------------------
# flatnonzero(mask, size=k): the flat positions of mask's nonzero elements, when a
# decision of the trace (a guard on the count) fixed their number at k.
register(Primitive(
    "flatnonzero",
    abstract=lambda mask, *, size: Aval((size,), np.dtype(np.int64)),
    emit=lambda mask, *, size: np_call("flatnonzero", mask),
    differentiable=False,
))


def _unique_emit(ar: ast.expr, *, part: str, size: int, shape: tuple) -> ast.expr:
    """`np.unique(ar).size`, or the first index, inverse or counts of np.unique."""
    if part == "size":
        return ast.Attribute(np_call("unique", ar), "size", ast.Load())
    flag = {"index": "return_index", "inverse": "return_inverse", "counts": "return_counts"}[part]
    return ast.Subscript(np_call("unique", ar, **{flag: True}), literal(1), ast.Load())


# unique(ar, part, size, shape): np.unique's number of distinct values ("size", 0-d), or
# the index of each one's first occurrence, the inverse or the counts, of static shape
register(Primitive(
    "unique",
    abstract=lambda ar, *, part, size, shape: Aval(tuple(shape), np.dtype(np.int64)),
    emit=_unique_emit,
    differentiable=False,
))

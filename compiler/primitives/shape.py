"""Primitives that move data without arithmetic: reshape, transpose, broadcast,
concatenate, stack, astype, copy, tile, repeat, pad, roll, take_along_axis (and its
adjoint add_along_axis) and convolve. Shapes are static, so every gradient here is
the inverse movement with shapes fixed at compile time."""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.elementwise import conj_if_complex
from compiler.primitives.registry import (
    Primitive, batched_linear, joint_linear_rule, literal, np_attr, np_call, product_rule, register, shifted_axes,
)


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
        batched_jvp=lambda ts, out, x, *, shape: np.reshape(ts[0], ts[0].shape[:1] + tuple(shape)),
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
        batched_jvp=lambda ts, out, x, *, axes: np.transpose(ts[0], (0,) + tuple(a + 1 for a in axes)),
        view=True,
        linear=True,
    )
)


def _broadcast_batched_jvp(ts, out, x, *, shape):
    """The batched tangent (batch, *x.shape) padded with 1s to the target's rank,
    then broadcast with the batch axis kept in front."""
    t = ts[0]
    padded = np.reshape(t, t.shape[:1] + (1,) * (len(shape) - x.ndim) + tuple(x.shape))
    return np.broadcast_to(padded, t.shape[:1] + tuple(shape))


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
        batched_jvp=_broadcast_batched_jvp,
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
        jvp=joint_linear_rule("concatenate"),
        batched_jvp=batched_linear("concatenate", shifted_axes, differentiable=None),
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
        jvp=joint_linear_rule("stack"),
        batched_jvp=batched_linear("stack", shifted_axes, differentiable=None),
    )
)


def _astype_vjp(g, out, x, *, dtype):
    if x.dtype.kind not in "fc":
        return (None,)
    if g.dtype.kind == "c" and x.dtype.kind != "c":
        g = np.real(g)  # a real value made complex: its gradient is the real part's
    return (g.astype(x.dtype),)


def _astype_jvp(ts, out, x, *, dtype):
    """The tangent cast to the result's dtype (the derived rule would cast to x's);
    a complex value cast to real keeps its real part, and so does its tangent."""
    t = ts[0]
    if t.dtype.kind == "c" and out.dtype.kind != "c":
        t = np.real(t)
    return t.astype(out.dtype)


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
        jvp=_astype_jvp,
        batched_jvp=_astype_jvp,
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


def along(x, axis: int, index):
    """`x[:, ..., index]` with `index` at position `axis`."""
    return x[(slice(None),) * axis + (index,)]


def span(start: int, stop: int, length: int) -> slice:
    """slice(start, stop) over an axis of `length`, with the ends left out as a
    person writes them (`g[2:]`, `g[:3]`, `g[:]`)."""
    return slice(start or None, None if stop == length else stop)


def _ints_literal(values: tuple[int, ...]) -> ast.expr:
    """A tuple of ints as written by hand: `3` for a single entry."""
    return literal(values[0] if len(values) == 1 else values)


def _tile_abstract(x: Aval, *, reps: tuple[int, ...]) -> Aval:
    if any(r < 0 for r in reps):
        raise ShapeError(f"np.tile: negative repetitions {reps}")
    ndim = max(x.ndim, len(reps))
    shape = (1,) * (ndim - x.ndim) + x.shape
    reps = (1,) * (ndim - len(reps)) + reps
    return Aval(tuple(n * r for n, r in zip(shape, reps)), x.dtype)


def _tile_vjp(g, out, x, *, reps):
    """Each tile's cotangent lands on x: split every tiled axis into
    (repetition, original) and sum over the repetitions."""
    ndim = max(x.ndim, len(reps))
    shape = (1,) * (ndim - x.ndim) + x.shape
    reps = (1,) * (ndim - len(reps)) + reps
    split, repeated = [], []
    for n, r in zip(shape, reps):
        if r != 1:
            repeated.append(len(split))
            split.append(r)
        split.append(n)
    tiles = np.reshape(g, tuple(split))
    if repeated:
        tiles = np.sum(tiles, axis=tuple(repeated))
    return (np.reshape(tiles, x.shape),)


register(
    Primitive(
        "tile",
        abstract=_tile_abstract,
        emit=lambda x, *, reps: np_call("tile", x, _ints_literal(reps)),
        vjp=_tile_vjp,
        linear=True,
    )
)


def _repeat_abstract(x: Aval, *, repeats: int | tuple[int, ...], axis: int | None) -> Aval:
    """`repeats` is one count for every entry, or a count per entry along `axis`
    (of the flattened array for axis=None)."""
    shape = (x.size,) if axis is None else x.shape
    k = 0 if axis is None else axis
    if isinstance(repeats, tuple) and len(repeats) != shape[k]:
        raise ShapeError(f"np.repeat: {len(repeats)} repeat counts for an axis of length {shape[k]}")
    length = sum(repeats) if isinstance(repeats, tuple) else shape[k] * repeats
    return Aval(shape[:k] + (length,) + shape[k + 1:], x.dtype)


def _repeat_vjp(g, out, x, *, repeats, axis):
    """Sum the copies of each entry: a reshape and a sum for one count, a
    scatter-add (np.add.at) for counts that differ."""
    shape = (x.size,) if axis is None else x.shape
    k = 0 if axis is None else axis
    if isinstance(repeats, int):
        copies = np.reshape(g, shape[:k] + (shape[k], repeats) + shape[k + 1:])
        total = np.sum(copies, axis=k + 1)
    else:
        sources = np.repeat(np.arange(shape[k]), repeats)
        spec = (("slice", None, None, None),) * k + (("array", 0),)
        total = g.apply("index_add", sources, spec=spec, shape=shape, dtype=g.dtype)
    return (np.reshape(total, x.shape),)


def _repeat_emit(x: ast.expr, *, repeats, axis) -> ast.expr:
    if axis is None:
        return np_call("repeat", x, literal(repeats))
    return np_call("repeat", x, literal(repeats), axis=axis)


register(Primitive("repeat", abstract=_repeat_abstract, emit=_repeat_emit, vjp=_repeat_vjp, linear=True))

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
Pairs = tuple[tuple[int, int], ...]


def _pad_abstract(x: Aval, *, pad_width: Pairs, mode: str, constant_values) -> Aval:
    if len(pad_width) != x.ndim:
        raise ShapeError(f"np.pad: {len(pad_width)} (before, after) pairs for an array of shape {x.shape}")
    if mode not in PAD_MODES:
        raise ShapeError(f"np.pad: mode {mode!r} is not one of {', '.join(PAD_MODES)}")
    if mode != "constant" and any(n == 0 and (b or a) for n, (b, a) in zip(x.shape, pad_width)):
        raise ShapeError(f"np.pad: cannot extend an empty axis with mode {mode!r}")
    return Aval(tuple(n + b + a for n, (b, a) in zip(x.shape, pad_width)), x.dtype)


def _pad_emit(x: ast.expr, *, pad_width: Pairs, mode: str, constant_values) -> ast.expr:
    kwargs = {} if mode == "constant" else {"mode": mode}
    if constant_values != 0:
        kwargs["constant_values"] = constant_values
    return np_call("pad", x, literal(pad_width), **kwargs)


def _pad_vjp(g, out, x, *, pad_width: Pairs, mode: str, constant_values):
    """The interior for a constant pad; otherwise, axis by axis (the modes pad each
    axis independently, so the adjoints commute), the interior plus every padded
    stretch added back onto the entries it copies."""
    if mode == "constant":
        interior = [span(b, b + n, b + n + a) for n, (b, a) in zip(x.shape, pad_width)]
        while interior and interior[-1] == slice(None):
            interior.pop()
        return (g[tuple(interior)],)
    for axis, (before, after) in enumerate(pad_width):
        if before or after:
            g = _unpad_axis(g, axis, x.shape[axis], before, after, mode)
    return (g,)


def _unpad_axis(g, axis: int, n: int, before: int, after: int, mode: str):
    """The adjoint of padding one axis of length `n`. NumPy itself, padding
    np.arange(n), says which entry each padded position copies."""
    sources = np.pad(np.arange(n), (before, after), mode=mode)
    total = along(g, axis, span(before, before + n, before + n + after))
    for start, stop in ((0, before), (before + n, before + n + after)):
        for run in _runs(sources, start, stop):
            total = total + _fold_run(g, axis, sources, n, *run)
    return total


def _runs(sources: np.ndarray, start: int, stop: int):
    """Positions [start, stop) cut into maximal runs (first, end, step) whose sources
    advance by the same step: +1 (a copy), -1 (a mirror) or 0 (an edge)."""
    first = start
    while first < stop:
        step = int(sources[first + 1] - sources[first]) if first + 1 < stop else 1
        step = step if step in (-1, 0, 1) else 1
        end = first + 1
        while end < stop and sources[end] - sources[end - 1] == step:
            end += 1
        yield first, end, step
        first = end


def _fold_run(g, axis: int, sources: np.ndarray, n: int, first: int, end: int, step: int):
    """The cotangent of one run of padded positions, placed (zero-padded) at the
    entries of x it copies."""
    if step == 0:
        piece = np.sum(along(g, axis, span(first, end, g.shape[axis])), axis=axis, keepdims=True)
        low = int(sources[first])
    elif step == -1:
        piece = along(g, axis, slice(end - 1, first - 1 if first else None, -1))
        low = int(sources[end - 1])
    else:
        piece = along(g, axis, span(first, end, g.shape[axis]))
        low = int(sources[first])
    width = piece.shape[axis]
    return np.pad(piece, [(low, n - low - width) if d == axis else (0, 0) for d in range(g.ndim)])


def _pad_jvp(ts, out, x, *, pad_width: Pairs, mode: str, constant_values):
    """Every mode is linear in x but for the constant: the tangent pads with 0."""
    return ts[0].apply("pad", pad_width=pad_width, mode=mode, constant_values=0)


register(Primitive("pad", abstract=_pad_abstract, emit=_pad_emit, vjp=_pad_vjp, jvp=_pad_jvp))


def _roll_emit(x: ast.expr, *, shift: tuple[int, ...], axis: tuple[int, ...] | None) -> ast.expr:
    if axis is None:
        return np_call("roll", x, _ints_literal(shift))
    return np_call("roll", x, _ints_literal(shift), axis=_ints_literal(axis))


register(
    Primitive(
        "roll",
        abstract=lambda x, *, shift, axis: Aval(x.shape, x.dtype),
        emit=_roll_emit,
        vjp=lambda g, out, x, *, shift, axis: (np.roll(g, tuple(-s for s in shift), axis),),
        linear=True,
    )
)


def along_axis_shape(x_shape: tuple[int, ...], indices: Aval, axis: int) -> tuple[int, ...]:
    """The shape np.take_along_axis gives: `indices` broadcast against x's other axes."""
    if indices.dtype.kind not in "iu":
        raise ShapeError(f"np.take_along_axis: indices must be an integer array, not {indices.dtype}")
    if indices.ndim != len(x_shape):
        raise ShapeError(f"np.take_along_axis: indices of shape {indices.shape} need as many dimensions "
                         f"as the array of shape {x_shape}")
    others = tuple(1 if d == axis else n for d, n in enumerate(x_shape))
    try:
        return tuple(np.broadcast_shapes(indices.shape, others))
    except ValueError:
        raise ShapeError(f"np.take_along_axis: indices of shape {indices.shape} do not broadcast "
                         f"against an array of shape {x_shape}") from None


register(
    Primitive(
        "take_along_axis",
        abstract=lambda x, indices, *, axis: Aval(along_axis_shape(x.shape, indices, axis), x.dtype),
        emit=lambda x, indices, *, axis: np_call("take_along_axis", x, indices, axis=axis),
        vjp=lambda g, out, x, indices, *, axis: (
            g.apply("add_along_axis", indices, axis=axis, shape=x.shape, dtype=g.dtype), None),
        linear=True,
    )
)


def _add_along_axis_abstract(g: Aval, indices: Aval, *, axis: int, shape, dtype) -> Aval:
    taken = along_axis_shape(tuple(shape), indices, axis)
    if tuple(g.shape) != taken:
        raise ShapeError(f"a cotangent of shape {g.shape} cannot be added along axis {axis} "
                         f"at indices that take shape {taken}")
    return Aval(tuple(shape), np.dtype(dtype))


def _grid_index(indices: ast.expr, axis: int, shape: tuple[int, ...]) -> ast.expr:
    """The integer-array index np.take_along_axis uses: `indices` on `axis` and a
    broadcasting `np.arange(n)[:, None]` on every other axis."""
    items = []
    for d, n in enumerate(shape):
        if d == axis:
            items.append(indices)
            continue
        entries = np_call("arange", literal(n))
        trailing = len(shape) - 1 - d
        if trailing:
            slots = ast.Tuple([ast.Slice()] + [ast.Constant(None)] * trailing, ast.Load())
            entries = ast.Subscript(entries, slots, ast.Load())
        items.append(entries)
    return items[0] if len(items) == 1 else ast.Tuple(items, ast.Load())


def _add_along_axis_stmts(target: ast.Name, g: ast.expr, indices: ast.expr, *, axis, shape, dtype) -> list[ast.stmt]:
    """`target = np.zeros(shape); np.add.at(target, grid, g)`: repeated indices accumulate."""
    fresh = np_call("zeros", literal(tuple(shape)), dtype=np.dtype(dtype))
    zeros = ast.Assign([ast.Name(target.id, ast.Store())], fresh)
    index = _grid_index(indices, axis, tuple(shape))
    add = ast.Call(np_attr("add.at"), [ast.Name(target.id, ast.Load()), index, g], [])
    return [zeros, ast.Expr(add)]


register(
    Primitive(
        "add_along_axis",
        abstract=_add_along_axis_abstract,
        emit_stmts=_add_along_axis_stmts,
        vjp=lambda g, out, ct, indices, *, axis, shape, dtype: (np.take_along_axis(g, indices, axis=axis), None),
        jvp=joint_linear_rule("add_along_axis", (0,)),
    )
)

CONVOLVE_MODES = ("full", "same", "valid")


def _convolve_abstract(a: Aval, v: Aval, *, mode: str) -> Aval:
    if a.ndim != 1 or v.ndim != 1:
        raise ShapeError(f"np.convolve: needs 1-D arrays, got shapes {a.shape} and {v.shape}")
    if a.size == 0 or v.size == 0:
        raise ShapeError("np.convolve: an input is empty")
    if mode not in CONVOLVE_MODES:
        raise ShapeError(f"np.convolve: mode {mode!r} is not one of {', '.join(CONVOLVE_MODES)}")
    long, short = max(a.size, v.size), min(a.size, v.size)
    length = {"full": long + short - 1, "same": long, "valid": long - short + 1}[mode]
    return Aval((length,), np.convolve(np.ones(1, a.dtype), np.ones(1, v.dtype)).dtype)


def _full_cotangent(g, a, v, mode: str):
    """The cotangent of the full convolution: `g` zero-padded to where the 'same' or
    'valid' window sits in the full result."""
    short = min(a.size, v.size)
    start = {"full": 0, "same": (short - 1) // 2, "valid": short - 1}[mode]
    return np.pad(g, ((start, a.size + v.size - 1 - start - g.size),))


def _convolve_vjp(g, out, a, v, *, mode: str):
    """Convolution is a correlation backwards: each operand's cotangent is the full
    cotangent correlated with the other operand (its conjugate, where complex: np.convolve
    conjugates neither)."""
    full = _full_cotangent(g, a, v, mode)
    a_, v_ = conj_if_complex(a), conj_if_complex(v)
    return np.convolve(full, v_[::-1], mode="valid"), np.convolve(full, a_[::-1], mode="valid")


def _convolve_emit(a: ast.expr, v: ast.expr, *, mode: str) -> ast.expr:
    return np_call("convolve", a, v) if mode == "full" else np_call("convolve", a, v, mode=mode)


register(Primitive("convolve", abstract=_convolve_abstract, emit=_convolve_emit, vjp=_convolve_vjp,
                   jvp=product_rule("convolve")))

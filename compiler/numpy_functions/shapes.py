"""NumPy's shapes functions on traced values (see compiler/numpy_functions/__init__.py).

Most are spelled with the primitives the generated code then reads as: flips and
splits are slices, moveaxis / rollaxis / rot90 transposes, the stacks and np.append
concatenations, atleast_*d reshapes, np.diff a difference of slices, np.take an
integer-array index and np.select nested np.where. tile, repeat, pad, roll,
take_along_axis and convolve are primitives of their own (compiler/primitives/shape.py).
Counts, shifts, widths and split points are static: a traced one is refused.
"""
from __future__ import annotations

import operator
from itertools import pairwise
from typing import Any, Callable, Sequence

import numpy as np

from compiler.errors import ShapeError, UnsupportedError, at_user_line
from compiler.numpy_dispatch import (
    _no_extras, as_tracer, axes as axis_tuple, broadcast_to, concatenate, implements, one_axis, ravel, reshape,
    transpose,
)
from compiler.primitives.shape import CONVOLVE_MODES, PAD_MODES, along, span
from compiler.tracing import Tracer, bind


def _operand(x: Any) -> Tracer:
    """A traced value, or a constant one (lists and tuples as NumPy arrays)."""
    return as_tracer(np.asarray(x) if isinstance(x, (list, tuple)) else x)


def _static_ints(fn: str, what: str, value: Any) -> tuple[int, ...]:
    """An int or a sequence of ints known at compile time."""
    items = [value] if np.ndim(value) == 0 else list(value)
    try:
        return tuple(operator.index(v) for v in items)
    except TypeError:
        raise at_user_line(ShapeError, f"np.{fn}: {what} must be ints, got {value!r}") from None


def _distinct_axes(fn: str, value: Any, ndim: int) -> list[int]:
    """Axes in the order given (not sorted), normalized and checked."""
    out = [one_axis(a, ndim) for a in _static_ints(fn, "axes", value)]
    if len(set(out)) != len(out):
        raise at_user_line(ShapeError, f"np.{fn}: repeated axis in {value}")
    return out


@implements(np.copy)
def copy(a, order="K", subok=False) -> Tracer:
    return bind("copy", as_tracer(a))


@implements(np.real_if_close)
def real_if_close(a, tol=100) -> Tracer:
    """A real array is returned as it is. Of a complex one NumPy returns the real
    part or the array itself depending on the values, so even the result's dtype
    is unknown at compile time: refused."""
    a = _operand(a)
    if a.dtype.kind == "c":
        raise at_user_line(
            UnsupportedError, f"np.real_if_close of a traced complex array ({a.aval}) returns a real or a complex "
            "array depending on its values, unknown at compile time; use np.real(z) when the imaginary part is "
            "negligible, or keep the complex array."
        )
    return a


# splits: one slice per piece


def _split_points(fn: str, length: int, indices_or_sections: Any, equal: bool) -> list[int]:
    if np.ndim(indices_or_sections) != 0:
        return [0, *_static_ints(fn, "split indices", indices_or_sections), length]
    (sections,) = _static_ints(fn, "sections", indices_or_sections)
    if sections <= 0:
        raise at_user_line(ShapeError, f"np.{fn}: the number of sections must be larger than 0")
    if equal and length % sections:
        raise at_user_line(ShapeError, f"np.{fn}: {sections} sections do not divide an axis of length {length} equally")
    size, extra = divmod(length, sections)
    sizes = [size + 1] * extra + [size] * (sections - extra)
    return [int(p) for p in np.cumsum([0] + sizes)]


def _split(fn: str, ary: Any, indices_or_sections: Any, axis: int, equal: bool) -> list[Tracer]:
    ary = as_tracer(ary)
    axis = one_axis(axis, ary.ndim)
    length = ary.shape[axis]
    points = _split_points(fn, length, indices_or_sections, equal)
    return [along(ary, axis, span(start, stop, length)) for start, stop in pairwise(points)]


def _needs_ndim(fn: str, ary: Any, ndim: int) -> Tracer:
    ary = as_tracer(ary)
    if ary.ndim < ndim:
        raise at_user_line(ShapeError, f"np.{fn} needs an array of at least {ndim} dimensions, got shape {ary.shape}")
    return ary


@implements(np.split)
def split(ary, indices_or_sections, axis=0) -> list[Tracer]:
    return _split("split", ary, indices_or_sections, axis, equal=True)


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0) -> list[Tracer]:
    return _split("array_split", ary, indices_or_sections, axis, equal=False)


@implements(np.hsplit)
def hsplit(ary, indices_or_sections) -> list[Tracer]:
    ary = _needs_ndim("hsplit", ary, 1)
    return _split("hsplit", ary, indices_or_sections, 1 if ary.ndim > 1 else 0, equal=True)


@implements(np.vsplit)
def vsplit(ary, indices_or_sections) -> list[Tracer]:
    return _split("vsplit", _needs_ndim("vsplit", ary, 2), indices_or_sections, 0, equal=True)


@implements(np.dsplit)
def dsplit(ary, indices_or_sections) -> list[Tracer]:
    return _split("dsplit", _needs_ndim("dsplit", ary, 3), indices_or_sections, 2, equal=True)


# flips and rotations: negative-step slices and transposes


@implements(np.flip)
def flip(m, axis=None) -> Tracer:
    m = as_tracer(m)
    flipped = axis_tuple(axis, m.ndim)
    if not flipped:
        return m
    return m[tuple(slice(None, None, -1) if d in flipped else slice(None) for d in range(max(flipped) + 1))]


@implements(np.fliplr)
def fliplr(m) -> Tracer:
    return flip(_needs_ndim("fliplr", m, 2), 1)


@implements(np.flipud)
def flipud(m) -> Tracer:
    return flip(_needs_ndim("flipud", m, 1), 0)


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)) -> Tracer:
    """NumPy's own recipe: a flip of the second axis, then a swap of the two."""
    m = as_tracer(m)
    if len(axes) != 2:
        raise at_user_line(ShapeError, f"np.rot90: axes must name two axes, got {axes}")
    first, second = _distinct_axes("rot90", axes, m.ndim)
    (k,) = _static_ints("rot90", "k", k)
    turns = k % 4
    swapped = list(range(m.ndim))
    swapped[first], swapped[second] = second, first
    if turns == 0:
        return m
    if turns == 2:
        return flip(m, (first, second))
    if turns == 1:
        return transpose(flip(m, second), tuple(swapped))
    return flip(transpose(m, tuple(swapped)), second)


@implements(np.moveaxis)
def moveaxis(a, source, destination) -> Tracer:
    a = as_tracer(a)
    source, destination = _distinct_axes("moveaxis", source, a.ndim), _distinct_axes("moveaxis", destination, a.ndim)
    if len(source) != len(destination):
        raise at_user_line(ShapeError, "np.moveaxis: source and destination need the same number of axes")
    order = [d for d in range(a.ndim) if d not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return transpose(a, tuple(order))


@implements(np.rollaxis)
def rollaxis(a, axis, start=0) -> Tracer:
    a = as_tracer(a)
    axis = one_axis(axis, a.ndim)
    (start,) = _static_ints("rollaxis", "start", start)
    start = start + a.ndim if start < 0 else start
    if not 0 <= start <= a.ndim:
        raise at_user_line(ShapeError, f"np.rollaxis: start {start} is out of bounds for {a.ndim} dimensions")
    start = start - 1 if axis < start else start
    order = [d for d in range(a.ndim) if d != axis]
    order.insert(start, axis)
    return transpose(a, tuple(order))


# at-least-n-d views and the stacks built on them


def _at_least_1d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape or (1,)


def _at_least_2d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return {0: (1, 1), 1: (1,) + shape}.get(len(shape), shape)


def _at_least_3d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}.get(len(shape), shape)


def _promoted(arrays: Sequence[Any], grow: Callable[[tuple[int, ...]], tuple[int, ...]]) -> list[Tracer]:
    """Each array reshaped to `grow(its shape)`."""
    operands = [_operand(a) for a in arrays]
    return [reshape(a, grow(a.shape)) for a in operands]


def _one_or_tuple(arrays: list[Tracer]) -> Tracer | tuple[Tracer, ...]:
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


@implements(np.atleast_1d)
def atleast_1d(*arys) -> Tracer | tuple[Tracer, ...]:
    return _one_or_tuple(_promoted(arys, _at_least_1d))


@implements(np.atleast_2d)
def atleast_2d(*arys) -> Tracer | tuple[Tracer, ...]:
    return _one_or_tuple(_promoted(arys, _at_least_2d))


@implements(np.atleast_3d)
def atleast_3d(*arys) -> Tracer | tuple[Tracer, ...]:
    return _one_or_tuple(_promoted(arys, _at_least_3d))


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind") -> Tracer:
    _no_extras("hstack", dtype=dtype)
    arrays = _promoted(list(tup), _at_least_1d)
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind") -> Tracer:
    _no_extras("vstack", dtype=dtype)
    return concatenate(_promoted(list(tup), _at_least_2d), axis=0)


@implements(np.dstack)
def dstack(tup) -> Tracer:
    return concatenate(_promoted(list(tup), _at_least_3d), axis=2)


def _as_column(shape: tuple[int, ...]) -> tuple[int, ...]:
    """np.column_stack's promotion: a 0-d or 1-D array becomes one column."""
    return shape if len(shape) >= 2 else _at_least_1d(shape) + (1,)


@implements(np.column_stack)
def column_stack(tup) -> Tracer:
    return concatenate(_promoted(list(tup), _as_column), axis=1)


@implements(np.append)
def append_values(arr, values, axis=None) -> Tracer:
    arr, values = _operand(arr), _operand(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


# differences and choices


def _diff_edge(value: Any, a: Tracer, axis: int) -> list[Tracer]:
    """np.diff's prepend / append: a scalar is broadcast to one slice along `axis`."""
    if value is np._NoValue:
        return []
    value = _operand(value)
    if value.ndim == 0:
        value = broadcast_to(value, tuple(1 if d == axis else n for d, n in enumerate(a.shape)))
    return [value]


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue) -> Tracer:
    a = as_tracer(a)
    (order,) = _static_ints("diff", "n", n)
    if order < 0:
        raise at_user_line(ShapeError, f"np.diff: order must be non-negative, got {order}")
    if order == 0:
        return a
    if a.ndim == 0:
        raise at_user_line(ShapeError, "np.diff needs an array of at least one dimension")
    axis = one_axis(axis, a.ndim)
    parts = _diff_edge(prepend, a, axis) + [a] + _diff_edge(append, a, axis)
    if len(parts) > 1:
        a = concatenate(parts, axis=axis)
    for _ in range(order):
        later, earlier = along(a, axis, slice(1, None)), along(a, axis, slice(None, -1))
        a = np.not_equal(later, earlier) if a.dtype == bool else later - earlier
    return a


@implements(np.gradient)
def gradient(f, *varargs, axis=None, edge_order=1) -> Tracer | tuple[Tracer, ...]:
    """NumPy's recipe per axis: second-order central differences inside, one-sided
    differences of order `edge_order` at the two ends, concatenated. It is linear in
    `f`, so its derivatives are those of the slices and sums it is written with. A
    spacing is a number (traced or not) or the axis' coordinates; coordinates known
    at compile time and evenly spaced use the evenly spaced formulas, as NumPy does."""
    f = _operand(f)
    dtype = f.dtype if f.dtype.kind in "fc" else np.dtype(np.float64)
    chosen = tuple(range(f.ndim)) if axis is None else tuple(_distinct_axes("gradient", axis, f.ndim))
    (order,) = _static_ints("gradient", "edge_order", edge_order)
    if order not in (1, 2):
        raise at_user_line(ShapeError, f"np.gradient: edge_order must be 1 or 2, got {order}")
    if not varargs:
        varargs = (1.0,)
    if len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        varargs = varargs * len(chosen)
    if len(varargs) != len(chosen):
        raise at_user_line(ShapeError, f"np.gradient: {len(varargs)} spacings for {len(chosen)} axes; "
                           "give one, or one per axis")
    out = tuple(_derivative(f.astype(dtype) if f.dtype != dtype else f, d, h, order) for d, h in zip(chosen, varargs))
    out = tuple(g.astype(dtype) if g.dtype != dtype else g for g in out)
    return out[0] if len(out) == 1 else out


def _derivative(f: Tracer, axis: int, spacing: Any, order: int) -> Tracer:
    """np.gradient of `f` along one axis, with a number or the coordinates as spacing."""
    n = f.shape[axis]
    if n < order + 1:
        raise at_user_line(ShapeError, f"np.gradient: an axis of length {n} is too short for edge_order {order}; "
                           f"at least {order + 1} elements are required")
    at = lambda start, stop: along(f, axis, slice(start, stop))  # noqa: E731
    if np.ndim(spacing) == 0:
        h = spacing
    else:
        coordinates = spacing if isinstance(spacing, Tracer) else np.asarray(spacing)
        if coordinates.ndim != 1 or coordinates.shape[0] != n:
            raise at_user_line(ShapeError, f"np.gradient: coordinates of shape {coordinates.shape} "
                               f"for an axis of length {n}")
        dx = np.diff(coordinates)
        uniform = isinstance(dx, np.ndarray) and bool(np.all(dx == dx[0]))
        h = dx[0] if uniform else None
    if h is not None:
        inner = [(at(2, None) - at(None, -2)) / (2 * h)] if n > 2 else []
        if order == 1:
            first, last = (at(1, 2) - at(0, 1)) / h, (at(-1, None) - at(-2, -1)) / h
        else:
            first = (-1.5 * at(0, 1) + 2 * at(1, 2) - 0.5 * at(2, 3)) / h
            last = (0.5 * at(-3, -2) - 2 * at(-2, -1) + 1.5 * at(-1, None)) / h
        return concatenate([first, *inner, last], axis=axis)
    lay = lambda v: np.reshape(v, (-1,) + (1,) * (f.ndim - axis - 1))  # noqa: E731
    before, after = lay(dx[:-1]), lay(dx[1:])
    inner = (-after / (before * (before + after)) * at(None, -2) + (after - before) / (before * after) * at(1, -1)
             + before / (after * (before + after)) * at(2, None))
    if order == 1:
        first, last = (at(1, 2) - at(0, 1)) / dx[0], (at(-1, None) - at(-2, -1)) / dx[-1]
    else:
        d1, d2 = dx[0], dx[1]
        first = (-(2 * d1 + d2) / (d1 * (d1 + d2)) * at(0, 1) + (d1 + d2) / (d1 * d2) * at(1, 2)
                 - d1 / (d2 * (d1 + d2)) * at(2, 3))
        d1, d2 = dx[-2], dx[-1]
        last = (d2 / (d1 * (d1 + d2)) * at(-3, -2) - (d1 + d2) / (d1 * d2) * at(-2, -1)
                + (2 * d2 + d1) / (d2 * (d1 + d2)) * at(-1, None))
    return concatenate([first, inner, last], axis=axis)


@implements(np.select)
def select(condlist, choicelist, default=0) -> Tracer:
    """Nested np.where, the first true condition winning."""
    if len(condlist) != len(choicelist):
        raise at_user_line(ShapeError, "np.select: the lists of conditions and choices need the same length")
    if not condlist:
        raise at_user_line(ShapeError, "np.select needs at least one condition")
    conditions = [_operand(c) for c in condlist]
    for i, condition in enumerate(conditions):
        if condition.dtype != bool:
            raise at_user_line(ShapeError, f"np.select: condition {i} must be boolean, not {condition.dtype}")
    result = _operand(default)
    for condition, choice in reversed(list(zip(conditions, choicelist))):
        result = np.where(condition, _operand(choice), result)
    return result


# gathers: integer-array indexing; the gradient accumulates repeated indices


def _indices(fn: str, indices: Any) -> Any:
    """Integer indices: a traced or constant integer array, or a Python int."""
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, (bool, np.bool_)):
        return int(indices)
    if not isinstance(indices, Tracer):
        indices = np.asarray(indices)
        if indices.size == 0:
            indices = indices.astype(np.intp)
    if indices.dtype.kind not in "iu":
        raise at_user_line(UnsupportedError, f"np.{fn}: indices must be integers, not {indices.dtype}")
    return indices


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise") -> Tracer:
    _no_extras("take", out=out)
    a = as_tracer(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = one_axis(axis, a.ndim)
    indices = _indices("take", indices)
    if mode == "wrap":
        indices = np.mod(indices, a.shape[axis])
    elif mode == "clip":
        indices = np.clip(indices, 0, a.shape[axis] - 1)
    elif mode != "raise":
        raise at_user_line(ShapeError, f"np.take: mode {mode!r} is not one of 'raise', 'wrap', 'clip'")
    return along(a, axis, indices)


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis=-1) -> Tracer:
    arr = as_tracer(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    indices = _indices("take_along_axis", indices)
    return bind("take_along_axis", arr, indices, axis=one_axis(axis, arr.ndim))


# primitives of their own


@implements(np.tile)
def tile(A, reps) -> Tracer:
    A = as_tracer(A)
    reps = _static_ints("tile", "reps", reps)
    if len(reps) <= A.ndim and all(r == 1 for r in reps):
        return A
    return bind("tile", A, reps=reps)


@implements(np.repeat)
def repeat(a, repeats, axis=None) -> Tracer:
    a = as_tracer(a)
    counts = _static_ints("repeat", "repeats", repeats)
    if any(c < 0 for c in counts):
        raise at_user_line(ShapeError, f"np.repeat: negative repeat counts {repeats}")
    axis = None if axis is None else one_axis(axis, a.ndim)
    count = counts[0] if len(counts) == 1 else counts
    if count == 1:
        return ravel(a) if axis is None else a
    return bind("repeat", a, repeats=count, axis=axis)


def _pairs(fn: str, what: str, value: Any, ndim: int) -> tuple[tuple[Any, Any], ...]:
    """NumPy's (before, after) per axis from a number, a pair, one pair per axis or
    a dict {axis: number or pair} (other axes (0, 0))."""
    if isinstance(value, dict):
        per_axis = {one_axis(axis, ndim): _pairs(fn, what, pair, 1)[0] for axis, pair in value.items()}
        value = [per_axis.get(axis, (0, 0)) for axis in range(ndim)]
    try:
        pairs = np.broadcast_to(np.asarray(value), (ndim, 2))
    except ValueError:
        raise at_user_line(
            ShapeError, f"np.{fn}: {what} {value!r} does not give a (before, after) pair for each of {ndim} axes"
        ) from None
    return tuple((before.item(), after.item()) for before, after in pairs)


def _pad_constant(value: Any, ndim: int) -> Any:
    """One number, or (before, after) numbers per axis where they differ."""
    if isinstance(value, Tracer):
        raise at_user_line(
            UnsupportedError, "np.pad: constant_values must be a number known at compile time; for a traced "
            "scalar c write np.pad(x - c, pad_width) + c."
        )
    pairs = _pairs("pad", "constant_values", value, ndim)
    values = {v for pair in pairs for v in pair}
    return values.pop() if len(values) == 1 else pairs


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs) -> Tracer:
    array = as_tracer(array)
    constant_values = kwargs.pop("constant_values", 0)
    if kwargs.get("reflect_type", "even") == "even":
        kwargs.pop("reflect_type", None)
    if mode not in PAD_MODES or kwargs:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or f"mode={mode!r}"
        raise at_user_line(
            UnsupportedError, f"np.pad({given}) is not supported on traced values; the modes supported are "
            f"{', '.join(PAD_MODES)}."
        )
    widths = _pairs("pad", "pad_width", pad_width, array.ndim)
    if not all(isinstance(w, int) and w >= 0 for pair in widths for w in pair):
        raise at_user_line(ShapeError, f"np.pad: pad widths must be non-negative ints, got {pad_width!r}")
    if not any(b or a for b, a in widths):
        return array
    constant = _pad_constant(constant_values, array.ndim) if mode == "constant" else 0
    return bind("pad", array, pad_width=widths, mode=mode, constant_values=constant)


@implements(np.roll)
def roll(a, shift, axis=None) -> Tracer:
    """Shifts are summed per axis (as NumPy applies them) and whole turns dropped."""
    a = as_tracer(a)
    shifts = _static_ints("roll", "shift", shift)
    if axis is None:
        total = sum(shifts)
        return a if a.size == 0 or total % a.size == 0 else bind("roll", a, shift=(total,), axis=None)
    rolled = [one_axis(d, a.ndim) for d in _static_ints("roll", "axis", axis)]
    try:
        pairs = np.broadcast(np.array(shifts), np.array(rolled))
    except ValueError:
        raise at_user_line(ShapeError, f"np.roll: shift {shift} and axis {axis} do not pair up") from None
    per_axis: dict[int, int] = {}
    for s, d in pairs:
        per_axis[int(d)] = per_axis.get(int(d), 0) + int(s)
    per_axis = {d: s for d, s in per_axis.items() if a.shape[d] and s % a.shape[d]}
    if not per_axis:
        return a
    return bind("roll", a, shift=tuple(per_axis.values()), axis=tuple(per_axis))


@implements(np.convolve)
def convolve(a, v, mode="full") -> Tracer:
    """0-d operands count as length 1, as in NumPy."""
    a, v = (reshape(x, _at_least_1d(x.shape)) for x in (_operand(a), _operand(v)))
    if mode not in CONVOLVE_MODES:
        raise at_user_line(ShapeError, f"np.convolve: mode {mode!r} is not one of {', '.join(CONVOLVE_MODES)}")
    return bind("convolve", a, v, mode=mode)

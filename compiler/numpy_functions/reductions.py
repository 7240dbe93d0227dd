"""NumPy's reductions functions on traced values (see compiler/numpy_functions/__init__.py):
reductions over axes, scans, sorts and the arg-functions. var, std, average and ptp are
written with other reductions, as a person would write them; the rest bind primitives
of compiler/primitives/reduce.py."""
from __future__ import annotations

import operator
from typing import Any, Optional

import numpy as np

from compiler.errors import ArgumentError, ShapeError, UnsupportedError, at_user_line
from compiler.numpy_dispatch import _no_extras, as_tracer, axes, implements, one_axis
from compiler.primitives.reduce import reduced_count
from compiler.tracing import Tracer, bind


def _flag(keepdims: Any) -> bool:
    """A keepdims argument, NumPy's "not given" marker included, as a bool."""
    return keepdims is not np._NoValue and bool(keepdims)


def _reduce(fn: str, a: Any, axis: Any, keepdims: Any) -> Tracer:
    a = as_tracer(a)
    return bind(fn, a, axis=axes(axis, a.ndim), keepdims=_flag(keepdims), ndim=a.ndim)


@implements(np.prod)
def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _no_extras("prod", dtype=dtype, out=out, initial=initial, where=where)
    return _reduce("prod", a, axis, keepdims)


@implements(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _no_extras("nansum", dtype=dtype, out=out, initial=initial, where=where)
    return _reduce("nansum", a, axis, keepdims)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    _no_extras("nanmean", dtype=dtype, out=out, where=where)
    return _reduce("nanmean", a, axis, keepdims)


def _nan_extremum(fn: str):
    def reduce(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_extras(fn, out=out, initial=initial, where=where)
        return _reduce(fn, a, axis, keepdims)

    return reduce


implements(np.nanmax)(_nan_extremum("nanmax"))
implements(np.nanmin)(_nan_extremum("nanmin"))


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """`overwrite_input` only allows NumPy to reuse the input's memory: ignored."""
    _no_extras("median", out=out)
    return _reduce("median", a, axis, keepdims)


def _logical(fn: str):
    def reduce(a, axis=None, out=None, keepdims=False, *, where=None):
        _no_extras(fn, out=out, where=where)
        return _reduce(fn, a, axis, keepdims)

    return reduce


implements(np.any, differentiable=False)(_logical("any"))
implements(np.all, differentiable=False)(_logical("all"))


@implements(np.count_nonzero, differentiable=False)
def count_nonzero(a, axis=None, *, keepdims=False):
    return _reduce("count_nonzero", a, axis, keepdims)


@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=False):
    _no_extras("ptp", out=out)
    return np.max(a, axis=axis, keepdims=_flag(keepdims)) - np.min(a, axis=axis, keepdims=_flag(keepdims))


def _variance(fn: str, a: Any, axis: Any, ddof: Any, keepdims: Any, mean: Any, correction: Any) -> Tracer:
    """The mean of squared deviations, or their sum over count - ddof (at least 0)."""
    if correction is not None:
        if ddof != 0:
            raise at_user_line(ArgumentError, f"np.{fn}: ddof and correction can't be provided simultaneously.")
        ddof = correction
    a = as_tracer(a)
    reduced = axes(axis, a.ndim)
    center = np.mean(a, axis=reduced, keepdims=True) if mean is None else mean
    deviation = a - center
    squares = np.abs(deviation) ** 2 if deviation.dtype.kind == "c" else deviation**2  # real, as NumPy's
    if ddof == 0:
        return np.mean(squares, axis=reduced, keepdims=_flag(keepdims))
    return np.sum(squares, axis=reduced, keepdims=_flag(keepdims)) / max(reduced_count(a.shape, reduced) - ddof, 0)


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None, correction=None):
    _no_extras("var", dtype=dtype, out=out, where=where)
    return _variance("var", a, axis, ddof, keepdims, _given(mean), _given(correction))


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None, correction=None):
    """The square root of the variance, except over one element per lane with the
    lane's own mean (ddof 0): every deviation is then exactly 0, and so is the
    variance (NaN for a non-finite element, as NumPy gives). It is returned as it
    is: sqrt's derivative at 0 is infinite, and times the variance's zero
    derivative it would make the gradient NaN, where std is constant."""
    _no_extras("std", dtype=dtype, out=out, where=where)
    mean, correction = _given(mean), _given(correction)
    variance = _variance("std", a, axis, ddof, keepdims, mean, correction)
    single = reduced_count(np.shape(a), axes(axis, np.ndim(a))) == 1
    if single and mean is None and ddof == 0 and not correction:
        return variance
    return np.sqrt(variance)


def _given(value: Any) -> Any:
    """None for NumPy's "not given" marker."""
    return None if value is np._NoValue else value


@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """`sum(a * w) / sum(w)`, weights aligned with `a` as NumPy aligns them. Unlike
    NumPy, weights summing to zero are not checked (they are known only at run time)."""
    a = _as_array(a)
    if weights is None:
        avg = np.mean(a, axis=axis, keepdims=_flag(keepdims))
        scale = np.asarray(a.size / avg.size, dtype=avg.dtype)
    else:
        w = _aligned_weights(a, _as_array(weights), axis)
        dtype = np.result_type(a.dtype, w.dtype, *(("f8",) if a.dtype.kind in "biu" else ()))
        a, w = a.astype(dtype), w.astype(dtype)
        reduced = axes(axis, a.ndim)
        scale = np.sum(w, axis=reduced, keepdims=_flag(keepdims))
        avg = np.sum(a * w, axis=reduced, keepdims=_flag(keepdims)) / scale
    if not returned:
        return avg
    return avg, np.broadcast_to(as_tracer(scale), avg.shape).copy()


def _as_array(value: Any) -> Tracer:
    """A traced value, or a constant one for anything NumPy takes as an array (a list)."""
    return as_tracer(value if isinstance(value, Tracer) else np.asarray(value))


def _aligned_weights(a: Tracer, w: Tracer, axis: Any) -> Tracer:
    """Weights shaped to broadcast against `a`: as given when shaped like `a`, else
    laid along the axes `axis` names, in that order."""
    if w.shape == a.shape:
        return w
    if axis is None:
        raise at_user_line(ArgumentError, "np.average: axis must be specified when shapes of a and weights differ.")
    named = tuple(one_axis(i, a.ndim) for i in (axis if isinstance(axis, (tuple, list)) else (axis,)))
    if w.shape != tuple(a.shape[i] for i in named):
        raise at_user_line(ShapeError, "np.average: shape of weights must be consistent with shape of a along specified axis.")
    w = np.transpose(w, tuple(np.argsort(named).tolist()))
    return np.reshape(w, tuple(d if i in named else 1 for i, d in enumerate(a.shape)))


def _along_axis(a: Any, axis: Any) -> tuple[Tracer, int]:
    """The operand and its one axis for a scan or sort: axis=None means the
    flattened array, as does a 0-d operand (NumPy treats it as one element)."""
    a = as_tracer(a)
    if axis is None or a.ndim == 0:
        a = np.reshape(a, (a.size,))
    return a, one_axis(0 if axis is None else axis, a.ndim)


def _scan(fn: str):
    def scan(a, axis=None, dtype=None, out=None):
        _no_extras(fn, dtype=dtype, out=out)
        a, axis = _along_axis(a, axis)
        return bind(fn, a, axis=axis)

    return scan


implements(np.cumsum)(_scan("cumsum"))
implements(np.cumprod)(_scan("cumprod"))


def _sort(fn: str):
    def sort(a, axis=-1, kind=None, order=None, *, stable=None):
        _no_extras(fn, order=order)
        a, axis = _along_axis(a, axis)
        return bind(fn, a, axis=axis, kind=kind, stable=stable)

    return sort


implements(np.sort)(_sort("sort"))
implements(np.argsort, differentiable=False)(_sort("argsort"))


def _partition(fn: str, sort: str):
    def partition(a, kth, axis=-1, kind="introselect", order=None):
        """np.partition / np.argpartition as np.sort / np.argsort: a sorted array is
        a valid partition for every kth (each kth element in its sorted place, none
        larger before it, none smaller after), so the gradient flows back through
        the sorting permutation. Which valid partition NumPy returns is not
        specified; this returns the sorted one."""
        _no_extras(fn, order=order)
        a, axis = _along_axis(a, axis)
        length = a.shape[axis]
        for k in np.ravel(kth):
            if isinstance(k, Tracer) or not -length <= operator.index(k) < length:
                raise at_user_line(ShapeError, f"np.{fn}: kth {kth!r} must be static ints "
                                   f"within an axis of length {length}")
        return bind(sort, a, axis=axis, kind=None, stable=None)

    return partition


implements(np.partition)(_partition("partition", "sort"))
implements(np.argpartition, differentiable=False)(_partition("argpartition", "argsort"))


def _arg_extremum(fn: str):
    def reduce(a, axis=None, out=None, *, keepdims=False):
        _no_extras(fn, out=out)
        a = as_tracer(a)
        axis = _single_axis(a, axis)
        return bind(fn, a, axis=axis, keepdims=_flag(keepdims))

    return reduce


def _single_axis(a: Tracer, axis: Any) -> Optional[int]:
    """An arg-function's axis: None (the flattened array) or one axis; a 0-d
    operand accepts 0 and -1, like NumPy."""
    if axis is None or (a.ndim == 0 and axis in (0, -1)):
        return None
    if isinstance(axis, (tuple, list)):
        raise at_user_line(UnsupportedError, "np.argmax / np.argmin take one axis, not a tuple.")
    return one_axis(axis, a.ndim)


implements(np.argmax, differentiable=False)(_arg_extremum("argmax"))
implements(np.argmin, differentiable=False)(_arg_extremum("argmin"))

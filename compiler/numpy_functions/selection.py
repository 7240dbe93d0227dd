"""Selections whose size the data decides: boolean masks, `np.nonzero`,
`np.flatnonzero`, `np.argwhere`, `np.where(c)`, `np.compress`, `np.extract`, `np.unique`.

Where the trace has the call's values (compiler/evaluation.py), the number of
elements selected is decided like any decision on traced values: it becomes a guard
(`if int(np.count_nonzero(m)) != 3: raise PathMiss(...)`) and the selection has that
static size, so the compiled path serves every call that selects as many elements
(another count compiles another path, compiler/api.py). The selected positions are
computed when the code runs (`np.flatnonzero(m)`), and the values are gathered at
them, so gradients flow to the selected elements (to the first occurrence of each
value of np.unique). An abstract trace refuses them as before.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from compiler.errors import TracingError, UnsupportedError, at_user_line
from compiler.numpy_dispatch import as_tracer, implements, one_axis
from compiler.tracing import Tracer, bind, concrete_value

_DATA_DEPENDENT = ("has a data-dependent size, which a trace without the call's values cannot decide "
                   "(inside compile_step's optimizer or a custom rule's transposition); select with np.where")


def _decided_count(count: Tracer, what: str) -> int:
    """The value of traced count `count`, guarded; refused in an abstract trace."""
    try:
        return int(count)
    except TracingError:
        raise at_user_line(UnsupportedError, f"{what} {_DATA_DEPENDENT}") from None


def flat_positions(mask: Any, what: str) -> Tracer:
    """The flat positions of `mask`'s nonzero elements, their number decided."""
    mask = as_tracer(mask)
    size = _decided_count(np.count_nonzero(mask), what)
    return bind("flatnonzero", mask, size=size)


def _unravel(flat: Tracer, shape: tuple) -> tuple:
    """Flat positions as one index array per axis of `shape` (static strides)."""
    if len(shape) == 1:
        return (flat,)
    strides = [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
    return tuple((flat // stride) % dim if k else flat // stride
                 for k, (stride, dim) in enumerate(zip(strides, shape)))


@implements(np.nonzero, differentiable=False)
def nonzero(a: Any) -> tuple:
    a = as_tracer(a)
    if a.ndim == 0:
        raise at_user_line(UnsupportedError, "np.nonzero of a 0-d value; use np.atleast_1d(x).nonzero()")
    return _unravel(flat_positions(a, "np.nonzero"), a.shape)


@implements(np.flatnonzero, differentiable=False)
def flatnonzero(a: Any) -> Tracer:
    return flat_positions(np.ravel(a), "np.flatnonzero")


@implements(np.argwhere, differentiable=False)
def argwhere(a: Any) -> Tracer:
    return np.stack(nonzero(a), axis=-1)


@implements(np.compress)
def compress(condition: Any, a: Any, axis: Optional[int] = None, out: Any = None) -> Tracer:
    if out is not None:
        raise at_user_line(UnsupportedError, "np.compress(..., out=...) is not supported on traced values")
    a = as_tracer(a)
    if axis is None:
        a, axis = np.ravel(a), 0
    axis = one_axis(axis, a.ndim)
    condition = as_tracer(condition)
    if condition.ndim != 1 or condition.shape[0] > a.shape[axis]:
        raise at_user_line(UnsupportedError, f"np.compress needs a 1-d condition no longer than axis {axis}")
    return np.take(a, flat_positions(condition, "np.compress"), axis=axis)


@implements(np.extract)
def extract(condition: Any, arr: Any) -> Tracer:
    return np.ravel(arr)[flat_positions(np.ravel(condition), "np.extract")]


@implements(np.unique)
def unique(ar: Any, return_index: bool = False, return_inverse: bool = False, return_counts: bool = False,
           axis: Optional[int] = None, *, equal_nan: bool = True, **kwargs: Any) -> Any:
    """np.unique over the flattened array (axis=None), its number of values decided."""
    if axis is not None or not equal_nan or kwargs:
        raise at_user_line(UnsupportedError, "np.unique on traced values supports axis=None and equal_nan=True only")
    ar = as_tracer(ar)
    size = _decided_count(bind("unique", ar, part="size", size=0, shape=()), "np.unique")
    try:  # the inverse's shape is NumPy's (it changed between versions): ask NumPy on the call's values
        inverse_shape = np.unique(np.asarray(concrete_value(ar)), return_inverse=True)[1].shape
    except LookupError:
        inverse_shape = (ar.aval.size,)
    index = bind("unique", ar, part="index", size=size, shape=(size,))
    result = [np.ravel(ar)[index]]  # each value read at its first occurrence: its gradient goes there
    if return_index:
        result.append(index)
    if return_inverse:
        result.append(bind("unique", ar, part="inverse", size=size, shape=inverse_shape))
    if return_counts:
        result.append(bind("unique", ar, part="counts", size=size, shape=(size,)))
    return result[0] if len(result) == 1 else tuple(result)

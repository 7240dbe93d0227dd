"""Array creation and assignment on traced values (see compiler/numpy_functions/__init__.py).

Creation: `np.zeros_like(x)` and friends of a traced `x`, and `np.zeros(shape,
like=x)` and friends, make traced arrays, so that values can be assigned into them.
`np.array([a, b])` and `np.asarray` of (nested) lists and tuples holding traced
values stack them (tracing.py routes those calls here while a trace runs).

Assignment: `x[index] = v` (and `x[index] += v`, which Python spells as a read, an
add and this write) is a functional update: the tracer `x` is rebound to a new
value, a copy of the old one with `v` written in, and every name bound to that
tracer sees the write, as with NumPy. What a traced program cannot reproduce is a
*view* seeing the write: `y = x[0]; x[0] = 5.0` changes `y` in NumPy, but traced
values never share memory. So an assignment is refused while a variable of the
user's code still holds a view of the array written to (basic indexing, reshape,
transpose, broadcast_to), or the array it is itself a view of. The compiled
function never writes into its arguments.
"""
from __future__ import annotations

import operator
import re
from typing import Any, Iterator, Optional

import numpy as np

from compiler.aliasing import view_source, views_of
from compiler.errors import ShapeError, UnsupportedError, at_user_line, is_library, source_line, user_frame
from compiler.numpy_dispatch import as_tracer, implements
from compiler.primitives.elementwise import dtype_or_weak_type
from compiler.primitives.indexing import broadcasts_into
from compiler.tracing import PROTOCOLS, Tracer, bind, current


# --- creation ---------------------------------------------------------------------------

def array_of_nested(obj: Any, dtype: Any = None, *, ndmin: int = 0, **ignored: Any) -> Tracer:
    """`np.array(obj)` for lists and tuples holding traced values: the leaves promoted
    as NumPy's constructor promotes them (a Python float is float64 there), stacked.
    `copy`, `order` and `like` change nothing for a new traced array."""
    leaves = list(_nested_leaves(obj))
    if dtype is None:
        dtype = np.result_type(*(leaf.dtype if isinstance(leaf, (Tracer, np.ndarray, np.generic))
                                 else np.result_type(type(leaf)) for leaf in leaves))
    array = _stacked(obj, np.dtype(dtype))
    return np.reshape(array, (1,) * (ndmin - array.ndim) + array.shape) if ndmin > array.ndim else array


def _nested_leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _nested_leaves(item)
    else:
        yield obj


def _stacked(obj: Any, dtype: np.dtype) -> Tracer:
    if not isinstance(obj, (list, tuple)):
        value = as_tracer(obj)
        return value if value.dtype == dtype and not value.aval.weak else bind("astype", value, dtype=dtype)
    if not obj:
        raise at_user_line(UnsupportedError, "np.array of an empty list inside a list of traced values")
    items = [_stacked(item, dtype) for item in obj]
    shapes = {item.shape for item in items}
    if len(shapes) > 1:
        raise at_user_line(ShapeError, f"np.array: the items have different shapes {sorted(shapes)}; "
                           "NumPy cannot make an array of them either")
    return bind("stack", *items, axis=0)


PROTOCOLS.nested = array_of_nested

def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def _full(shape: Any, fill: Any, dtype: Any) -> Tracer:
    """A traced array of `shape` filled with `fill` (a number or a traced scalar)."""
    if isinstance(fill, Tracer):
        return np.broadcast_to(fill.astype(dtype), _shape(shape)).copy()
    return bind("full", shape=_shape(shape), value=np.dtype(dtype).type(fill).item(), dtype=np.dtype(dtype))


def _fill_dtype(fill: Any) -> np.dtype:
    """The dtype np.full gives `fill` when no dtype is asked for."""
    return fill.dtype if isinstance(fill, Tracer) else np.asarray(fill).dtype


def _like(fill: int):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
        return _full(np.shape(a) if shape is None else shape, fill, dtype or a.dtype)

    return like


implements(np.zeros_like, np.empty_like)(_like(0))
implements(np.ones_like)(_like(1))


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _full(np.shape(a) if shape is None else shape, fill_value, dtype or a.dtype)


@implements(np.zeros, np.empty)
def zeros(shape, dtype=None, order="C", **kwargs):
    """np.zeros(shape, like=x) (NumPy passes everything but `like`)."""
    return _full(shape, 0, dtype or float)


@implements(np.ones)
def ones(shape, dtype=None, order="C", **kwargs):
    return _full(shape, 1, dtype or float)


@implements(np.full)
def full(shape, fill_value, dtype=None, order="C", **kwargs):
    return _full(shape, fill_value, dtype or _fill_dtype(fill_value))


@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """NumPy's recipe with traced ends: `steps * step + start`, the steps 0, 1, ...,
    num - 1 a constant and `step = (stop - start) / div`, then the last sample made
    exactly `stop` when it is an endpoint; array-valued ends lay their samples along
    `axis`. NumPy's other branch, for a step that underflows to 0, is decided by the
    values and is not taken."""
    num = operator.index(num)
    if num < 0:
        raise at_user_line(ShapeError, f"np.linspace: number of samples, {num}, must be non-negative")
    start, stop = as_tracer(start), as_tracer(stop)
    kinds = (dtype_or_weak_type(v.aval) for v in (start, stop))  # a Python number's type stands for a weak one
    inexact = np.result_type(*(kind(0) if isinstance(kind, type) else kind for kind in kinds), 1.0)
    start, stop = (v if v.dtype == inexact else v.astype(inexact) for v in (start, stop))
    delta = stop - start
    steps = np.reshape(np.arange(num, dtype=inexact), (-1,) + (1,) * delta.ndim)
    div = num - 1 if endpoint else num
    step = delta / div if div > 0 else np.nan
    y = (steps * (step if div > 0 else delta)) + start
    if endpoint and num > 1:
        last = np.broadcast_to(stop, (1,) + tuple(delta.shape))
        y = np.concatenate([y[:-1], last], axis=0)
    if axis != 0:
        y = np.moveaxis(y, 0, axis)
    if dtype is not None and np.issubdtype(dtype, np.integer):
        y = np.floor(y)
    if dtype is not None and np.dtype(dtype) != y.dtype:
        y = y.astype(dtype)
    return (y, step) if retstep else y


# --- assignment -------------------------------------------------------------------------

def setitem(x: Tracer, index: Any, value: Any) -> Tracer:
    """The value of `x` after `x[index] = value`."""
    if x.ndim == 0:
        raise at_user_line(
            UnsupportedError, f"assigning into a 0-d traced {x.dtype} value: it has no elements to index; "
            "bind the new value to the variable instead (`s = v`)."
        )
    _refuse_shared_memory(x)
    value = _cast(_operand(value), x.dtype)
    mask = _whole_mask(index, x)
    if mask is not None and broadcasts_into(value.shape, x.shape[mask.ndim:]):
        return np.where(np.reshape(mask, mask.shape + (1,) * (x.ndim - mask.ndim)), value, x)
    region = x[index]  # the getitem node holds the normalized index: its spec and index arrays
    node = x.graph.node(region.id)
    arrays = [Tracer(x.graph, i) for i in node.inputs[1:]]
    return bind("setitem", x, _drop_leading_ones(value, region.ndim), *arrays, spec=node.params["spec"])


def _operand(value: Any) -> Tracer:
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    return as_tracer(value)


def _cast(value: Tracer, dtype: np.dtype) -> Tracer:
    """`value` as NumPy casts it when writing into an array of `dtype` (a Python
    float written into a float32 array needs no cast: it is weak)."""
    if np.result_type(dtype, dtype_or_weak_type(value.aval)) == dtype:
        return value
    return value.astype(dtype)


def _drop_leading_ones(value: Tracer, ndim: int) -> Tracer:
    """NumPy lets a value have extra leading axes of size 1 (`x[0] = row[None]`)."""
    extra = value.ndim - ndim
    if extra > 0 and all(d == 1 for d in value.shape[:extra]):
        return np.reshape(value, value.shape[extra:])
    return value


def _is_mask(item: Any) -> bool:
    return isinstance(item, (Tracer, np.ndarray)) and item.dtype == bool


def _whole_mask(index: Any, x: Tracer) -> Optional[Any]:
    """The index when it is one boolean mask over x's leading axes: `x[mask] = v`
    with one value for every selected element (or row) is `np.where(mask, v, x)`."""
    if isinstance(index, list):
        index = np.asarray(index)
    if _is_mask(index) and index.ndim >= 1 and index.shape == x.shape[: index.ndim]:
        return index
    return None


def _refuse_shared_memory(x: Tracer) -> None:
    """Refuse writing into `x` while a user variable holds an array sharing its memory."""
    graph = x.graph
    shared = views_of(graph, view_source(graph, x.id).id) - {x.id}
    for name, held in _user_variables():
        if held is not x and held.graph is graph and held.id in shared:
            raise _shared_memory_error(x, name, held)


def _user_variables() -> Iterator[tuple[str, Tracer]]:
    """(name, tracer) for the tracers the user's frames of this trace hold in
    variables, or directly in a list, tuple or dict bound to a variable."""
    frame, root = user_frame(), current().root
    while frame is not None and frame is not root:
        if not is_library(frame.f_code.co_filename):
            for var, value in list(frame.f_locals.items()):
                for held in _tracers_in(value):
                    yield var, held
        frame = frame.f_back


def _tracers_in(value: Any) -> Iterator[Tracer]:
    if isinstance(value, Tracer):
        yield value
    elif isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        yield from (item for item in items if isinstance(item, Tracer))


def _view_chain(graph, i: int) -> list[int]:
    """`i` and the arrays it is a view of, innermost first."""
    chain = [i]
    while chain[-1] != view_source(graph, chain[-1]).id:
        chain.append(graph.node(chain[-1]).inputs[0])
    return chain


def _shared_memory_error(x: Tracer, name: str, held: Tracer) -> UnsupportedError:
    """Say which of the two arrays sharing memory to copy, where it was made."""
    graph, frame = x.graph, user_frame()
    written = re.match(r"([A-Za-z_][\w.]*)\s*\[", source_line(frame.f_code.co_filename, frame.f_lineno) if frame else "")
    target = f"`{written.group(1)}`" if written else "the array written to"
    if x.id in _view_chain(graph, held.id):
        shared, copy, made = f"`{name}` is a view of {target}", f"`{name}`", graph.node(held.id).loc
    elif held.id in _view_chain(graph, x.id):
        shared, copy, made = f"{target} is a view of `{name}`", target, graph.node(x.id).loc
    else:
        shared, copy, made = f"`{name}` and {target} are views of the same data", f"`{name}`", graph.node(held.id).loc
    made_at = f" at {made}" if made is not None else ""
    return at_user_line(
        UnsupportedError, f"{shared}, so in NumPy this write would change `{name}` too; traced arrays never "
        f"share memory, so `{name}` would keep its old values. Make {copy} a copy (`.copy()`{made_at}), "
        "or do the assignment before making the view."
    )


PROTOCOLS.setitem = setitem

"""How NumPy calls on tracers become primitives.

`apply_ufunc` serves `__array_ufunc__` (np.exp, operators, ...), `apply_function`
serves `__array_function__` (np.sum, np.reshape, ...) and `getitem` serves `x[...]`;
importing this module installs them in `tracing.PROTOCOLS`. Here NumPy's
flexible spellings (axis=None / int / tuple, negative axes, -1 in shapes) become the
static, normalized params the primitives expect.
"""
from __future__ import annotations

import ast
import dis
import linecache
import operator
from types import FrameType
from typing import Any, Callable, Optional

import numpy as np

from compiler import concretization
from compiler.errors import ShapeError, UnsupportedError, at_user_line
from compiler.primitives import registry
from compiler.tracing import PROTOCOLS, Tracer, bind, current, holds_tracers, lift

# A ufunc is supported when a primitive of the same name is registered with
# `ufunc=True`: adding a ufunc primitive touches only its family module.


def _ufuncs() -> list[str]:
    return sorted(name for name, prim in registry.registered().items() if prim.ufunc)

_BITWISE = {np.bitwise_and: "logical_and", np.bitwise_or: "logical_or", np.invert: "logical_not"}


# Families of related NumPy functions (as `np.<name>` spells them): the refusal of an
# unsupported function names the supported members of its own families, never
# functions that merely look alike (np.floor is no relative of np.logical_or).
_FAMILIES = (
    "exp exp2 expm1 log log2 log10 log1p logaddexp logaddexp2",
    "power float_power sqrt cbrt square reciprocal",
    "sin cos tan arcsin arccos arctan arctan2 hypot sinc deg2rad rad2deg degrees radians",
    "sinh cosh tanh arcsinh arccosh arctanh",
    "floor ceil round around rint trunc fix",
    "absolute fabs sign signbit copysign heaviside negative positive",
    "floor_divide remainder mod fmod divmod modf divide true_divide",
    "frexp ldexp modf spacing nextafter",
    "maximum minimum fmax fmin clip max min amax amin nanmax nanmin ptp",
    "argmax argmin nanargmax nanargmin argsort argpartition searchsorted nonzero argwhere flatnonzero",
    "sort argsort partition argpartition lexsort sort_complex unique",
    "sum prod cumsum cumprod nansum nanprod nancumsum nancumprod diff ediff1d gradient trapezoid",
    "mean average median var std nanmean nanmedian nanvar nanstd percentile quantile nanpercentile "
    "nanquantile cov corrcoef",
    "greater greater_equal less less_equal equal not_equal isclose allclose array_equal array_equiv",
    "logical_and logical_or logical_not logical_xor any all",
    "bitwise_and bitwise_or bitwise_xor invert bitwise_not left_shift right_shift",
    "isfinite isnan isinf isposinf isneginf nan_to_num",
    "real imag conj conjugate angle absolute",
    "dot vdot inner outer matmul tensordot einsum kron cross linalg.multi_dot trace",
    "linalg.inv linalg.pinv linalg.solve linalg.lstsq linalg.det linalg.slogdet linalg.norm linalg.eig "
    "linalg.eigh linalg.eigvals linalg.eigvalsh linalg.svd linalg.qr linalg.cholesky linalg.matrix_power",
    "reshape ravel transpose swapaxes moveaxis rollaxis expand_dims squeeze broadcast_to broadcast_arrays "
    "atleast_1d atleast_2d atleast_3d",
    "flip fliplr flipud roll rot90 tile repeat pad",
    "concatenate stack vstack hstack dstack column_stack append block",
    "split array_split hsplit vsplit dsplit",
    "where select choose piecewise take take_along_axis compress extract diagonal diag tril triu",
    "zeros_like ones_like full_like empty_like zeros ones full empty eye identity arange linspace",
    "fft.fft fft.ifft fft.rfft fft.irfft fft.fft2 fft.ifft2 fft.fftn fft.ifftn",
)


def _unsupported(kind: str, name: str, known: list[str]) -> UnsupportedError:
    """The refusal of `np.<name>` (a ufunc or function no handler supports), naming
    up to five supported functions of its families, or none when it has no
    supported relative. Supported means: in `known`, a ufunc primitive, or a
    NumPy function with a handler (named as `np.linalg.norm` is `linalg.norm`)."""
    supported = set(known) | set(_ufuncs())
    for fn in FUNCTIONS:
        module = getattr(fn, "__module__", None) or "numpy"
        prefix = module[len("numpy."):] + "." if module.startswith("numpy.") and "._" not in module else ""
        supported.add(prefix + getattr(fn, "__name__", ""))
    related: list[str] = []
    for family in _FAMILIES:
        members = family.split()
        if name in members:
            related += [m for m in members if m != name and m in supported and m not in related]
    hint = f" Close supported ones: {', '.join('np.' + r for r in related[:5])}." if related else ""
    return at_user_line(
        UnsupportedError, f"np.{name} is not supported on traced values ({kind}).{hint} "
        "Write it with supported NumPy operations."
    )


_UFUNC_REDUCTIONS = {"add": "np.sum", "maximum": "np.max", "minimum": "np.min"}


def apply_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict, operator: bool = False) -> Any:
    """`np.<ufunc>(*inputs)`, or with `operator` the Python operator that spells it.
    They differ on Python numbers alone, as in NumPy: `a - 0.5` is a Python float,
    `np.subtract(a, 0.5)` a NumPy scalar (strong: it does not bend to float32)."""
    if method != "__call__":
        instead = _UFUNC_REDUCTIONS.get(ufunc.__name__) if method == "reduce" else None
        hint = f" Use {instead}(x, axis=0) instead." if instead else " Write it with supported NumPy functions."
        raise at_user_line(UnsupportedError, f"np.{ufunc.__name__}.{method} is not supported on traced values.{hint}")
    if kwargs:
        raise at_user_line(
            UnsupportedError, f"np.{ufunc.__name__} with {', '.join(kwargs)}= is not supported; "
            "write the result to a new variable instead."
        )
    if ufunc in _BITWISE and all(_is_bool(x) for x in inputs):
        return bind(_BITWISE[ufunc], *inputs)
    if ufunc is np.positive:
        return as_tracer(inputs[0]).same_value()
    if ufunc is np.divmod:
        return (apply_ufunc(np.floor_divide, method, inputs, kwargs, operator),
                apply_ufunc(np.remainder, method, inputs, kwargs, operator))
    name = ufunc.__name__
    prim = registry.find(name)
    if prim is None or not prim.ufunc:
        raise _unsupported("ufunc", name, _ufuncs())
    result = bind(name, *inputs)
    if result.aval.weak and not operator:
        return bind("astype", result, dtype=result.dtype)
    return result


def apply_operator(ufunc: np.ufunc, inputs: tuple) -> Any:
    return apply_ufunc(ufunc, "__call__", inputs, {}, operator=True)


def _is_bool(x: Any) -> bool:
    if isinstance(x, Tracer):
        return x.dtype == bool
    return isinstance(x, (bool, np.bool_)) or (isinstance(x, np.ndarray) and x.dtype == bool)


def axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """NumPy's axis argument as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if ndim == 0 and isinstance(axis, (int, np.integer)) and axis in (0, -1):
        return ()  # like NumPy, a 0-d array may be reduced over axis 0 or -1
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = sorted(one_axis(a, ndim) for a in items)
    if len(set(out)) != len(out):
        raise at_user_line(ShapeError, f"repeated axis in {axis}")
    return tuple(out)


def one_axis(axis: Any, ndim: int) -> int:
    """A single axis argument as a non-negative int, checked against `ndim`."""
    try:
        a = operator.index(axis)
    except TypeError:
        raise at_user_line(ShapeError, f"axis must be an int, got {type(axis).__name__} {axis!r}") from None
    if not -ndim <= a < ndim:
        raise at_user_line(ShapeError, f"axis {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim


def _no_extras(fn: str, **given: Any) -> None:
    for key, value in given.items():
        if value is not None and value is not np._NoValue:
            hint = " Write the result to a new variable instead." if key == "out" else ""
            raise at_user_line(UnsupportedError, f"np.{fn}(..., {key}=...) is not supported on traced values.{hint}")


def _reduction(fn: str) -> Callable:
    """np.sum / np.mean: `(a, axis, dtype, out, keepdims, ...)` as NumPy orders them."""

    def reduce(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        _no_extras(fn, dtype=dtype, out=out, initial=initial, where=where)
        return _reduce(fn, a, axis, keepdims)

    return reduce


def _extremum(fn: str) -> Callable:
    """np.max / np.min: `(a, axis, out, keepdims, initial, where)` (no dtype)."""

    def reduce(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_extras(fn, out=out, initial=initial, where=where)
        return _reduce(fn, a, axis, keepdims)

    return reduce


def _reduce(fn: str, a: Any, axis: Any, keepdims: bool) -> Tracer:
    a = as_tracer(a)
    return bind(fn, a, axis=axes(axis, a.ndim), keepdims=bool(keepdims), ndim=a.ndim)


def as_tracer(x: Any) -> Tracer:
    return x if isinstance(x, Tracer) else Tracer(current().graph, lift(x, current().graph))


def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    a = as_tracer(a)
    shape = newshape if shape is None else shape
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if shape.count(-1) == 1:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or a.size % known:
            raise at_user_line(ShapeError, f"np.reshape: cannot reshape an array of shape {a.shape} into shape {shape}")
        shape = tuple(a.size // known if d == -1 else d for d in shape)
    if order != "C":
        raise at_user_line(UnsupportedError, "np.reshape: only order='C' is supported")
    if shape == a.shape:
        return a
    return bind("reshape", a, shape=shape)


def transpose(a, axes_=None, **kwargs):
    a = as_tracer(a)
    perm = kwargs.get("axes", axes_)
    perm = tuple(reversed(range(a.ndim))) if perm is None else tuple(one_axis(p, a.ndim) for p in perm)
    if perm == tuple(range(a.ndim)):
        return a
    return bind("transpose", a, axes=perm)


def swapaxes(a, axis1, axis2):
    a = as_tracer(a)
    perm = list(range(a.ndim))
    i, j = one_axis(axis1, a.ndim), one_axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, tuple(perm))


def expand_dims(a, axis):
    a = as_tracer(a)
    new = axes(axis, a.ndim + len(axis if isinstance(axis, (tuple, list)) else (axis,)))
    shape, it = [], iter(a.shape)
    for i in range(a.ndim + len(new)):
        shape.append(1 if i in new else next(it))
    return reshape(a, tuple(shape))


def squeeze(a, axis=None):
    a = as_tracer(a)
    drop = tuple(i for i, d in enumerate(a.shape) if d == 1) if axis is None else axes(axis, a.ndim)
    if any(a.shape[i] != 1 for i in drop):
        raise at_user_line(ShapeError, f"np.squeeze: cannot select an axis to squeeze out which has size not equal to one ({a.shape})")
    return reshape(a, tuple(d for i, d in enumerate(a.shape) if i not in drop))


def ravel(a, order="C"):
    return reshape(a, (-1,), order)


def broadcast_to(array, shape, subok=False):
    array = as_tracer(array)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if shape == array.shape:
        return array
    return bind("broadcast_to", array, shape=shape)


def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _no_extras("concatenate", out=out, dtype=dtype, casting=casting)
    arrays = [as_tracer(a) for a in arrays]
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if arrays[0].ndim == 0:
        raise at_user_line(ShapeError, "np.concatenate: zero-dimensional arrays cannot be concatenated")
    return bind("concatenate", *arrays, axis=one_axis(axis, arrays[0].ndim))


def stack(arrays, axis=0, out=None, dtype=None, casting=None):
    _no_extras("stack", out=out, dtype=dtype, casting=casting)
    arrays = [as_tracer(a) for a in arrays]
    return bind("stack", *arrays, axis=one_axis(axis, arrays[0].ndim + 1))


def where(condition, x=None, y=None):
    if x is None and y is None:
        return np.nonzero(condition)
    if x is None or y is None:
        raise at_user_line(UnsupportedError, "np.where takes a condition alone, or a condition, x and y")
    return bind("where", condition, x, y)


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    _no_extras("clip", out=out)
    a_min, a_max = kwargs.get("min", a_min), kwargs.get("max", a_max)
    if a_min is not None:
        a = np.maximum(a, a_min)
    if a_max is not None:
        a = np.minimum(a, a_max)
    return as_tracer(a).same_value() if a_min is None and a_max is None else a


def outer(a, b, out=None):
    _no_extras("outer", out=out)
    return bind("outer", a, b)


FUNCTIONS: dict[Callable, Callable] = {
    np.sum: _reduction("sum"), np.mean: _reduction("mean"),
    np.max: _extremum("max"), np.amax: _extremum("max"),
    np.min: _extremum("min"), np.amin: _extremum("min"),
    np.reshape: reshape, np.transpose: transpose, np.swapaxes: swapaxes,
    np.expand_dims: expand_dims, np.squeeze: squeeze, np.ravel: ravel,
    np.broadcast_to: broadcast_to, np.concatenate: concatenate, np.stack: stack,
    np.where: where, np.clip: clip, np.outer: outer,
    np.shape: lambda a: a.shape, np.ndim: lambda a: a.ndim, np.size: lambda a, axis=None: a.size if axis is None else a.shape[axis],
}


# functions whose results carry no gradient (docs/numpy-support.md); shape queries are static
NO_GRADIENT: set[Callable] = {np.shape, np.ndim, np.size}


def implements(*functions: Callable, differentiable: bool = True) -> Callable[[Callable], Callable]:
    """Register a handler for NumPy functions on traced values: `@implements(np.var)`.
    Family modules in compiler/numpy_functions/ register theirs this way; functions
    whose results are integer, boolean or piecewise constant say `differentiable=False`."""

    def register(handler: Callable) -> Callable:
        for fn in functions:
            if fn in FUNCTIONS:
                raise ValueError(f"np.{fn.__name__} has a handler already")
            FUNCTIONS[fn] = handler
            if not differentiable:
                NO_GRADIENT.add(fn)
        return handler

    return register


def apply_function(func: Callable, args: tuple, kwargs: dict) -> Any:
    handler = FUNCTIONS.get(func)
    if handler is None:
        known = sorted({getattr(f, "__name__", "") for f in FUNCTIONS})
        module = getattr(func, "__module__", None) or "numpy"
        prefix = module[len("numpy."):] + "." if module.startswith("numpy.") and "._" not in module else ""
        raise _unsupported("function", prefix + getattr(func, "__name__", str(func)), known)
    return _numpy_values(handler(*args, **kwargs))


def _numpy_values(result: Any) -> Any:
    """A NumPy function's result as NumPy gives it: never a Python number (a weak
    value), even where the handler returned its operand (`np.transpose(a)` of a
    Python float is a NumPy value, which widens float32)."""
    if isinstance(result, Tracer):
        return bind("astype", result, dtype=result.dtype) if result.aval.weak else result
    if type(result) in (tuple, list):
        return type(result)(_numpy_values(r) for r in result)
    return result


def getitem(x: Tracer, index: Any) -> Tracer:
    items = index if isinstance(index, tuple) else (index,)
    spec, arrays = [], []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise at_user_line(UnsupportedError, "indexing with a Python bool is not supported")
        if isinstance(item, (int, np.integer)):
            spec.append(("int", int(item)))
        elif isinstance(item, slice):
            spec.append(("slice",) + tuple(None if v is None else v.__index__() for v in (item.start, item.stop, item.step)))
        elif item is None:
            spec.append(("none",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        else:
            array = _index_array(item)
            if array.dtype == bool:  # a traced mask's count is decided (compiler/numpy_functions/selection.py)
                for part in np.nonzero(array):
                    spec.append(("array", len(arrays)))
                    arrays.append(part)
                continue
            if array.dtype.kind not in "iu":
                raise at_user_line(UnsupportedError, f"cannot index with an array of dtype {array.dtype}; use integers")
            spec.append(("array", len(arrays)))
            arrays.append(array)
    return bind("getitem", x, *arrays, spec=tuple(spec))


def _index_array(item: Any) -> Any:
    """An index entry as an array: a list holding traced values (`x[[i, j]]`) is
    stacked into a traced array, which NumPy's np.asarray cannot do."""
    if isinstance(item, Tracer):
        return item
    if isinstance(item, list) and holds_tracers(item):  # a tuple would be a multi-axis index
        return stack([_index_array(e) if isinstance(e, list) else e for e in item])
    return np.asarray(item)


def _subscript(frame: FrameType) -> Optional[ast.Subscript]:
    """The subscript expression `frame` is evaluating, found from the code's positions
    of its current instruction (they span lines), or None for any other instruction."""
    code, lasti = frame.f_code, frame.f_lasti
    if lasti < 0 or dis.opname[code.co_code[lasti]] != "BINARY_SUBSCR":
        return None
    start, end, col, end_col = list(code.co_positions())[lasti // 2]
    if None in (start, end, col, end_col):
        return None
    lines = [line.encode() for line in linecache.getlines(code.co_filename)[start - 1:end]]
    if len(lines) != end - start + 1:
        return None
    lines[-1] = lines[-1][:end_col]
    lines[0] = lines[0][col:]
    try:
        node = ast.parse(f"(\n{b''.join(lines).decode()}\n)", mode="eval").body
    except (SyntaxError, UnicodeDecodeError):
        return None
    return node if isinstance(node, ast.Subscript) else None


def _subscripted_array(frame: Optional[FrameType], value: Any) -> Optional[np.ndarray]:
    """The NumPy array `a` of the line's `a[...]` when traced `value` is being asked
    for a concrete index there (an INDEXED_ARRAY_FINDERS entry)."""
    node = _subscript(frame) if frame is not None and isinstance(value, Tracer) else None
    if node is None or not isinstance(node.value, ast.Name):
        return None
    name = node.value.id
    array = frame.f_locals.get(name, frame.f_globals.get(name))
    return array if isinstance(array, np.ndarray) else None


def _numpy_subscript(frame: Optional[FrameType], value: Any) -> Optional[tuple[str, str]]:
    """Advice for `a[i]` with `a` a NumPy array and `i` traced (a concretization
    advisor). Python hands the subscript to NumPy's own indexing, which no protocol
    lets a tracer answer: it asks `i` for a concrete array. Only a traced `a` can be
    indexed with traced values, so say how to make `a` traced."""
    array = _subscripted_array(frame, value)
    if array is None:
        return None
    name = _subscript(frame).value.id
    index = concretization.describe(value.graph, value.id, frame)
    like = index if index.isidentifier() else "<a traced value>"
    dtype = "" if array.dtype == np.float64 else f", {name}.dtype"
    return f"a concrete index into the NumPy array `{name}`", (
        f"Indexing a NumPy array runs NumPy's own indexing, which cannot take a traced index; only a traced "
        f"array can be indexed with traced values. Make `{name}` traced: pass it to the compiled function as an "
        f"argument (arrays passed in are traced), or write `{name} = np.zeros({name}.shape{dtype}, like={like}) + "
        f"{name}` before indexing it."
    )


concretization.ADVISORS.append(_numpy_subscript)
concretization.INDEXED_ARRAY_FINDERS.append(_subscripted_array)
PROTOCOLS.ufunc, PROTOCOLS.operator, PROTOCOLS.function, PROTOCOLS.getitem = apply_ufunc, apply_operator, apply_function, getitem

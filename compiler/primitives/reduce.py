"""Reductions over static axes (sum, mean, max, min, prod, the NaN-ignoring ones,
median, any, all, count_nonzero), the scans cumsum and cumprod, sorting, and the
arg-functions argsort, argmax and argmin.

`axis` is always a sorted tuple of non-negative ints for reductions and one
non-negative int for scans and sorts (the handlers normalize NumPy's None / int /
negative / tuple spellings), so gradients are decided at compile time: the
cotangent is reshaped to keep the reduced axes and broadcast back.
"""
from __future__ import annotations

import ast
import math
from typing import Optional

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.elementwise import conj_if_complex
from compiler.primitives.registry import Primitive, batched_linear, call, literal, method_call, np_call, register, shifted_axes


def reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def reduced_count(shape: tuple[int, ...], axis: tuple[int, ...]) -> int:
    """How many elements each result element of a reduction over `axis` combines."""
    return math.prod(shape[i] for i in axis)


def _axis_arg(ndim: int, axis: tuple[int, ...]):
    if len(axis) == ndim:
        return None
    return axis[0] if len(axis) == 1 else axis


# reductions printed as array methods (`g.sum(axis=0)`): the same ufunc reduction
# without np.sum's Python-level argument handling, about 1.3 us less per call
_METHODS = ("sum", "mean", "max", "min", "prod", "any", "all")


def _emit(fn: str, method: bool = False):
    """`np.<fn>(x, axis=..., keepdims=True)`, or with `method` `x.<fn>(...)` (an
    operand that is a Python number at run time has no methods: `emit_weak` keeps
    the function form for it)."""

    def emit(x: ast.expr, *, axis: tuple[int, ...], keepdims: bool, ndim: int) -> ast.expr:
        kwargs = {}
        arg = _axis_arg(ndim, axis)
        if arg is not None:
            kwargs["axis"] = arg
        if keepdims:
            kwargs["keepdims"] = True
        return method_call(x, fn, **kwargs) if method else np_call(fn, x, **kwargs)

    return emit


_EXTREMA = ("max", "min", "nanmax", "nanmin")


def _abstract(fn: str):
    def abstract(x: Aval, *, axis: tuple[int, ...], keepdims: bool, ndim: int) -> Aval:
        if fn in _EXTREMA and any(x.shape[i] == 0 for i in axis):
            raise ShapeError(f"np.{fn}: zero-size axis has no maximum or minimum")
        with np.errstate(all="ignore"):
            dtype = getattr(np, fn)(np.ones(1, x.dtype)).dtype
        return Aval(reduced_shape(x.shape, axis, keepdims), dtype)

    return abstract


def expand_cotangent(g, x, axis: tuple[int, ...], keepdims: bool):
    """Cotangent of a reduction's output, reshaped to keep dims and broadcast to x."""
    return np.broadcast_to(_broadcastable(g, x, axis, keepdims), x.shape)


def _broadcastable(g, x, axis: tuple[int, ...], keepdims: bool):
    """A reduction's cotangent reshaped so that it broadcasts against x: the reduced
    axes kept with size 1, unless they lead (then broadcasting adds them)."""
    leading = axis == tuple(range(len(axis)))
    if keepdims or leading:
        return g
    return np.reshape(g, reduced_shape(x.shape, axis, True))


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
    return (expand_cotangent(g / reduced_count(x.shape, axis), x, axis, keepdims),)


def _share(g, winners, axis: tuple[int, ...], dtype: np.dtype):
    """`g` split evenly among the `winners` of each reduced slice, 0 elsewhere."""
    count = np.sum(winners, axis=axis, keepdims=True).astype(dtype)
    return np.where(winners, g / count, 0)


def _mean_over(t, lanes, axis: tuple[int, ...], keepdims: bool, dtype: np.dtype):
    """The mean of `t` over the `lanes` of each reduced slice, 0 for a slice with
    none: the transpose of `_share`."""
    total = np.sum(np.where(lanes, t, 0), axis=axis, keepdims=keepdims)
    count = np.sum(lanes, axis=axis, keepdims=keepdims).astype(dtype)
    return total / np.maximum(count, 1)


def _winners(out, x, axis: tuple[int, ...], keepdims: bool):
    """The elements equal to their slice's extremum. A NaN never equals it, so the
    NaN-ignoring forms need nothing more."""
    return x == _broadcastable(out, x, axis, keepdims)


def _extremum_vjp(g, out, x, *, axis, keepdims, ndim):
    """Ties share the gradient evenly, as NumPy users of autograd/JAX expect."""
    return (_share(_broadcastable(g, x, axis, keepdims), _winners(out, x, axis, keepdims), axis, x.dtype),)


def _extremum_jvp(ts, out, x, *, axis, keepdims, ndim):
    """d max = the mean of dx over the tied maxima (the VJP's even split, transposed)."""
    return _mean_over(ts[0], _winners(out, x, axis, keepdims), axis, keepdims, x.dtype)


def _prod_partials(x, axis: tuple[int, ...]):
    """d prod / dx, exact where x has zeros. An element's partial derivative is the
    product of the other elements of its slice: the product of the nonzero ones
    divided by it when the slice has no zero; for a slice's only zero, the product
    of the nonzero ones; 0 for every other element of a slice with a zero."""
    zero = x == 0
    zeros = np.sum(zero, axis=axis, keepdims=True)
    safe = np.where(zero, 1, x)
    nonzero_product = np.prod(safe, axis=axis, keepdims=True)
    at_zero = np.where(zeros == 1, nonzero_product, 0)
    elsewhere = np.where(zeros == 0, nonzero_product / safe, 0)
    return np.where(zero, at_zero, elsewhere)


def _prod_vjp(g, out, x, *, axis, keepdims, ndim):
    """g times the conjugated partial derivatives, where complex (a product)."""
    return (_broadcastable(g, x, axis, keepdims) * conj_if_complex(_prod_partials(x, axis)),)


def _prod_jvp(ts, out, x, *, axis, keepdims, ndim):
    """d prod = sum over the slice of dx_i * prod_{j != i} x_j."""
    return np.sum(ts[0] * _prod_partials(x, axis), axis=axis, keepdims=keepdims)


def _nansum_vjp(g, out, x, *, axis, keepdims, ndim):
    return (np.where(np.isnan(x), 0, expand_cotangent(g, x, axis, keepdims)),)


def _nansum_jvp(ts, out, x, *, axis, keepdims, ndim):
    """d nansum = the sum of dx over the lanes where x is not NaN."""
    return np.sum(np.where(np.isnan(x), 0, ts[0]), axis=axis, keepdims=keepdims)


def _nanmean_vjp(g, out, x, *, axis, keepdims, ndim):
    return (_share(_broadcastable(g, x, axis, keepdims), ~np.isnan(x), axis, x.dtype),)


def _nanmean_jvp(ts, out, x, *, axis, keepdims, ndim):
    """d nanmean = the mean of dx over the lanes where x is not NaN."""
    return _mean_over(ts[0], ~np.isnan(x), axis, keepdims, x.dtype)


def _middle_values(x, axis: tuple[int, ...]) -> list:
    """Each slice's one or two middle values (whose mean is the median), with the
    reduced axes kept."""
    count = reduced_count(x.shape, axis)
    lanes = _sorted_lanes(x, axis)
    ranks = sorted({(count - 1) // 2, count // 2})
    return [np.reshape(lanes[..., r], reduced_shape(x.shape, axis, True)) for r in ranks]


def _median_vjp(g, out, x, *, axis, keepdims, ndim):
    """The median is the mean of a slice's two middle values (one, for an odd count):
    each middle value's part of the cotangent is shared evenly among the elements
    equal to it, like ties of max."""
    if reduced_count(x.shape, axis) == 0:
        return (None,)
    middle = _middle_values(x, axis)
    kept = _broadcastable(g, x, axis, keepdims)
    if len(middle) == 2:
        kept = kept * 0.5
    shares = [_share(kept, x == value, axis, x.dtype) for value in middle]
    return (shares[0] if len(shares) == 1 else shares[0] + shares[1],)


def _median_jvp(ts, out, x, *, axis, keepdims, ndim):
    """d median = the mean over the middle values of dx averaged over the elements
    tied with each (the VJP's split, transposed)."""
    if reduced_count(x.shape, axis) == 0:
        return None
    middle = _middle_values(x, axis)
    means = [_mean_over(ts[0], x == value, axis, keepdims, x.dtype) for value in middle]
    return means[0] if len(means) == 1 else (means[0] + means[1]) * 0.5


def _sorted_lanes(x, axis: tuple[int, ...]):
    """x with the reduced axes moved last and flattened into one, sorted along it."""
    kept = tuple(i for i in range(x.ndim) if i not in axis)
    moved = np.transpose(x, kept + axis)
    return np.sort(np.reshape(moved, tuple(x.shape[i] for i in kept) + (reduced_count(x.shape, axis),)), axis=-1)


_REDUCTION_VJPS = {
    "sum": _sum_vjp, "mean": _mean_vjp, "max": _extremum_vjp, "min": _extremum_vjp, "prod": _prod_vjp,
    "nansum": _nansum_vjp, "nanmean": _nanmean_vjp, "nanmax": _extremum_vjp, "nanmin": _extremum_vjp,
    "median": _median_vjp,
}
# sum and mean take the derived rule of a linear primitive. nansum and nanmean are
# odd (f(-x) = -f(x), which is all the simplifier asks of `linear`) but not linear
# (NaN lanes drop out), so they have rules of their own.
_REDUCTION_JVPS = {
    "max": _extremum_jvp, "min": _extremum_jvp, "prod": _prod_jvp, "nansum": _nansum_jvp,
    "nanmean": _nanmean_jvp, "nanmax": _extremum_jvp, "nanmin": _extremum_jvp, "median": _median_jvp,
}
_LINEAR = ("sum", "mean", "nansum", "nanmean")

for _fn, _vjp in _REDUCTION_VJPS.items():
    register(Primitive(_fn, abstract=_abstract(_fn), emit=_emit(_fn, _fn in _METHODS), vjp=_vjp, linear=_fn in _LINEAR,
                       emit_weak=_emit(_fn) if _fn in _METHODS else None,
                       jvp=_REDUCTION_JVPS.get(_fn),
                       batched_jvp=batched_linear(_fn, shifted_axes) if _fn in ("sum", "mean") else None))
for _fn in ("any", "all", "count_nonzero"):
    register(Primitive(_fn, abstract=_abstract(_fn), emit=_emit(_fn, _fn in _METHODS), differentiable=False,
                       emit_weak=_emit(_fn) if _fn in _METHODS else None))


# --- along one axis: scans and sorts ------------------------------------------------


def _scan_abstract(fn: str):
    def abstract(x: Aval, *, axis: int) -> Aval:
        return Aval(x.shape, getattr(np, fn)(np.ones(1, x.dtype)).dtype)

    return abstract


def _reverse_cumsum(g, axis: int):
    """Sums from each position to the end of the axis: `np.cumsum(g[::-1])[::-1]`."""
    flip = (slice(None),) * axis + (slice(None, None, -1),)
    return np.cumsum(g[flip], axis=axis)[flip]


def _cumprod_vjp(g, out, x, *, axis):
    """Exact with zeros. Before a slice's first zero, element k's gradient is the
    reverse cumulative sum of g * out divided by x_k (the outputs from the first
    zero on are 0 and add nothing). The first zero's is the reverse cumulative sum
    of g times the cumulative product with that zero replaced by 1. Every later
    element only multiplies outputs that hold the zero: its gradient is 0. Of complex
    values the partial derivatives are conjugated (a product)."""
    zero = x == 0
    zeros_so_far = np.cumsum(zero, axis=axis)
    first_zero = zero & (zeros_so_far == 1)
    before_zeros = _reverse_cumsum(g * conj_if_complex(out), axis) / conj_if_complex(np.where(zero, 1, x))
    at_first_zero = _reverse_cumsum(g * conj_if_complex(np.cumprod(np.where(first_zero, 1, x), axis=axis)), axis)
    return (np.where(zeros_so_far == 0, before_zeros, np.where(first_zero, at_first_zero, 0)),)


def _cumprod_jvp(ts, out, x, *, axis):
    """Exact with zeros: d out_k = sum_{j <= k} dx_j * prod_{i <= k, i != j} x_i.
    Before a slice's first zero that is out_k * cumsum(dx / x)_k. From the first
    zero z until the next one, only j = z survives: dx_z times the cumulative
    product with x_z replaced by 1. From a second zero on, every term is 0."""
    t = ts[0]
    zero = x == 0
    zeros_so_far = np.cumsum(zero, axis=axis)
    first_zero = zero & (zeros_so_far == 1)
    before_zeros = out * np.cumsum(t / np.where(zero, 1, x), axis=axis)
    from_first_zero = np.cumsum(np.where(first_zero, t, 0), axis=axis) * np.cumprod(np.where(first_zero, 1, x), axis=axis)
    return np.where(zeros_so_far == 0, before_zeros, np.where(zeros_so_far == 1, from_first_zero, 0))


register(Primitive("cumsum", abstract=_scan_abstract("cumsum"), emit=call("cumsum"),
                   vjp=lambda g, out, x, *, axis: (_reverse_cumsum(g, axis),), linear=True))
register(Primitive("cumprod", abstract=_scan_abstract("cumprod"), emit=call("cumprod"), vjp=_cumprod_vjp,
                   jvp=_cumprod_jvp))


def _sort_emit(fn: str):
    def emit(x: ast.expr, *, axis: int, kind: Optional[str], stable: Optional[bool]) -> ast.expr:
        options = {k: v for k, v in (("kind", kind), ("stable", stable)) if v is not None}
        return np_call(fn, x, axis=axis, **options)

    return emit


def _sort_vjp(g, out, x, *, axis, kind, stable):
    """The cotangent goes back through the sorting permutation."""
    order = x.apply("argsort", axis=axis, kind=kind, stable=stable)
    return (g.apply("unpermute", order, axis=axis, shape=x.shape, dtype=x.dtype),)


def _sort_jvp(ts, out, x, *, axis, kind, stable):
    """The tangent taken in the sorting permutation's order."""
    order = x.apply("argsort", axis=axis, kind=kind, stable=stable)
    return np.take_along_axis(ts[0], order, axis=axis)


register(Primitive("sort", abstract=lambda x, *, axis, kind, stable: Aval(x.shape, x.dtype), emit=_sort_emit("sort"),
                   vjp=_sort_vjp, jvp=_sort_jvp))
register(Primitive("argsort", abstract=lambda x, *, axis, kind, stable: Aval(x.shape, np.dtype(np.intp)),
                   emit=_sort_emit("argsort"), differentiable=False))


# The inverse of gathering along an axis by a permutation (`np.take_along_axis(x,
# order, axis)`): scattering the values back into a fresh buffer of `shape` and
# `dtype`. A permutation never repeats an index, so this assigns where the general
# scatter-add of take_along_axis's gradient accumulates with np.add.at.


def _unpermute_abstract(g: Aval, order: Aval, *, axis: int, shape: tuple[int, ...], dtype: np.dtype) -> Aval:
    if g.shape != order.shape or order.shape != tuple(shape):
        raise ShapeError(f"cannot scatter values of shape {g.shape} by an order of shape {order.shape} into {shape}")
    return Aval(tuple(shape), np.dtype(dtype))


def _unpermute_stmts(target: ast.Name, g: ast.expr, order: ast.expr, *, axis: int, shape, dtype) -> list[ast.stmt]:
    """`out = np.empty(shape, dtype=dtype); np.put_along_axis(out, order, g, axis=axis)`."""
    store = ast.Assign([ast.Name(target.id, ast.Store())], np_call("empty", literal(tuple(shape)), dtype=np.dtype(dtype)))
    put = np_call("put_along_axis", ast.Name(target.id, ast.Load()), order, g, axis=axis)
    return [store, ast.Expr(put)]


def _unpermute_vjp(g, out, values, order, *, axis, shape, dtype):
    return np.take_along_axis(g, order, axis=axis), None


register(Primitive("unpermute", abstract=_unpermute_abstract, emit_stmts=_unpermute_stmts, vjp=_unpermute_vjp,
                   linear=True))


def _arg_extremum_abstract(fn: str):
    def abstract(x: Aval, *, axis: Optional[int], keepdims: bool) -> Aval:
        reduced = tuple(range(x.ndim)) if axis is None else (axis,)
        if any(x.shape[i] == 0 for i in reduced):
            raise ShapeError(f"np.{fn}: attempt to get {fn} of an empty sequence")
        return Aval(reduced_shape(x.shape, reduced, keepdims), np.dtype(np.intp))

    return abstract


def _arg_extremum_emit(fn: str):
    def emit(x: ast.expr, *, axis: Optional[int], keepdims: bool) -> ast.expr:
        options = {k: v for k, v in (("axis", axis), ("keepdims", keepdims or None)) if v is not None}
        return np_call(fn, x, **options)

    return emit


for _fn in ("argmax", "argmin"):
    register(Primitive(_fn, abstract=_arg_extremum_abstract(_fn), emit=_arg_extremum_emit(_fn), differentiable=False))

"""Forward mode (jvp) through reductions, scans, sorts, shape moves and indexed
writes. Tangents are checked against centered finite differences along random
directions (exact for the multilinear prod and cumprod even at zeros, and for the
linear pads and writes); where the function has a kink (tied maxima), against the
convention the reverse-mode rule uses, transposed: <grad, v> = jvp(v). Second
order: jvp of grad (a Hessian-vector product) against differences of grad."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad, jvp
from helpers import PROPERTY, assert_jvp, seeds, shapes, weighted

EPS = 1e-6


def numeric_tangent(f, args, tangents):
    """(f(args + eps v) - f(args - eps v)) / 2 eps, entry by entry."""
    def moved(step):
        return np.asarray(f(*(a + step * t for a, t in zip(args, tangents))))

    return (moved(EPS) - moved(-EPS)) / (2 * EPS)


def assert_tangent(f, args, tangents, rtol=1e-6, atol=1e-7):
    """jvp of the array-valued `f` equals its value and centered differences."""
    value, tangent = jvp(f, args, tangents)
    np.testing.assert_allclose(value, f(*args), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tangent, numeric_tangent(f, args, tangents), rtol=rtol, atol=atol)


def distinct(rng, shape, low=-2.0, high=2.0):
    """Values with no ties (max, median and sort are smooth there), in random order."""
    return rng.permutation(np.linspace(low, high, math.prod(shape))).reshape(shape)


@st.composite
def shape_and_axis(draw):
    """A shape of at least one dimension and an axis as NumPy spells it: None, an
    int (maybe negative) or a tuple."""
    shape = draw(shapes(min_dims=1, max_dims=3))
    ndim = len(shape)
    axes = st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim).map(tuple)
    return shape, draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1), axes))


# --- reductions ------------------------------------------------------------------------

REDUCTIONS = ("sum", "mean", "max", "min", "prod", "nansum", "nanmean", "nanmax", "nanmin", "median")


@pytest.mark.parametrize("name", REDUCTIONS)
@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_jvp_matches_finite_differences(name, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape, 0.5, 1.5) if name == "prod" else distinct(rng, shape)
    reduce = getattr(np, name)
    assert_jvp(weighted(lambda x: reduce(x, axis=axis, keepdims=keepdims), (x,), rng), x)


@pytest.mark.parametrize("fn", [np.max, np.min, np.nanmax, np.nanmin])
def test_tied_extrema_take_the_mean_tangent_of_the_ties(fn):
    """The VJP splits a cotangent evenly among tied extrema, so the JVP is the mean
    of the tangent over them."""
    x = np.array([[3.0, 1.0, 3.0, 3.0], [-1.0, -2.0, -1.0, 0.5]])
    x = x if fn in (np.max, np.nanmax) else -x
    t = np.array([[1.0, 10.0, 2.0, 6.0], [4.0, 7.0, 8.0, -5.0]])
    _, along_rows = jvp(lambda x: fn(x, axis=1), (x,), (t,))
    np.testing.assert_allclose(along_rows, [3.0, -5.0])
    _, whole = jvp(lambda x: fn(x), (x,), (t,))
    np.testing.assert_allclose(whole, 3.0)
    w = np.array([0.5, -2.0])
    g = grad(lambda x: np.sum(fn(x, axis=1, keepdims=True)[:, 0] * w))(x)
    np.testing.assert_allclose(np.sum(along_rows * w), np.sum(g * t))


@pytest.mark.parametrize("fn", [np.nansum, np.nanmean, np.nanmax, np.nanmin])
def test_nan_lanes_carry_no_tangent(fn):
    x = np.array([[np.nan, 1.0, 2.0], [0.5, np.nan, np.nan]])
    t = np.array([[100.0, 1.0, 2.0], [3.0, 100.0, 100.0]])
    expected = {np.nansum: [3.0, 3.0], np.nanmean: [1.5, 3.0], np.nanmax: [2.0, 3.0], np.nanmin: [1.0, 3.0]}[fn]
    _, tangent = jvp(lambda x: fn(x, axis=1), (x,), (t,))
    np.testing.assert_allclose(tangent, expected)


def test_median_of_an_even_count_averages_the_two_middle_tangents():
    x = np.array([4.0, 1.0, 3.0, 2.0])
    _, tangent = jvp(np.median, (x,), (np.array([1.0, 2.0, 4.0, 8.0]),))
    assert tangent == pytest.approx((4.0 + 8.0) / 2)


@pytest.mark.parametrize("x", [
    [[2.0, 0.0, 3.0, -1.5], [0.5, 1.5, -2.0, 1.25]],   # one zero in a row
    [[0.0, 2.0, 0.0, 3.0], [1.5, 0.0, -1.0, 0.0]],     # two zeros in a row
    [[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]],
])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_prod_and_cumprod_tangents_are_exact_at_zeros(x, axis):
    """Both are multilinear: centered differences are exact even at zeros."""
    x = np.array(x)
    t = np.random.default_rng(0).normal(size=x.shape)
    assert_tangent(lambda x: np.prod(x, axis=axis), (x,), (t,))
    assert_tangent(lambda x: np.cumprod(x, axis=axis), (x,), (t,))


@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds, data=st.data())
def test_scans_and_sort_jvp(shape, seed, data):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x, t = distinct(rng, shape, 0.5, 1.5) * rng.choice([-1.0, 1.0], size=shape), rng.normal(size=shape)
    assert_tangent(lambda x: np.cumsum(x, axis=axis), (x,), (t,))
    assert_tangent(lambda x: np.cumprod(x, axis=axis), (x,), (t,))
    _, sorted_t = jvp(lambda x: np.sort(x, axis=axis), (x,), (t,))
    np.testing.assert_array_equal(sorted_t, np.take_along_axis(t, np.argsort(x, axis=axis), axis=axis))


# --- shapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric", "wrap"])
def test_pad_tangent_pads_with_zero_or_copies_like_the_mode(mode):
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    widths = ((2, 1), (0, 3))
    options = {"constant_values": 7.0} if mode == "constant" else {}
    _, tangent = jvp(lambda x: np.pad(x, widths, mode=mode, **options), (x,), (t,))
    np.testing.assert_allclose(tangent, np.pad(t, widths, mode=mode))
    assert_jvp(weighted(lambda x: np.pad(x, widths, mode=mode, **options), (x,), rng), x)


@PROPERTY
@given(shape=shapes(min_dims=1, max_dims=2), seed=seeds, axis=st.integers(0, 1))
def test_concatenate_and_stack_with_a_constant_piece(shape, seed, axis):
    """Every piece's tangent lands in its place; a constant piece contributes zero."""
    rng = np.random.default_rng(seed)
    axis = min(axis, len(shape) - 1)
    a, b, c = (rng.normal(size=shape) for _ in range(3))
    ta, tb = rng.normal(size=shape), rng.normal(size=shape)
    _, joined = jvp(lambda a, b: np.concatenate([a, c, b], axis=axis), (a, b), (ta, tb))
    np.testing.assert_array_equal(joined, np.concatenate([ta, np.zeros_like(c), tb], axis=axis))
    _, stacked = jvp(lambda a, b: np.stack([c, b, a], axis=axis), (a, b), (ta, tb))
    np.testing.assert_array_equal(stacked, np.stack([np.zeros_like(c), tb, ta], axis=axis))


def test_convolve_is_a_product_and_astype_casts_the_tangent():
    rng = np.random.default_rng(2)
    a, v, ta, tv = rng.normal(size=5), rng.normal(size=3), rng.normal(size=5), rng.normal(size=3)
    for mode in ("full", "same", "valid"):
        assert_tangent(lambda a, v: np.convolve(a, v, mode=mode), (a, v), (ta, tv))
    value, tangent = jvp(lambda a: (a * 2).astype(np.float32), (a,), (ta,))
    assert value.dtype == tangent.dtype == np.float32
    np.testing.assert_allclose(tangent, 2 * ta, rtol=1e-6)


# --- indexed writes --------------------------------------------------------------------

def written(index):
    def f(x, v):
        y = x.copy()
        y[index] = v
        return y

    return f


@pytest.mark.parametrize("index", [
    (slice(1, 3), 0), (slice(None), slice(None, None, 2)), (np.array([2, 0, 2]),), (np.array([0, 1]), np.array([3, 3])),
], ids=["slices", "step", "repeated-rows", "arrays"])
def test_setitem_tangent_flows_to_the_old_array_and_the_value(index):
    """dy = dx with dv written where v was, the last write to a repeated position
    winning as in the value; from either operand alone too."""
    rng = np.random.default_rng(3)
    x, t_x = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    v = rng.normal(size=x[index].shape)
    t_v = rng.normal(size=v.shape)
    f = written(index)
    assert_tangent(f, (x, v), (t_x, t_v))
    _, from_x = jvp(f, (x, v), (t_x, np.zeros_like(v)))
    np.testing.assert_array_equal(from_x, f(t_x, 0.0))
    _, from_v = jvp(f, (x, v), (np.zeros_like(x), t_v))
    np.testing.assert_array_equal(from_v, f(np.zeros_like(x), t_v))
    assert_jvp(weighted(f, (x, v), rng), x, v, argnums=(0, 1))


def test_setitem_at_a_traced_index_and_augmented_adds():
    rng = np.random.default_rng(4)
    x, v, t_x, t_v = rng.normal(size=5), rng.normal(size=3), rng.normal(size=5), rng.normal(size=3)
    index = np.array([4, 1, 4])

    def f(x, v, i):
        y = x.copy()
        y[i] = v
        y[i] += v * v
        return y

    _, tangent = jvp(f, (x, v, index), (t_x, t_v, index))
    np.testing.assert_allclose(tangent, numeric_tangent(lambda x, v: f(x, v, index), (x, v), (t_x, t_v)),
                               rtol=1e-6, atol=1e-7)


# --- second order: jvp of grad ---------------------------------------------------------

SECOND_ORDER = {
    "prod": lambda x: np.sum(np.sin(np.prod(x, axis=1))),
    "cumprod": lambda x: np.sum(np.cumprod(x, axis=0) ** 2),
    "max": lambda x: np.sum(np.max(x, axis=0) ** 3),
    "sort": lambda x: np.sum(np.sort(x, axis=1) * np.arange(x.shape[1]) * x),
    "median": lambda x: np.median(x, axis=1) @ np.tanh(x[:, 0]),
    "pad": lambda x: np.sum(np.tanh(np.pad(x, ((1, 2), (0, 1)), mode="reflect")) ** 2),
    "setitem": lambda x: np.sum(np.cos(written((slice(0, 2), 1))(x, x[1:, 2] * x[0, 0]))),
}


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_jvp_of_grad_matches_differences_of_grad(name):
    """jvp(grad f)(x; v) = H v, against (grad f(x + eps v) - grad f(x - eps v)) / 2 eps."""
    rng = np.random.default_rng(5)
    x = distinct(rng, (3, 4), 0.5, 1.5)
    v = rng.normal(size=x.shape)
    gradient = grad(SECOND_ORDER[name])
    _, hv = jvp(gradient, (x,), (v,))
    np.testing.assert_allclose(hv, numeric_tangent(gradient, (x,), (v,)), rtol=1e-5, atol=1e-6)

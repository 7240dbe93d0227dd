"""NumPy's reductions, scans and sorts on traced values: prod, var, std, average, ptp,
amax/amin, the NaN-ignoring reductions, median, cumsum, cumprod, sort, and the
integer/bool-valued argsort, argmax, argmin, any, all and count_nonzero.

Gradients are checked against centered finite differences over every axis spelling
NumPy has (None, int, negative, tuple) with and without keepdims; prod and cumprod
also where the input holds zeros (both are multilinear, so central differences are
exact there too)."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad, jit, value_and_grad
from compiler.errors import ShapeError, UnsupportedError
from helpers import (
    PROPERTY, assert_float32_backward, assert_vjp, assert_weighted_vjp, compiled_grad, seeds, shapes,
)
from runtime.check import numerical_grad

@st.composite
def shape_and_axis(draw, tuples: bool = True):
    """A shape and an axis argument in one of NumPy's spellings."""
    shape = draw(shapes(min_dims=0, max_dims=3))
    ndim = len(shape)
    if ndim == 0:
        return shape, None
    one = st.integers(-ndim, ndim - 1)
    many = st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes])
    )
    return shape, draw(st.one_of(st.none(), one, many) if tuples else st.one_of(st.none(), one))


def distinct(rng, shape, low=-2.0, high=2.0):
    """Values with no ties, in random order (max, median and sort are smooth there)."""
    return rng.permutation(np.linspace(low, high, math.prod(shape))).reshape(shape)


def nonzero_distinct(rng, shape):
    return distinct(rng, shape, 0.5, 1.5) * rng.choice([-1.0, 1.0], size=shape)


def reduced_count(shape, axis):
    if axis is None:
        return math.prod(shape)
    items = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(shape[a] for a in items)


REDUCTIONS = {
    "prod": np.prod, "nansum": np.nansum, "nanmean": np.nanmean, "nanmax": np.nanmax, "nanmin": np.nanmin,
    "median": np.median, "var": np.var, "ptp": np.ptp, "amax": np.amax, "amin": np.amin,
}


@pytest.mark.parametrize("name", REDUCTIONS)
@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_vjp(name, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = nonzero_distinct(rng, shape) if name == "prod" else distinct(rng, shape)
    reduce = REDUCTIONS[name]
    assert_weighted_vjp(lambda x: reduce(x, axis=axis, keepdims=keepdims), x, rng=rng)
    np.testing.assert_allclose(jit(lambda x: reduce(x, axis=axis, keepdims=keepdims))(x),
                               reduce(x, axis=axis, keepdims=keepdims), rtol=1e-12)


@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), ddof=st.integers(0, 2), seed=seeds)
def test_var_and_std_with_ddof(shape_axis, keepdims, ddof, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape)
    ddof = min(ddof, reduced_count(shape, axis) - 1)  # a positive divisor
    assert_weighted_vjp(lambda x: x.var(axis=axis, ddof=ddof, keepdims=keepdims), x, rng=rng)
    if reduced_count(shape, axis) > 1:  # std of one element is 0: not differentiable
        assert_weighted_vjp(lambda x: np.std(x, axis=axis, ddof=ddof, keepdims=keepdims), x, rng=rng)
    np.testing.assert_allclose(jit(lambda x: np.std(x, axis=axis, ddof=ddof))(x), np.std(x, axis=axis, ddof=ddof),
                               rtol=1e-12, atol=1e-15)


def test_var_correction_and_given_mean():
    x = np.random.default_rng(0).normal(size=(3, 4))
    m = x.mean(axis=1, keepdims=True)
    assert jit(lambda x: np.var(x, axis=1, correction=1))(x) == pytest.approx(np.var(x, axis=1, correction=1))
    assert jit(lambda x, m: np.std(x, axis=1, mean=m))(x, m) == pytest.approx(np.std(x, axis=1, mean=m))


@PROPERTY
@given(shape_axis=shape_and_axis(tuples=False), seed=seeds)
def test_cumsum_and_cumprod_vjp(shape_axis, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = nonzero_distinct(rng, shape)
    for scan in (np.cumsum, np.cumprod):
        assert_weighted_vjp(lambda x: scan(x, axis=axis), x, rng=rng)
        np.testing.assert_allclose(jit(lambda x: scan(x, axis=axis))(x), scan(x, axis=axis), rtol=1e-12)
    assert_weighted_vjp(lambda x: x.cumsum(axis) * x.cumprod(axis), x, rng=rng)


ZEROS = np.array([[2.0, 0.0, 3.0, -0.5], [0.0, 1.5, 0.0, 4.0], [1.0, -2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_prod_and_cumprod_are_exact_where_the_input_has_zeros(axis):
    rng = np.random.default_rng(1)
    assert_weighted_vjp(lambda x: np.prod(x, axis=axis), ZEROS, rng=rng)
    assert_weighted_vjp(lambda x: np.cumprod(x, axis=axis), ZEROS, rng=rng)
    assert np.all(np.isfinite(grad(lambda x: np.sum(np.cumprod(x, axis=axis)))(ZEROS)))


def test_prod_gradient_at_a_zero_is_the_product_of_the_others():
    np.testing.assert_array_equal(grad(np.prod)(np.array([2.0, 0.0, 3.0])), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(grad(np.prod)(np.array([2.0, 0.0, 0.0])), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(grad(lambda x: x.prod())(np.array([2.0, 5.0])), [5.0, 2.0])
    np.testing.assert_array_equal(grad(lambda x: np.cumprod(x)[-1])(np.array([2.0, 0.0, 3.0])), [0.0, 6.0, 0.0])


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
@pytest.mark.parametrize("name", ["nansum", "nanmean", "nanmax", "nanmin"])
def test_nan_entries_get_zero_gradient(name, axis):
    x = np.array([[1.0, np.nan, -2.0], [np.nan, 0.5, 3.0], [2.5, -1.0, np.nan]])
    f = lambda x: REDUCTIONS[name](x, axis=axis)  # noqa: E731
    g = compiled_grad(weighted_sum(f, x), x)
    assert np.all(g[np.isnan(x)] == 0) and np.all(np.isfinite(g))
    assert_vjp(weighted_sum(f, x), x)
    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12)


def weighted_sum(f, x):
    w = np.random.default_rng(2).normal(size=np.shape(f(x)))
    return lambda x: np.sum(f(x) * w)


def test_median_shares_the_gradient_among_middle_values_and_ties():
    np.testing.assert_array_equal(grad(np.median)(np.array([3.0, 1.0, 2.0])), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(grad(np.median)(np.array([4.0, 1.0, 3.0, 2.0])), [0.0, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(grad(np.median)(np.array([2.0, 1.0, 2.0, 5.0, 2.0])), [1 / 3, 0.0, 1 / 3, 0.0, 1 / 3])
    np.testing.assert_array_equal(grad(np.median)(np.array([1.0, 2.0, 2.0, 3.0])), [0.0, 0.5, 0.5, 0.0])
    g = compiled_grad(lambda x: np.sum(np.median(x, axis=(0, 2)) * np.array([1.0, 10.0])), np.arange(12.0).reshape(2, 2, 3))
    expected = np.zeros((2, 2, 3))
    expected[0, 0, 2], expected[1, 0, 0] = 0.5, 0.5
    expected[0, 1, 2], expected[1, 1, 0] = 5.0, 5.0
    np.testing.assert_array_equal(g, expected)


@PROPERTY
@given(shape_axis=shape_and_axis(tuples=False), seed=seeds)
def test_sort_vjp_scatters_back_through_the_permutation(shape_axis, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape)
    spelled = -1 if axis is None and shape else axis
    assert_weighted_vjp(lambda x: np.sort(x, axis=axis), x, rng=rng)
    assert_weighted_vjp(lambda x: np.sort(x, axis=spelled, kind="stable") ** 2, x, rng=rng)
    np.testing.assert_array_equal(jit(lambda x: np.sort(x, axis=axis))(x), np.sort(x, axis=axis))


@PROPERTY
@given(shape_axis=shape_and_axis(tuples=False), keepdims=st.booleans(), seed=seeds)
def test_integer_valued_results_match_numpy_and_cut_the_gradient(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape)
    x[x < -1.5] = 0.0
    functions = {
        "argsort": lambda x: np.argsort(x, axis=axis), "argmax": lambda x: x.argmax(axis=axis, keepdims=keepdims),
        "argmin": lambda x: np.argmin(x, axis=axis, keepdims=keepdims), "any": lambda x: x.any(axis=axis, keepdims=keepdims),
        "all": lambda x: np.all(x, axis=axis, keepdims=keepdims),
        "count_nonzero": lambda x: np.count_nonzero(x, axis=axis, keepdims=keepdims),
    }
    for name, f in functions.items():
        got, want = jit(f)(x), f(x)
        assert np.shape(got) == np.shape(want) and np.result_type(got) == np.result_type(want), name
        np.testing.assert_array_equal(got, want, err_msg=name)
        g = compiled_grad(lambda x: np.sum(x) * np.sum(f(x)), x)  # f's result is a constant factor
        np.testing.assert_array_equal(g, np.full(x.shape, np.sum(f(x)), dtype=float), err_msg=name)


@pytest.mark.parametrize("axis", [(0, 2), (-1, 0)])
def test_any_all_count_nonzero_over_axis_tuples(axis):
    x = np.array([[[0.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [3.0, 0.0]], [[1.0, 1.0], [0.0, 4.0]]])
    for f in (np.any, np.all, np.count_nonzero):
        np.testing.assert_array_equal(jit(lambda x: f(x, axis=axis, keepdims=True))(x), f(x, axis=axis, keepdims=True))


@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_average_with_weights_shaped_like_the_array(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    a, w = rng.normal(size=shape), rng.uniform(0.5, 2.0, size=shape)
    f = lambda a, w: np.average(a, axis=axis, weights=w, keepdims=keepdims)  # noqa: E731
    assert_weighted_vjp(f, a, w, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda a: np.average(a, axis=axis, keepdims=keepdims), a, rng=rng)
    np.testing.assert_allclose(jit(f)(a, w), f(a, w), rtol=1e-12)


@pytest.mark.parametrize("axis", [1, -3, (2, 0), (-1, 1)])
def test_average_with_weights_along_the_named_axes(axis):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 3, 4))
    w = rng.uniform(0.5, 2.0, size=tuple(a.shape[i] for i in (axis if isinstance(axis, tuple) else (axis,))))
    f = lambda a, w: np.average(a, axis=axis, weights=w)  # noqa: E731
    assert_weighted_vjp(f, a, w, rng=rng, argnums=(0, 1))
    np.testing.assert_allclose(jit(f)(a, w), f(a, w), rtol=1e-12)
    avg, scale = jit(lambda a, w: np.average(a, axis=axis, weights=w, returned=True))(a, w)
    want_avg, want_scale = np.average(a, axis=axis, weights=w, returned=True)
    np.testing.assert_allclose(avg, want_avg, rtol=1e-12)
    np.testing.assert_allclose(scale, want_scale, rtol=1e-12)


def test_average_of_a_list_with_traced_weights():
    w = np.array([1.0, 2.0, 5.0])
    f = lambda w: np.average([1.0, 3.0, 4.0], weights=w)  # noqa: E731
    assert jit(f)(w) == pytest.approx(f(w))
    assert_vjp(f, w)


def hvp_matches_finite_differences(f, x, v):
    hvp = grad(lambda x: np.sum(grad(f)(x) * v))
    expected = numerical_grad(lambda x: np.sum(grad(f)(x) * v), x, eps=1e-6)
    np.testing.assert_allclose(hvp(x), expected, rtol=1e-5, atol=1e-7)


SMOOTH = {
    "prod": lambda x: np.sum(np.prod(x, axis=1) ** 2),
    "var": lambda x: np.sum(np.var(x, axis=0, ddof=1) * np.arange(1.0, 5.0)) + np.var(x) ** 2,
    "std": lambda x: np.sum(np.std(x, axis=-1) ** 3),
    "cumsum": lambda x: np.sum(np.cumsum(x, axis=1) ** 3),
    "cumprod": lambda x: np.sum(np.cumprod(x, axis=0) * np.cumprod(x, axis=1)),
    "sort": lambda x: np.sum(np.sort(x, axis=0) ** 3 * np.arange(1.0, 4.0)[:, None]),
    "median": lambda x: np.sum(np.median(x, axis=0) * np.sin(x)),
    "average": lambda x: np.sum(np.average(x, axis=1, weights=np.exp(x[0])) ** 2),
    "nanmean": lambda x: np.nanmean(x * x, axis=1).sum() * np.nansum(x ** 3),
}


@pytest.mark.parametrize("name", SMOOTH)
def test_second_order(name):
    rng = np.random.default_rng(4)
    x = nonzero_distinct(rng, (3, 4))
    hvp_matches_finite_differences(SMOOTH[name], x, rng.normal(size=x.shape))


def test_float32_stays_float32():
    x = nonzero_distinct(np.random.default_rng(5), (3, 4))

    def f(x):
        return (np.prod(x, axis=0).sum() + np.var(x, axis=1, ddof=1).sum() + x.std() + np.ptp(x, axis=0).sum()
                + np.cumsum(x, axis=1).sum() + np.sum(np.cumprod(x, axis=0) ** 2) + np.sum(np.sort(x) * x)
                + np.median(x, axis=1).sum() + np.nansum(x) + np.nanmean(x, axis=0).sum() + np.nanmax(x)
                + np.average(x, axis=0, weights=np.arange(1.0, 4.0, dtype=np.float32)).sum())

    assert_float32_backward(f, x)
    for single in (np.prod, np.var, np.median, np.nanmin, lambda x: np.sum(np.cumprod(x))):
        assert_float32_backward(single, x)


def test_generated_source_reads_as_numpy():
    x = nonzero_distinct(np.random.default_rng(6), (3, 4))
    source = value_and_grad(lambda x: np.sum(np.sort(x, axis=0) * np.median(x, axis=1, keepdims=True))).source(x)
    assert "np.sort(x, axis=0)" in source and "np.median(x, axis=1, keepdims=True)" in source
    assert "np.put_along_axis(" in source and "np.argsort(x, axis=0)" in source
    source = value_and_grad(lambda x: np.prod(x, axis=1).sum() + np.cumsum(x, axis=-1).sum()).source(x)
    assert "x.prod(axis=1)" in source and "np.cumsum(" in source
    source = value_and_grad(lambda x: np.var(x, axis=0).sum() + np.nanmax(x)).source(x)
    assert "x.mean(axis=0, keepdims=True)" in source and "np.nanmax(x)" in source


def test_refusals_name_the_problem():
    x = np.ones((2, 3))
    with pytest.raises(UnsupportedError, match="one axis"):
        jit(lambda x: np.argmax(x, axis=(0, 1)))(x)
    with pytest.raises(UnsupportedError, match="order"):
        jit(lambda x: np.sort(x, order="f"))(x)
    with pytest.raises(ShapeError, match="weights"):
        jit(lambda x: np.average(x, axis=1, weights=np.ones(2)))(x)
    with pytest.raises(ShapeError, match="empty"):
        jit(lambda x: np.argmax(x, axis=1))(np.ones((2, 0)))

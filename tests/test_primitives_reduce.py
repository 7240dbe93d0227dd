"""Reductions: sum, mean, max, min over every axis spelling (None, int, negative,
tuple) with and without keepdims, as functions and as array methods; ties in max
and min share the gradient evenly; float32 stays float32."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad
from helpers import PROPERTY, assert_float32_backward, assert_weighted_vjp, compiled_grad, seeds, shapes

REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "amax": np.amax}


@st.composite
def shape_and_axis(draw):
    """A shape and an axis argument in one of NumPy's spellings."""
    shape = draw(shapes(min_dims=0, max_dims=4))
    ndim = len(shape)
    if ndim == 0:
        return shape, draw(st.sampled_from([None, ()]))
    one = st.integers(-ndim, ndim - 1)
    many = st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).flatmap(
        lambda axes: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axes])
    )
    return shape, draw(st.one_of(st.none(), one, many))


@pytest.mark.parametrize("name", REDUCTIONS)
@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_vjp(name, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    reduce = REDUCTIONS[name]
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.linspace(-2.0, 2.0, int(np.prod(shape)))).reshape(shape)  # distinct: no ties
    assert_weighted_vjp(lambda x: reduce(x, axis=axis, keepdims=keepdims), x, rng=rng)


@pytest.mark.parametrize("method", ["sum", "mean", "max", "min"])
@PROPERTY
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_methods(method, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.linspace(-2.0, 2.0, int(np.prod(shape)))).reshape(shape)
    assert_weighted_vjp(lambda x: getattr(x, method)(axis=axis, keepdims=keepdims), x, rng=rng)


@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_reductions_of_expressions_broadcast_back(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    b = rng.normal(size=shape[-1:])

    def f(x, b):
        h = np.tanh(x + b)
        centered = h - np.mean(h, axis=-1, keepdims=True)
        return np.sum(centered ** 2) + np.max(h, axis=0).sum() * 0.5 + x.mean()

    assert_weighted_vjp(f, x, b, rng=rng, argnums=(0, 1))


def test_max_with_repeated_maxima_shares_the_gradient_equally():
    x = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(grad(np.max)(x), [0.0, 1 / 3, 1 / 3, 0.0, 1 / 3])
    np.testing.assert_array_equal(grad(np.min)(np.array([2.0, 1.0, 1.0])), [0.0, 0.5, 0.5])


def test_max_ties_per_row_with_axis_and_keepdims():
    x = np.array([[1.0, 5.0, 5.0, 5.0], [2.0, 2.0, 0.0, -1.0], [7.0, 0.0, 0.0, 0.0]])
    w = np.array([3.0, 4.0, 5.0])
    expected = np.array([[0.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(compiled_grad(lambda x: np.sum(np.max(x, axis=1) * w), x), expected, rtol=1e-15)
    np.testing.assert_allclose(compiled_grad(lambda x: np.sum(x.max(axis=-1, keepdims=True) * w[:, None]), x), expected, rtol=1e-15)
    expected_min = np.array([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0], [0.0, 5 / 3, 5 / 3, 5 / 3]])
    np.testing.assert_allclose(compiled_grad(lambda x: np.sum(np.min(x, axis=1) * w), x), expected_min, rtol=1e-15)


def test_max_over_several_axes_shares_ties_across_them():
    x = np.zeros((2, 2, 3))
    x[0, 1, 2] = x[1, 0, 0] = 4.0
    x[1, 1, 1] = 1.0
    g = compiled_grad(lambda x: np.sum(np.max(x, axis=(0, -2)) * np.array([1.0, 2.0, 3.0])), x)
    expected = np.zeros((2, 2, 3))
    expected[1, 0, 0] = 1.0
    expected[1, 1, 1] = 2.0
    expected[0, 1, 2] = 3.0
    np.testing.assert_array_equal(g, expected)
    g = compiled_grad(lambda x: np.max(x * 2.0), x)
    np.testing.assert_array_equal(g[0, 1, 2], 1.0)
    assert g.sum() == 2.0


@pytest.mark.parametrize("axis", [0, -1])
def test_zero_dimensional_reduction_over_axis_zero_or_minus_one(axis):
    x = np.array(1.5)
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x, axis=axis) * 3.0, x), 3.0)
    np.testing.assert_array_equal(compiled_grad(lambda x: np.max(x, axis=axis, keepdims=True) * 2.0, x), 2.0)


def test_float32_reductions_backward_stays_float32():
    x = np.random.default_rng(1).normal(size=(2, 3, 4))

    def f(x):
        return np.max(x) + np.mean(x, axis=0).sum() + x.min(axis=(0, 1)).sum() + np.sum(x, axis=-1, keepdims=True).mean()

    assert_float32_backward(f, x)
    assert_float32_backward(np.mean, x)
    assert_float32_backward(np.max, x)

"""Elementwise primitives: each VJP against centered finite differences on
hypothesis-drawn shapes (broadcasting over size-1 and missing dimensions included),
ties in maximum/minimum, gradients cut by non-differentiable ops, and float32."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad, value_and_grad
from compiler.validation import validate
from helpers import (
    PROPERTY, assert_float32_backward, assert_vjp, assert_weighted_vjp, broadcastable_pair,
    compiled_grad, nonzero, normal, positive, seeds, shapes,
)

# name -> (function, domain of its argument)
UNARY = {
    "negative": (np.negative, normal),
    "unary minus": (lambda x: -x, normal),
    "exp": (np.exp, normal),
    "log": (np.log, positive),
    "log1p": (np.log1p, positive),
    "expm1": (np.expm1, normal),
    "sin": (np.sin, normal),
    "cos": (np.cos, normal),
    "tanh": (np.tanh, normal),
    "sqrt": (np.sqrt, positive),
    "square": (np.square, normal),
    "abs": (np.abs, nonzero),
    "absolute": (np.absolute, nonzero),
    "builtin abs": (abs, nonzero),
}

# name -> (function, domain of the first argument, domain of the second)
BINARY = {
    "+": (lambda x, y: x + y, normal, normal),
    "-": (lambda x, y: x - y, normal, normal),
    "*": (lambda x, y: x * y, normal, normal),
    "/": (lambda x, y: x / y, normal, nonzero),
    "**": (lambda x, y: x ** y, positive, normal),
    "np.add": (np.add, normal, normal),
    "np.subtract": (np.subtract, normal, normal),
    "np.multiply": (np.multiply, normal, normal),
    "np.divide": (np.divide, normal, nonzero),
    "np.power": (np.power, positive, normal),
    "np.maximum": (np.maximum, normal, normal),
    "np.minimum": (np.minimum, normal, normal),
    "np.logaddexp": (np.logaddexp, normal, normal),
}


@pytest.mark.parametrize("name", UNARY)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_unary_vjp(name, shape, seed):
    fn, domain = UNARY[name]
    rng = np.random.default_rng(seed)
    assert_weighted_vjp(fn, domain(rng, shape), rng=rng)


@pytest.mark.parametrize("name", BINARY)
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_vjp_with_broadcasting(name, pair, seed):
    fn, dom_x, dom_y = BINARY[name]
    rng = np.random.default_rng(seed)
    x, y = dom_x(rng, pair[0]), dom_y(rng, pair[1])
    assert_weighted_vjp(fn, x, y, rng=rng, argnums=(0, 1))


SCALAR_MIXES = {
    "x + 2": lambda x: x + 2,
    "2.5 - x": lambda x: 2.5 - x,
    "x * -1.5": lambda x: x * -1.5,
    "3 / x": lambda x: 3 / x,
    "x / 4.0": lambda x: x / 4.0,
    "x ** 3": lambda x: x ** 3,
    "x ** 0.5": lambda x: x ** 0.5,
    "x ** -2": lambda x: x ** -2,
    "2.0 ** x": lambda x: 2.0 ** x,
    "np.power(x, 2)": lambda x: np.power(x, 2),
    "np.maximum(x, 0.1)": lambda x: np.maximum(x, 0.1),
    "np.minimum(1.2, x)": lambda x: np.minimum(1.2, x),
    "np.logaddexp(x, 0.5)": lambda x: np.logaddexp(x, 0.5),
    "poly": lambda x: 1.0 + 2.0 * x - 0.5 * x * x + x ** 3 / 6,
}


@pytest.mark.parametrize("name", SCALAR_MIXES)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_python_scalars_mixed_with_traced_values(name, shape, seed):
    rng = np.random.default_rng(seed)
    assert_weighted_vjp(SCALAR_MIXES[name], positive(rng, shape), rng=rng)


@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_numpy_constant_arrays_mixed_with_traced_values(pair, seed):
    rng = np.random.default_rng(seed)
    x, c = positive(rng, pair[0]), positive(rng, pair[1])
    assert_weighted_vjp(lambda x: (c * x - c) / (x + c) + np.float64(0.5) * np.maximum(x, c) ** c, x, rng=rng)


@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_where_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x, y = normal(rng, shape), normal(rng, shape[1:])
    mask = rng.random(shape) > 0.5
    assert_weighted_vjp(lambda x, y: np.where(x > 0, x * y, np.exp(y)), x, y, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda x, y: np.where(mask, x, y), x, y, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda x: np.where(mask, 2.0, x), x, rng=rng)


@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_clip_vjp_away_from_the_bounds(shape, seed):
    rng = np.random.default_rng(seed)
    x = nonzero(rng, shape)  # |x| >= 0.3: never at the bounds below
    lo, hi = np.full(shape[-1], -0.2), 0.25
    assert_weighted_vjp(lambda x: np.clip(x, -0.2, 0.25), x, rng=rng)
    assert_weighted_vjp(lambda x: np.clip(x, lo, hi), x, rng=rng)
    assert_weighted_vjp(lambda x: x.clip(None, 0.2) + np.clip(x, a_min=-0.1, a_max=None), x, rng=rng)


@PROPERTY
@given(shape=shapes(), n=st.integers(1, 4), seed=seeds)
def test_python_loop_over_a_static_range(shape, n, seed):
    def f(x, y, n):
        s = x
        for k in range(n):
            s = s * y + np.sin(s) / (k + 1)
        return np.sum(s)

    rng = np.random.default_rng(seed)
    assert_vjp(f, normal(rng, shape), normal(rng, shape), n, argnums=(0, 1))


# ties: d max(x, y) splits evenly where x == y


def test_maximum_of_a_value_with_itself_splits_the_gradient():
    x = np.array([-1.0, 0.0, 2.5])
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.maximum(x, x)))(x), np.ones(3))
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.minimum(x, x)))(x), np.ones(3))
    gx, gy = grad(lambda x, y: np.sum(np.maximum(x, y)), argnums=(0, 1))(x, x.copy())
    np.testing.assert_array_equal(gx, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(gy, [0.5, 0.5, 0.5])


def test_maximum_and_minimum_ties_with_constants_share_evenly():
    x = np.array([-1.0, 0.0, 2.0, 3.0])
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.maximum(x, 0.0)))(x), [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.minimum(x, 2.0)))(x), [1.0, 1.0, 0.5, 0.0])
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.clip(x, 0.0, 2.0)))(x), [0.0, 0.5, 0.5, 0.0])


def test_maximum_tie_gradient_broadcasts_back():
    x = np.array([[1.0, 2.0], [2.0, 0.0]])
    y = np.array([2.0, 2.0])
    gx, gy = grad(lambda x, y: np.sum(np.maximum(x, y) * np.array([[1.0, 10.0], [100.0, 1000.0]])), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [[0.0, 5.0], [50.0, 0.0]])
    np.testing.assert_array_equal(gy, [1.0 + 50.0, 5.0 + 1000.0])


# non-differentiable operations cut the gradient


def test_comparisons_sign_and_logical_ops_carry_no_gradient():
    x = np.array([-1.5, 0.5, 2.0])

    def f(x):
        mask = (x > 0) & ~(x >= 1.0) | (x == 2.0)
        return np.sum(np.sign(x) * 3.0 + mask + np.isfinite(x) + (x < 1) + np.logical_not(x != 0.5))

    g = compiled_grad(f, x)
    np.testing.assert_array_equal(g, np.zeros(3))
    assert g.dtype == np.float64


def test_a_mask_multiplies_the_gradient_but_is_not_differentiated():
    x = np.array([-1.5, 0.5, 2.0])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x * (x > 0)), x), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x * np.sign(x)), x), [-1.0, 1.0, 1.0])


def test_integer_arithmetic_cuts_the_gradient():
    x = np.array([0.7, 1.2, 2.6])
    i = np.array([1, 2, 3])
    g = compiled_grad(lambda x, i: np.sum(x * (i * 2 + 1 - i)), x, i)
    np.testing.assert_array_equal(g, [2.0, 3.0, 4.0])
    g = compiled_grad(lambda x: np.sum(x.astype(np.int64).astype(np.float64) * 5.0), x)
    np.testing.assert_array_equal(g, np.zeros(3))


# float32 in, float32 out, float32 work


def test_float32_elementwise_backward_stays_float32():
    rng = np.random.default_rng(0)
    x, y = positive(rng, (3, 4)), nonzero(rng, (4,))

    def f(x, y):
        z = np.exp(-x) * 2.0 + x ** 2 / 3 - np.maximum(x, 0.7) + np.where(x > 1, x, 0.5) + np.tanh(y) / y
        return np.sum(np.sqrt(z * z + 1) + np.log(x) + np.abs(y) + np.logaddexp(x, y) + np.clip(x, 0.6, 1.5))

    assert_float32_backward(f, x, y, argnums=(0, 1))


@pytest.mark.parametrize("fn", [np.exp, np.sin, np.tanh, np.square, lambda x: 2.0 ** x, lambda x: np.maximum(x, 0.5)])
def test_float32_scalar_output_gradient_is_float32(fn):
    x = np.array(0.75, dtype=np.float32)
    g = compiled_grad(fn, x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, grad(fn)(np.float64(0.75)), rtol=1e-6)


def test_python_scalar_results_follow_numpy_promotion():
    # np.where and np.exp of Python scalars return NumPy values, which NEP 50 does not
    # treat as weak: the float64 they hold upcasts a float32 array, as in plain NumPy.
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    for f in (lambda x: np.sum(np.where(x > 0, 1.0, 0.0) * x),
              lambda x: np.sum(x * np.where(x > 0, 2.0, 3.0) + 1.5 * x),
              lambda x: np.sum(np.exp(np.where(x > 0, 0.5, 0.25)) * x)):
        value, g = value_and_grad(f)(x)
        assert np.result_type(value) == np.result_type(f(x))
        np.testing.assert_allclose(value, f(x), rtol=1e-6)
        assert g.dtype == np.float32
        validate(value_and_grad(f).ir(x))

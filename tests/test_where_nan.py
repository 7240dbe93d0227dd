"""NaN-safe np.where gradients: no "double where" needed (JAX issue 1052).

`np.where(x > 0, np.sqrt(x), 0.0)` discards the sqrt branch where x <= 0, so the
gradient there is exactly the other branch's (0 here). Naively the where's VJP sends
the sqrt branch a zero cotangent, sqrt's VJP multiplies it by 1 / sqrt(0) = inf and
0 * inf = NaN poisons the gradient; the reverse transform knows which lanes a where
discards and zeroes them. Checked against centered finite differences away from the
branch point and against the one-sided value exactly at it, in float64 and float32.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given

from compiler import compile_step, grad, value_and_grad
from helpers import PROPERTY, RTOL, ATOL, assert_vjp, assert_weighted_vjp, compiled_grad, float_nodes, nonzero, seeds, shapes
from runtime import optim

# The forward pass evaluates the discarded branch too (sqrt of a negative is NaN
# there, as in NumPy); only the gradient must come out clean.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:divide by zero encountered:RuntimeWarning",
)


def _sinc_derivative(x):
    with np.errstate(all="ignore"):
        return np.where(x != 0, (x * np.cos(x) - np.sin(x)) / x**2, 0.0)


def _sqrt_derivative(x):
    with np.errstate(all="ignore"):
        return np.where(x > 0, 0.5 / np.sqrt(x), 0.0)


def _log_derivative(x):
    with np.errstate(all="ignore"):
        return np.where(x > 0, 1.0 / x, 0.0)


# name -> (elementwise function, its derivative with 0 in the discarded lanes)
SAFE = {
    "sqrt": (lambda x: np.where(x > 0, np.sqrt(x), 0.0), _sqrt_derivative),
    "sinc": (lambda x: np.where(x != 0, np.sin(x) / x, 1.0), _sinc_derivative),
    "log": (lambda x: np.where(x > 0, np.log(x), 0.0), _log_derivative),
}

# zeros (the branch point), discarded negatives and kept positives in one array
MIXED = np.array([-2.0, -0.5, 0.0, 0.0, 0.5, 3.0])


def summed(fn):
    return lambda x: np.sum(fn(x))


@pytest.mark.parametrize("name", SAFE)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_gradient_matches_finite_differences_away_from_the_branch_point(name, shape, seed):
    rng = np.random.default_rng(seed)
    x = nonzero(rng, shape)  # |x| >= 0.3, both sides of the branch point
    assert_weighted_vjp(SAFE[name][0], x, rng=rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", SAFE)
def test_gradient_at_the_branch_point_is_finite_and_one_sided(name, dtype):
    fn, derivative = SAFE[name]
    x = MIXED.astype(dtype)
    g = compiled_grad(summed(fn), x)
    assert g.dtype == dtype
    assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(g, derivative(MIXED), rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert g[2] == 0 and g[3] == 0  # exactly at the branch point: the constant branch


@pytest.mark.parametrize("name", SAFE)
def test_float32_gradient_is_computed_in_float32(name):
    x = MIXED.astype(np.float32)
    assert float_nodes(summed(SAFE[name][0]), x) == {np.dtype(np.float32)}, grad(summed(SAFE[name][0])).source(x)


@pytest.mark.parametrize("name", SAFE)
def test_scalar_argument_at_the_branch_point(name):
    fn, derivative = SAFE[name]
    for x in (0.0, -1.0, 2.0):
        g = grad(fn)(x)
        assert np.isfinite(g) and g == pytest.approx(float(derivative(np.array(x))), rel=1e-12)


def test_the_masking_where_is_in_the_generated_source():
    """The gradient of the sqrt branch is zeroed where the condition discards it, once."""
    src = grad(summed(SAFE["sqrt"][0])).source(MIXED)
    assert "np.where(t1, 0.5 * g_sqrt / np.sqrt(x), 0.0)" in src, src
    src = grad(summed(SAFE["sinc"][0])).source(MIXED)
    assert "g_x = np.where(t1, g_sin * np.cos(x) - g_divide * (np.sin(x) / x) / x, 0.0)" in src, src


def test_condition_broadcast_over_the_operands():
    """A (3, 1) condition chooses whole rows of (3, 4) operands."""

    def f(s, x):
        return np.sum(np.where(s > 0, x * np.log(s), 0.0) + np.where(s > 0, np.sqrt(s) * x**2, 0.0))

    rng = np.random.default_rng(0)
    s, x = np.array([[-1.0], [0.0], [2.0]]), rng.normal(size=(3, 4))
    g_s, g_x = compiled_grad(f, s, x, argnums=(0, 1))
    assert np.all(np.isfinite(g_s)) and np.all(np.isfinite(g_x))
    np.testing.assert_array_equal(g_s[:2], 0.0)
    np.testing.assert_array_equal(g_x[:2], 0.0)
    np.testing.assert_allclose(g_s[2], [np.sum(x[2]) / 2 + np.sum(x[2] ** 2) * 0.5 / np.sqrt(2)], rtol=1e-12)
    np.testing.assert_allclose(g_x[2], np.log(2) + 2 * np.sqrt(2) * x[2], rtol=1e-12)
    assert_vjp(f, np.array([[-1.0], [0.5], [2.0]]), x, argnums=(0, 1))


def test_condition_larger_than_the_operand():
    """The condition varies along the axis an operand is broadcast over: discarded
    lanes (log(0) = -inf, 0 * -inf = NaN) are zeroed before they are summed into
    the operand's gradient."""

    def f(s, x):
        return np.sum(np.where(x > 0, np.sqrt(s) * np.log(x), 0.0))

    s = np.array([[1.0], [0.25], [4.0]])
    x = np.array([[1.0, 0.0, 3.0, -0.5], [0.0, -2.0, 0.0, -0.5], [2.0, 0.0, 0.5, 1.0]])
    g_s, g_x = compiled_grad(f, s, x, argnums=(0, 1))
    assert np.all(np.isfinite(g_s)) and np.all(np.isfinite(g_x))
    with np.errstate(all="ignore"):
        logs = np.where(x > 0, np.log(x), 0.0)
        np.testing.assert_allclose(g_s, 0.5 / np.sqrt(s) * np.sum(logs, axis=1, keepdims=True), rtol=1e-12)
        np.testing.assert_allclose(g_x, np.where(x > 0, np.sqrt(s) / x, 0.0), rtol=1e-12)
    rng = np.random.default_rng(1)
    assert_vjp(f, np.array([[0.5], [1.0], [4.0]]), nonzero(rng, (3, 4)), argnums=(0, 1))


@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_row_condition_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = nonzero(rng, shape)
    s = nonzero(rng, shape[:-1] + (1,))
    f = lambda s, x: np.where(s > 0, np.sqrt(s) * np.log(np.abs(x)), np.exp(x) * s)  # noqa: E731
    assert_weighted_vjp(f, s, x, rng=rng, argnums=(0, 1))


def _nested(x):
    return np.where(x < 4, np.where(x > 0, np.sqrt(x) * np.sqrt(4 - x), 0.0), 0.0)


def test_nested_wheres_accumulate_their_conditions():
    """sqrt(x) is NaN below 0 (the inner where discards it), sqrt(4 - x) above 4 (the
    outer where discards it): the product's gradient needs both conditions."""
    x = np.array([-1.0, 0.0, 4.0, 5.0, 1.0, 2.5])
    g = compiled_grad(summed(_nested), x)
    expected = np.zeros_like(x)
    inside = x[4:]
    expected[4:] = (4 - 2 * inside) / (2 * np.sqrt(inside * (4 - inside)))
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert np.all(np.isfinite(g))


@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_nested_wheres_match_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice([-2.0, 1.0, 3.0, 6.0], size=shape) + rng.uniform(-0.5, 0.5, size=shape)
    assert_weighted_vjp(_nested, x, rng=rng)


def test_the_double_where_workaround_still_works():
    f = lambda x: np.sum(np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0))  # noqa: E731
    g = compiled_grad(f, MIXED)
    np.testing.assert_allclose(g, _sqrt_derivative(MIXED), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_where_inside_reductions(dtype):
    x = np.stack([MIXED, MIXED[::-1]]).astype(dtype)

    def f(x):
        kept = np.where(x > 0, np.log(x), 0.0)
        return np.sum(np.mean(kept, axis=0) ** 2) + np.max(np.where(x != 0, np.sin(x) / x, 1.0))

    g = compiled_grad(f, x)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    with np.errstate(all="ignore"):
        kept = np.where(x > 0, np.log(x.astype(np.float64)), 0.0)
    expected = np.where(x > 0, np.mean(kept, axis=0) / np.where(x > 0, x, 1.0), 0.0)
    # the max of sinc is 1 at the two zeros (the branch value), where its gradient is discarded
    np.testing.assert_allclose(g, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_scalar_condition_reaches_through_a_reduction():
    f = lambda x, n: np.where(n > 0, np.sum(np.sqrt(x)) / n, 0.0)  # noqa: E731
    x = np.array([0.0, 1.0, 4.0])
    g_x, g_n = compiled_grad(f, x, 0.0, argnums=(0, 1))
    np.testing.assert_array_equal(g_x, 0.0)
    assert g_n == 0
    assert_vjp(f, np.array([0.5, 1.0, 4.0]), 2.0, argnums=(0, 1))


def test_a_branch_used_elsewhere_keeps_its_other_gradient():
    """Only the where's own contribution is masked: `s` also feeds the sum directly,
    so its gradient where the where discards it is exp(x), not 0."""

    def f(x):
        s = np.exp(x)
        return np.sum(np.where(x > 0, s, 0.0) + s)

    x = np.array([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(compiled_grad(f, x), np.where(x > 0, 2.0, 1.0) * np.exp(x), rtol=1e-12)

    def h(x):
        s = np.sqrt(x)
        return np.sum(np.where(x > 0, s, 0.0) + s)

    g = grad(h)(np.array([-1.0, 0.0, 1.0]))
    assert np.isnan(g[0]) and g[1] == np.inf and g[2] == pytest.approx(1.0)  # sqrt's own derivative
    rng = np.random.default_rng(0)
    assert_vjp(h, rng.uniform(0.3, 2.0, size=5))


def test_both_branches_of_one_where_from_the_same_value():
    def f(x):
        s = np.log(x)
        return np.sum(np.where(x > 1, s * 2.0, s))

    x = np.array([0.5, 1.5, 3.0])
    np.testing.assert_allclose(compiled_grad(f, x), np.where(x > 1, 2.0, 1.0) / x, rtol=1e-12)


@pytest.mark.parametrize("name", SAFE)
def test_second_order_on_scalars(name):
    """At the branch point (and for sqrt and log below it) the program is the
    constant branch, so its second derivative is 0; elsewhere, finite differences
    of the first derivative."""
    fn, derivative = SAFE[name]
    second = grad(grad(fn))
    discarded = (0.0,) if name == "sinc" else (0.0, -1.0)
    for x in discarded:
        assert second(x) == 0.0
    for x in (0.7, 2.0) + ((-1.0,) if name == "sinc" else ()):
        expected = (derivative(np.array(x + 1e-5)) - derivative(np.array(x - 1e-5))) / 2e-5
        assert second(x) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("name", SAFE)
def test_value_and_grad(name):
    fn, derivative = SAFE[name]
    value, g = value_and_grad(summed(fn))(MIXED)
    with np.errstate(all="ignore"):
        assert value == pytest.approx(np.sum(fn(MIXED)))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, derivative(MIXED), rtol=1e-12)


def test_compile_step_gets_finite_gradients():
    def loss(params):
        w = params["w"]
        return np.sum(np.where(w > 0, np.sqrt(w), 0.0) + np.where(w != 0, np.sin(w) / w, 1.0))

    params = {"w": MIXED.copy()}
    step = compile_step(loss, optim.SGD(lr=0.1))
    step(params)
    expected = MIXED - 0.1 * (_sqrt_derivative(MIXED) + _sinc_derivative(MIXED))
    assert np.all(np.isfinite(params["w"]))
    np.testing.assert_allclose(params["w"], expected, rtol=RTOL, atol=ATOL)


def test_discarded_lanes_do_not_warn():
    """The gradient computes `0.5 * g / np.sqrt(x)` in lanes the mask then discards;
    the generated function runs under np.errstate, so no RuntimeWarning reaches the user."""
    x = np.array([-1.0, 0.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(grad(summed(SAFE["sqrt"][0]))(x), [0.0, 0.0, 0.25])

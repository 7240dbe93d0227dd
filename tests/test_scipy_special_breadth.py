"""scipy.special's Bessel, gamma, inverse error and beta families on traced values.

Every rule is checked against centered finite differences in float64 on
hypothesis-drawn shapes, broadcasting included, in reverse mode and in forward mode
(`assert_weighted_vjp` checks both), at second order too (`check_grads`), with
float32 kept where SciPy keeps it. Operands with no closed-form derivative (a Bessel
order, the incomplete gamma and beta functions' shape parameters) differentiate fine
while held constant and are refused at the user's line once differentiated.
"""
import os

import numpy as np
import pytest
from hypothesis import given

scipy = pytest.importorskip("scipy", reason="SciPy is not installed: its functions are optional")
import scipy.special  # noqa: E402

from compiler import UnsupportedError, grad, jacfwd, jit, jvp, stop_gradient  # noqa: E402
from compiler.primitives.scipy_special import SCIPY_UFUNCS  # noqa: E402
from runtime.check import check_grads  # noqa: E402
from tests.helpers import (  # noqa: E402
    PROPERTY, assert_float32_backward, assert_vjp, assert_weighted_vjp, broadcastable_pair, nonzero, normal,
    positive, seeds, shapes,
)

sc = scipy.special
HERE = os.path.basename(__file__)


def uniform(low: float, high: float):
    return lambda rng, shape: rng.uniform(low, high, size=shape)


def orders(rng, shape):
    """Integer orders 0..3, as floats (jn, yn: SciPy keeps float32 only for float orders)."""
    return rng.integers(0, 4, size=shape).astype(np.float64)


away_from_zero = uniform(0.5, 3.0)

# name -> domain of x, where the function is smooth and well scaled
UNARY = {
    "j0": normal, "j1": normal, "y0": away_from_zero, "y1": away_from_zero,
    "i0": normal, "i1": normal, "i0e": nonzero, "i1e": nonzero,  # (|x| in the scaling: a kink at 0)
    "k0": away_from_zero, "k1": away_from_zero, "k0e": away_from_zero, "k1e": away_from_zero,
    "gamma": uniform(-2.8, 3.0), "rgamma": uniform(-2.8, 3.0), "loggamma": away_from_zero,
    "erfinv": uniform(-0.9, 0.9), "erfcinv": uniform(0.1, 1.9),
}
# name -> (domain of the constant first operands, their count, domain of the last, differentiated one)
WITH_CONSTANTS = {
    "jv": (uniform(0.0, 3.0), 1, away_from_zero), "jn": (orders, 1, normal),
    "yv": (uniform(0.0, 3.0), 1, away_from_zero), "yn": (orders, 1, away_from_zero),
    "iv": (uniform(0.0, 3.0), 1, away_from_zero), "ive": (uniform(0.0, 3.0), 1, away_from_zero),
    "kv": (uniform(0.0, 3.0), 1, away_from_zero), "kve": (uniform(0.0, 3.0), 1, away_from_zero),
    "gammainc": (away_from_zero, 1, uniform(0.2, 3.0)), "gammaincc": (away_from_zero, 1, uniform(0.2, 3.0)),
    "gammaincinv": (away_from_zero, 1, uniform(0.1, 0.9)), "gammainccinv": (away_from_zero, 1, uniform(0.1, 0.9)),
    "betainc": (away_from_zero, 2, uniform(0.1, 0.9)), "betaincinv": (away_from_zero, 2, uniform(0.1, 0.9)),
}
# differentiated in both operands
BINARY = {"beta": away_from_zero, "betaln": away_from_zero}


def _gamma_domain(x):
    """x moved off the poles of gamma (0, -1, -2): at least 0.2 from an integer when negative."""
    return np.where((x < 0.2) & (np.abs(x - np.round(x)) < 0.2), x + 0.5, x)


def _unary_args(name, rng, shape):
    x = UNARY[name](rng, shape)
    return _gamma_domain(x) if name in ("gamma", "rgamma") else x


def _constants(name, rng, shape):
    draw, count, _ = WITH_CONSTANTS[name]
    return tuple(draw(rng, shape) for _ in range(count))


def test_every_ufunc_of_these_families_is_registered_and_tested_here():
    ufuncs = {f.__name__ for f in vars(sc).values() if isinstance(f, np.ufunc)}
    names = {getattr(sc, name).__name__ for name in [*UNARY, *WITH_CONSTANTS, *BINARY, "gammasgn"]}
    assert names <= set(SCIPY_UFUNCS) <= ufuncs
    assert sc.jn is sc.jv and "jn" not in SCIPY_UFUNCS  # registered by __name__


@pytest.mark.parametrize("name", sorted(UNARY))
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_unary(name, shape, seed):
    rng = np.random.default_rng(seed)
    fn = getattr(sc, name)
    x = _unary_args(name, rng, shape)
    np.testing.assert_allclose(jit(fn)(x), fn(x), rtol=1e-13, atol=1e-15)
    assert_weighted_vjp(fn, x, rng=rng)


@pytest.mark.parametrize("name", sorted(WITH_CONSTANTS))
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_constant_operands_broadcast_against_x(name, pair, seed):
    """The first operands (order, shape parameters) are constants of one shape, x of
    another that broadcasts with it."""
    rng = np.random.default_rng(seed)
    fn = getattr(sc, name)
    constants = _constants(name, rng, pair[0])
    x = WITH_CONSTANTS[name][2](rng, pair[1])
    np.testing.assert_allclose(jit(lambda x: fn(*constants, x))(x), fn(*constants, x), rtol=1e-13, atol=1e-15)
    assert_weighted_vjp(lambda x: fn(*constants, x), x, rng=rng)


@pytest.mark.parametrize("name", sorted(BINARY))
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_beta_in_both_operands(name, pair, seed):
    rng = np.random.default_rng(seed)
    fn = getattr(sc, name)
    a, b = (BINARY[name](rng, shape) for shape in pair)
    np.testing.assert_allclose(jit(fn)(a, b), fn(a, b), rtol=1e-13, atol=1e-15)
    assert_weighted_vjp(fn, a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_gammasgn_is_piecewise_constant(shape, seed):
    """x * gammasgn(x) has derivative gammasgn(x): gammasgn contributes 0."""
    rng = np.random.default_rng(seed)
    x = _gamma_domain(uniform(-2.8, 3.0)(rng, shape))
    assert_vjp(lambda x: np.sum(x * sc.gammasgn(x)), x)
    np.testing.assert_array_equal(grad(lambda x: np.sum(x * sc.gammasgn(x)))(x), sc.gammasgn(x))


def test_rgamma_derivative_at_the_poles_of_gamma():
    """rgamma'(-n) = (-1)^n n!, where -psi(x) rgamma(x) would be 0 * inf."""
    x = np.array([0.0, -1.0, -2.0, -3.0])
    np.testing.assert_allclose(grad(lambda x: np.sum(sc.rgamma(x)))(x), [1.0, -1.0, 2.0, -6.0], rtol=1e-12)
    np.testing.assert_allclose(jvp(sc.rgamma, (x,), (np.ones(4),))[1], [1.0, -1.0, 2.0, -6.0], rtol=1e-12)
    assert_vjp(lambda x: np.sum(sc.rgamma(x) * np.arange(1.0, 5.0)), x)


def test_order_passed_as_an_argument_but_not_differentiated():
    """A traced float order outside argnums (or behind stop_gradient) is a constant."""
    v, x = np.array([0.5, 1.5, 2.5]), np.array([[0.7], [1.9]])
    f = lambda v, x: np.sum(sc.jv(v, x) * sc.kve(v, x))  # noqa: E731
    assert_vjp(lambda x: f(v, x), x)
    np.testing.assert_allclose(grad(f, argnums=1)(v, x), grad(lambda x: f(v, x))(x), rtol=1e-14)
    g_v, g_x = grad(lambda v, x: f(stop_gradient(v), x), argnums=(0, 1))(v, x)
    np.testing.assert_array_equal(g_v, 0.0)
    np.testing.assert_allclose(g_x, grad(lambda x: f(v, x))(x), rtol=1e-14)
    # a Python float order is traced as a weak scalar
    np.testing.assert_allclose(grad(lambda x, v: np.sum(sc.iv(v, x)))(x, 1.5),
                               grad(lambda x: np.sum(sc.iv(1.5, x)))(x), rtol=1e-14)


# --- second order ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(UNARY) + sorted(WITH_CONSTANTS))
def test_second_order_in_both_modes(name):
    rng = np.random.default_rng(0)
    if name in UNARY:
        fn = getattr(sc, name)
        x = _unary_args(name, rng, (4,))
    else:
        constants = _constants(name, rng, (3, 1))
        x = WITH_CONSTANTS[name][2](rng, (4,))
        fn = lambda x: getattr(sc, name)(*constants, x)  # noqa: E731
    check_grads(fn, (x,), order=2, rtol=1e-5, atol=1e-6)


def test_second_order_of_beta():
    rng = np.random.default_rng(0)
    for fn in (sc.beta, sc.betaln):
        check_grads(fn, (away_from_zero(rng, (3, 1)), away_from_zero(rng, (4,))), order=2, rtol=1e-5, atol=1e-6)


# --- float32 ---------------------------------------------------------------------------

def _float32_case(name, rng):
    """A scalar function of float32-able x whose SciPy value is float32 for float32 inputs."""
    if name in UNARY:
        return (lambda x: np.sum(getattr(sc, name)(x))), _unary_args(name, rng, (3, 4))
    if name in BINARY:
        b = BINARY[name](rng, (4,)).astype(np.float32)
        return (lambda a: np.sum(getattr(sc, name)(a, b))), BINARY[name](rng, (3, 4))
    constants = tuple(c.astype(np.float32) for c in _constants(name, rng, (3, 1)))
    return (lambda x: np.sum(getattr(sc, name)(*constants, x))), WITH_CONSTANTS[name][2](rng, (3, 4))


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(WITH_CONSTANTS) + sorted(BINARY))
def test_float32_stays_float32(name):
    f, x = _float32_case(name, np.random.default_rng(0))
    assert f(x.astype(np.float32)).dtype == np.float32  # SciPy keeps float32
    assert jit(f)(x.astype(np.float32)).dtype == np.float32
    assert_float32_backward(f, x)


def test_dtype_follows_scipy():
    """yn with an integer order array is float64 in SciPy, for float32 x too; a
    Python-float shape parameter makes gammainc float64."""
    x = np.full(3, 0.5, np.float32)
    n = np.array([0, 1, 2])
    for f in (lambda x: sc.yn(n, x), lambda x: sc.gammainc(2.0, x), lambda x: sc.jv(1.5, x)):
        assert jit(f)(x).dtype == f(x).dtype
        assert grad(lambda x: np.sum(f(x)))(x).dtype == np.float32


# --- refusals --------------------------------------------------------------------------

def _refused_call(name):
    """`f(*args)` of scipy.special.<name> with every operand an argument, the line
    computing it, and the arguments."""
    def f(*args):
        return np.sum(getattr(sc, name)(*args))  # the line refusals name

    rng = np.random.default_rng(0)
    args = (*_constants(name, rng, (3,)), WITH_CONSTANTS[name][2](rng, (3,)))
    return f, f.__code__.co_firstlineno + 1, args


REFUSED = [(name, k) for name in sorted(WITH_CONSTANTS) for k in range(WITH_CONSTANTS[name][1])]
OPERAND = {"jv": "v", "jn": "v", "yv": "v", "iv": "v", "ive": "v", "kv": "v", "kve": "v", "yn": "n"}


@pytest.mark.parametrize("name, k", REFUSED)
def test_operand_without_a_derivative_is_refused_at_the_users_line(name, k):
    f, line, args = _refused_call(name)
    operand = OPERAND.get(name, "ab"[k])
    message = rf"{HERE}:{line}: scipy\.special\.{getattr(sc, name).__name__}\(.*\) is not differentiable in {operand} "
    with pytest.raises(UnsupportedError, match=message):
        grad(f, argnums=k)(*args)
    with pytest.raises(UnsupportedError, match=message):  # with the differentiable operand too
        grad(f, argnums=(k, len(args) - 1))(*args)
    # forward mode: operand k and x are the arguments (jvp seeds every float argument)
    g = lambda a, x: f(*args[:k], a, *args[k + 1:-1], x)  # noqa: E731
    ones = np.ones_like(args[k])
    for t_x in (np.zeros_like(args[-1]), np.ones_like(args[-1])):
        with pytest.raises(UnsupportedError, match=message):
            jvp(g, (args[k], args[-1]), (ones, t_x))
    with pytest.raises(UnsupportedError, match=message):
        jacfwd(g)(args[k], args[-1])

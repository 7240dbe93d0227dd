"""NumPy's elementwise functions on traced values: values and dtypes equal NumPy's,
first and second derivatives equal centered finite differences (broadcasting
included), float32 stays float32, the generated code spells each call as a person
would, and the conventions at the points where a function has no derivative (or
one only as a limit) are the documented ones. Also: refusals of unsupported
functions suggest related supported ones, or none."""
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given

from compiler import UnsupportedError, grad, jit
from helpers import (
    PROPERTY, assert_float32_backward, assert_vjp, assert_weighted_vjp, broadcastable_pair,
    compiled_grad, nonzero, normal, positive, seeds, shapes,
)


def uniform(low: float, high: float):
    return lambda rng, shape, dtype=np.float64: rng.uniform(low, high, size=shape).astype(dtype)


small = uniform(-1.2, 1.2)  # tan stays away from its poles
inside = uniform(-0.9, 0.9)  # arcsin, arccos, arctanh
above_one = uniform(1.2, 3.0)  # arccosh

# name -> (function, domain of its argument, how the generated code spells the call on `x`)
UNARY = {
    "tan": (np.tan, small, "np.tan(x)"),
    "arcsin": (np.arcsin, inside, "np.arcsin(x)"),
    "arccos": (np.arccos, inside, "np.arccos(x)"),
    "arctan": (np.arctan, normal, "np.arctan(x)"),
    "sinh": (np.sinh, normal, "np.sinh(x)"),
    "cosh": (np.cosh, normal, "np.cosh(x)"),
    "arcsinh": (np.arcsinh, normal, "np.arcsinh(x)"),
    "arccosh": (np.arccosh, above_one, "np.arccosh(x)"),
    "arctanh": (np.arctanh, inside, "np.arctanh(x)"),
    "log2": (np.log2, positive, "np.log2(x)"),
    "log10": (np.log10, positive, "np.log10(x)"),
    "exp2": (np.exp2, normal, "np.exp2(x)"),
    "cbrt": (np.cbrt, nonzero, "np.cbrt(x)"),
    "reciprocal": (np.reciprocal, nonzero, "np.reciprocal(x)"),
    "fabs": (np.fabs, nonzero, "np.fabs(x)"),
    "abs": (np.abs, nonzero, "np.abs(x)"),
    "builtin abs": (abs, nonzero, "np.abs(x)"),
    "positive": (np.positive, normal, None),
    "unary plus": (lambda x: +x, normal, None),
    "deg2rad": (np.deg2rad, normal, "np.deg2rad(x)"),
    "rad2deg": (np.rad2deg, normal, "np.rad2deg(x)"),
    "degrees": (np.degrees, normal, "np.degrees(x)"),
    "radians": (np.radians, normal, "np.radians(x)"),
    "sinc": (np.sinc, normal, "np.sinc(x)"),
    "nan_to_num": (np.nan_to_num, normal, "np.nan_to_num(x)"),
}

# name -> (function, domain of x, domain of y, spelling of the call on `x, y`)
BINARY = {
    "arctan2": (np.arctan2, normal, nonzero, "np.arctan2(x, y)"),
    "hypot": (np.hypot, nonzero, nonzero, "np.hypot(x, y)"),
    "copysign": (np.copysign, nonzero, nonzero, "np.copysign(x, y)"),
    "fmax": (np.fmax, normal, normal, "np.fmax(x, y)"),
    "fmin": (np.fmin, normal, normal, "np.fmin(x, y)"),
    "logaddexp2": (np.logaddexp2, normal, normal, "np.logaddexp2(x, y)"),
    "power": (np.power, positive, normal, "x ** y"),
    "float_power": (np.float_power, positive, normal, "np.float_power(x, y)"),
    "mod": (np.mod, normal, nonzero, "x % y"),
    "remainder": (np.remainder, normal, nonzero, "x % y"),
    "%": (lambda x, y: x % y, normal, nonzero, "x % y"),
    "fmod": (np.fmod, normal, nonzero, "np.fmod(x, y)"),
}

# piecewise-constant functions: gradient 0; name -> (function, spelling of the call on `x`)
STEPS = {
    "floor": (np.floor, "np.floor(x)"),
    "ceil": (np.ceil, "np.ceil(x)"),
    "round": (np.round, "np.round(x)"),
    "around": (np.around, "np.round(x)"),
    "round(x, 2)": (lambda x: np.round(x, 2), "np.round(x, 2)"),
    "x.round(1)": (lambda x: x.round(1), "np.round(x, 1)"),
    "rint": (np.rint, "np.rint(x)"),
    "trunc": (np.trunc, "np.trunc(x)"),
    "fix": (np.fix, "np.trunc(x)"),
    "sign": (np.sign, "np.sign(x)"),
    "signbit": (np.signbit, "np.signbit(x)"),
    "heaviside": (lambda x: np.heaviside(x, 0.5), "np.heaviside(x, 0.5)"),
    "floor_divide": (lambda x: np.floor_divide(x, 0.3), "x // 0.3"),
    "//": (lambda x: x // 0.3, "x // 0.3"),
    "1 // x": (lambda x: 1.0 // x, "1.0 // x"),
}


def second_order(f, n_args: int, rng: np.random.Generator, shape):
    """x -> a weighted sum of the gradient of `f`'s weighted sum: its own gradient
    holds second derivatives (the compiled gradient traced and differentiated)."""
    w, v = rng.normal(size=shape), rng.normal(size=(n_args,) + tuple(shape))
    argnums = tuple(range(n_args))

    def h(*args):
        grads = grad(lambda *a: np.sum(f(*a) * w), argnums=argnums)(*args)
        return sum(np.sum(g * v[k]) for k, g in enumerate(grads))

    return h


# --- first and second derivatives against finite differences ------------------------

@pytest.mark.parametrize("name", UNARY)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_unary_vjp(name, shape, seed):
    fn, domain, _ = UNARY[name]
    rng = np.random.default_rng(seed)
    assert_weighted_vjp(fn, domain(rng, shape), rng=rng)


@pytest.mark.parametrize("name", BINARY)
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_vjp_with_broadcasting(name, pair, seed):
    fn, dom_x, dom_y, _ = BINARY[name]
    rng = np.random.default_rng(seed)
    assert_weighted_vjp(fn, dom_x(rng, pair[0]), dom_y(rng, pair[1]), rng=rng, argnums=(0, 1))


@pytest.mark.parametrize("name", UNARY)
def test_unary_second_derivative(name):
    fn, domain, _ = UNARY[name]
    rng = np.random.default_rng(1)
    x = domain(rng, (2, 3))
    assert_vjp(second_order(fn, 1, rng, x.shape), x)


@pytest.mark.parametrize("name", BINARY)
def test_binary_second_derivatives(name):
    fn, dom_x, dom_y, _ = BINARY[name]
    rng = np.random.default_rng(2)
    x, y = dom_x(rng, (2, 3)), dom_y(rng, (2, 3))
    assert_vjp(second_order(fn, 2, rng, x.shape), x, y, argnums=(0, 1))


@pytest.mark.parametrize("name", STEPS)
def test_piecewise_constant_functions_have_zero_gradient(name):
    fn, _ = STEPS[name]
    x = np.array([[-1.7, -0.4, 0.2], [0.9, 1.45, 2.6]])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(fn(x) * 3.0), x), np.zeros_like(x))
    # the product rule with a zero factor: d/dx sum(x f(x)) = f(x)
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x * fn(x)), x), fn(x))
    x0 = np.float64(0.7)
    np.testing.assert_array_equal(grad(grad(lambda x: x * x * fn(x)))(x0), 2.0 * fn(x0))


# --- values, dtypes, float32 and spelling -----------------------------------------------

def _all_cases():
    rng = np.random.default_rng(3)
    for name, (fn, domain, spelling) in UNARY.items():
        yield name, fn, (domain(rng, (2, 3)),), spelling
    for name, (fn, dom_x, dom_y, spelling) in BINARY.items():
        yield name, fn, (dom_x(rng, (2, 3)), dom_y(rng, (3,))), spelling
    for name, (fn, spelling) in STEPS.items():
        yield name, fn, (rng.uniform(-3.0, 3.0, size=(2, 3)),), spelling


CASES = {name: (fn, args, spelling) for name, fn, args, spelling in _all_cases()}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_dtypes_are_numpys(name, dtype):
    fn, args, _ = CASES[name]
    args = tuple(a.astype(dtype) for a in args)
    got, expected = jit(fn)(*args), fn(*args)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("name", [n for n in CASES if n != "float_power"])
def test_float32_backward_stays_float32(name):
    fn, args, _ = CASES[name]
    argnums = tuple(range(len(args)))
    assert_float32_backward(lambda *a: np.sum(fn(*a) * a[0]), *args, argnums=argnums)


def test_float_power_computes_in_float64_and_returns_float32_gradients():
    x, y = np.float32([0.5, 1.5]), np.float32([2.0, -0.5])
    value = jit(np.float_power)(x, y)
    assert value.dtype == np.float64  # as NumPy's: float_power's whole point
    gx, gy = compiled_grad(lambda x, y: np.sum(np.float_power(x, y)), x, y, argnums=(0, 1))
    np.testing.assert_allclose(gx, y * np.float_power(x, y - 1), rtol=1e-6)
    np.testing.assert_allclose(gy, np.float_power(x, y) * np.log(x), rtol=1e-6)
    for exponent in (0, 1, 2.5):
        g = compiled_grad(lambda x: np.sum(np.float_power(x, exponent)), x)
        np.testing.assert_allclose(g, exponent * np.float_power(x, exponent - 1), rtol=1e-6)


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][2] is not None])
def test_generated_code_spells_the_numpy_call(name):
    fn, args, spelling = CASES[name]
    names = ("x", "y")[:len(args)]
    body = f"def f({', '.join(names)}):\n    return fn({', '.join(names)})\n"
    scope = {"fn": fn, "np": np}
    exec(body, scope)
    source = jit(scope["f"]).source(*args)
    assert re.search(rf"= {re.escape(spelling)}(  #|$)", source, re.M), source


def test_positive_passes_the_value_through():
    x = np.array([1.0, -2.0])
    source = jit(lambda x: np.positive(x) * 2.0).source(x)
    assert "x * 2.0" in source and "positive" not in source


def test_integer_inputs_keep_numpys_integer_results():
    i = np.array([-7, -2, 3, 8])
    for fn in (np.floor, np.ceil, np.trunc, np.fix, np.round, np.sign, lambda i: i % 3, lambda i: i // 3,
               lambda i: np.fmod(i, 3), lambda i: np.round(i, -1), np.nan_to_num, np.fabs, np.abs):
        got, expected = jit(fn)(i), fn(i)
        assert got.dtype == expected.dtype, fn
        np.testing.assert_array_equal(got, expected)


def test_round_spells_decimals_and_refuses_out():
    x = np.array([1.234, -5.678])
    assert "np.round(x, -1)" in jit(lambda x: np.around(x, -1)).source(x)
    np.testing.assert_array_equal(jit(lambda x: np.round(x, -1))(x), np.round(x, -1))
    with pytest.raises(UnsupportedError, match="out="):
        jit(lambda x: np.round(x, out=x))(x)


def test_nan_to_num_spells_its_replacements():
    x = np.array([np.nan, np.inf, -np.inf, 1.5])
    f = lambda x: np.nan_to_num(x, nan=-1.0, posinf=7.0)  # noqa: E731
    assert "np.nan_to_num(x, nan=-1.0, posinf=7.0)" in jit(f).source(x)
    np.testing.assert_array_equal(jit(f)(x), f(x))
    g = lambda x: np.nan_to_num(x, copy=False, neginf=-2)  # noqa: E731
    np.testing.assert_array_equal(jit(g)(x), np.nan_to_num(x.copy(), neginf=-2))


# --- x ** 0 ---------------------------------------------------------------------------

def _no_warnings(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


@pytest.mark.parametrize("power", [lambda x: np.power(x, 0.0), lambda x: x ** 0, lambda x: np.float_power(x, 0),
                                   lambda x: x ** np.float64(0.0)], ids=["np.power", "**", "float_power", "np.float64"])
def test_power_zero_has_zero_gradient_everywhere(power):
    for x in (np.float64(0.0), np.float64(-2.0), np.float64(3.0)):
        assert _no_warnings(grad(power), x) == 0.0
        assert _no_warnings(grad(grad(power)), x) == 0.0
    x = np.array([0.0, -1.5, 2.0])
    np.testing.assert_array_equal(_no_warnings(grad(lambda x: np.sum(power(x))), x), np.zeros(3))


def test_power_one_and_two_at_zero():
    assert _no_warnings(grad(lambda x: x ** 1), np.float64(0.0)) == 1.0
    assert _no_warnings(grad(grad(lambda x: x ** 1)), np.float64(0.0)) == 0.0
    assert _no_warnings(grad(grad(lambda x: x ** 2)), np.float64(0.0)) == 2.0
    assert "np.full" in grad(lambda x: np.sum(x ** 1)).source(np.zeros(3))  # the seed itself, no x ** 0


@pytest.mark.parametrize("exponents", [np.arange(3), np.array([0.0, 1.0, 2.0])], ids=["int", "float"])
def test_exponent_arrays_with_zeros(exponents):
    x = np.zeros(3)
    f = lambda x: np.sum(x ** exponents)  # noqa: E731
    np.testing.assert_array_equal(_no_warnings(grad(f), x), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(_no_warnings(grad(lambda x: np.sum(grad(f)(x))), x), [0.0, 0.0, 2.0])


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_traced_exponent_with_zeros(dtype):
    x, n = np.array([0.0, 0.0, 2.0]), np.array([0, 1, 3], dtype=dtype)
    g = _no_warnings(grad(lambda x, n: np.sum(x ** n)), x, n)
    np.testing.assert_array_equal(g, [0.0, 1.0, 12.0])
    first = grad(lambda x, n: np.sum(x ** n))
    g = _no_warnings(grad(lambda x, n: np.sum(first(x, n))), x, n)
    np.testing.assert_array_equal(g, [0.0, 0.0, 12.0])


# --- conventions where a derivative exists only as a limit, or not at all ----------------

def test_mod_gradient_is_one_for_x_and_minus_floor_for_y():
    x, y = np.array([7.5, -7.5, 7.5, 0.5]), np.array([2.0, 2.0, -2.0, 3.0])
    gx, gy = compiled_grad(lambda x, y: np.sum(np.mod(x, y)), x, y, argnums=(0, 1))
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_array_equal(gy, -np.floor(x / y))


def test_fmod_gradient_is_one_for_x_and_minus_trunc_for_y():
    x, y = np.array([7.5, -7.5, 7.5, 0.5]), np.array([2.0, 2.0, -2.0, 3.0])
    gx, gy = compiled_grad(lambda x, y: np.sum(np.fmod(x, y)), x, y, argnums=(0, 1))
    np.testing.assert_array_equal(gx, np.ones(4))
    np.testing.assert_array_equal(gy, -np.trunc(x / y))


def test_abs_fabs_and_copysign_have_zero_gradient_at_zero():
    x = np.array([-2.0, 0.0, 3.0])
    for f in (np.abs, np.fabs, lambda x: np.copysign(x, -1.0), lambda x: np.copysign(x, 2.0)):
        g = compiled_grad(lambda x: np.sum(f(x)), x)
        np.testing.assert_array_equal(g[1], 0.0)
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(np.copysign(x, -1.0)), x), [1.0, 0.0, -1.0])


def test_hypot_gradient_at_the_origin_is_zero():
    gx, gy = _no_warnings(grad(np.hypot, argnums=(0, 1)), np.float64(0.0), np.float64(0.0))
    assert (gx, gy) == (0.0, 0.0)
    np.testing.assert_allclose(grad(np.hypot, argnums=(0, 1))(3.0, -4.0), (0.6, -0.8), rtol=1e-15)


def test_sinc_derivatives_at_zero():
    assert _no_warnings(grad(np.sinc), np.float64(0.0)) == 0.0
    np.testing.assert_allclose(_no_warnings(grad(grad(np.sinc)), np.float64(0.0)), -math.pi**2 / 3, rtol=1e-12)
    x32 = np.zeros(2, np.float32)
    g = _no_warnings(grad(lambda x: np.sum(np.sinc(x))), x32)
    assert g.dtype == np.float32 and not g.any()


def test_fmax_and_fmin_pass_the_gradient_to_the_number_beside_a_nan_and_split_ties():
    x, y = np.array([1.0, np.nan, 2.0, 3.0]), np.array([np.nan, 1.0, 2.0, 0.0])
    for f in (np.fmax, np.fmin):
        gx, gy = compiled_grad(lambda x, y: np.sum(f(x, y)), x, y, argnums=(0, 1))
        np.testing.assert_array_equal(gx[:3], [1.0, 0.0, 0.5])
        np.testing.assert_array_equal(gy[:3], [0.0, 1.0, 0.5])
    gx, gy = compiled_grad(lambda x, y: np.sum(np.fmax(x, y)), x, y, argnums=(0, 1))
    assert (gx[3], gy[3]) == (1.0, 0.0)


def test_fmax_with_a_constant_reads_no_nan_test_of_it():
    x = np.array([1.0, -1.0])
    source = grad(lambda x: np.sum(np.fmax(x, 0.5))).source(x)
    assert "isnan(0.5)" not in source


def test_nan_to_num_gradient_is_zero_where_a_value_was_replaced():
    x = np.array([np.nan, np.inf, -np.inf, 1.5])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(np.nan_to_num(x) * 2.0), x), [0.0, 0.0, 0.0, 2.0])


def test_floor_divide_and_remainder_agree_with_numpy_on_python_scalars():
    expected = (2.0 % 0.75, 2.0 // 0.75, -2.0 % 0.75)
    np.testing.assert_array_equal(jit(lambda x: (x % 0.75, x // 0.75, -x % 0.75))(2.0), expected)
    np.testing.assert_array_equal(grad(lambda x: x % 0.75 + x // 0.75)(2.0), 1.0)


def test_divmod_is_floor_divide_and_remainder():
    x, y = np.array([7.5, -7.5, 0.5]), np.array([2.0, 2.0, -3.0])

    def f(x, y):
        q, r = divmod(x, y)
        q2, r2 = np.divmod(x, y)
        return np.sum(q * 0.5 + r * r + q2 + r2)

    np.testing.assert_allclose(jit(f)(x, y), f(x, y))
    gx, gy = compiled_grad(f, x, y, argnums=(0, 1))
    r = np.remainder(x, y)
    np.testing.assert_allclose(gx, 2 * r + 1)
    np.testing.assert_allclose(gy, -(2 * r + 1) * np.floor_divide(x, y))


# --- refusals name related supported functions, or none -------------------------------

def _refusal(fn, *args) -> str:
    """The message refusing `jit(fn)(*args)`, which starts at the user's file and line."""
    with pytest.raises(UnsupportedError) as excinfo:
        jit(fn)(*args)
    message = str(excinfo.value)
    assert re.match(r"test_numpy_elementwise\.py:\d+: ", message), message
    return message


def test_refusal_suggests_the_functions_of_the_same_family():
    x = np.array([True, False])
    message = _refusal(lambda x: np.logical_xor(x, x), x)
    assert "np.logical_xor is not supported" in message
    suggested = re.search(r"Close supported ones: (.*?)\.( |$)", message).group(1).split(", ")
    assert {"np.logical_and", "np.logical_or", "np.logical_not"} <= set(suggested), message
    assert len(suggested) <= 5


def test_refusal_of_modf_suggests_the_division_family():
    x = np.array([1.5, 2.5])
    message = _refusal(lambda x: np.modf(x), x)
    assert "np.modf is not supported" in message
    assert "np.floor_divide" in message and "np.remainder" in message and "logical" not in message


def test_refusal_without_a_supported_relative_suggests_nothing():
    x = np.array([1.5, 2.5])
    for fn in (lambda x: np.frexp(x), lambda x: np.spacing(x), lambda x: np.ldexp(x, 2)):
        message = _refusal(fn, x)
        assert "is not supported" in message and "Close supported" not in message, message

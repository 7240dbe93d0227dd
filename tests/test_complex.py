"""Gradients through complex values, with a real scalar loss.

The convention is PyTorch's: for a real loss L of z = x + iy the gradient is
dL/dx + i dL/dy, so `z -= lr * g` is a descent step (JAX and autograd return its
complex conjugate). Every supported operation is checked against centered finite
differences along the real AND the imaginary direction of every input element, on
hypothesis-drawn shapes, with real and complex inputs mixed (a real input's
gradient is real, of its own dtype). Operations not verified for complex values are
refused at the user's line; a complex output has no gradient of this kind.
"""
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad, jacrev, jit, jvp, value_and_grad
from compiler.errors import GradError, UnsupportedError
from compiler.primitives import registry
from helpers import PROPERTY, broadcastable_pair, compiled_grad, normal, seeds, shapes

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-7


def cnormal(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    return np.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)


def right_half(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Complex values with real part in [0.5, 2]: away from 0 and from the branch cut
    of log, sqrt and fractional powers (the negative real axis)."""
    return np.asarray(rng.uniform(0.5, 2.0, size=shape) + 1j * rng.normal(size=shape), dtype)


def away_from_zero(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Complex values with modulus in [0.5, 2] (for abs, angle, division)."""
    return np.asarray(rng.uniform(0.5, 2.0, size=shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, size=shape)), dtype)


def numeric_grad(f, args, argnums=0, eps=EPS):
    """Centered finite differences of the real scalar `f`: for a complex argument
    dL/dx + i dL/dy per element (perturbing by eps and by 1j * eps), for a real one
    dL/dx; computed in double precision."""
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    wide = [np.array(a, np.complex128 if np.iscomplexobj(a) else np.float64) for a in args]
    out = []
    for pos in positions:
        base = wide[pos]
        directions = (1.0, 1j) if base.dtype.kind == "c" else (1.0,)
        g = np.zeros(base.shape, base.dtype)
        for index in np.ndindex(base.shape):
            for d in directions:
                moved = []
                for sign in (1, -1):
                    x = base.copy()
                    x[index] += sign * eps * d
                    value = f(*wide[:pos], x, *wide[pos + 1:])
                    assert np.isrealobj(value)
                    moved.append(float(value))
                g[index] += d * (moved[0] - moved[1]) / (2 * eps)
        out.append(g)
    return out[0] if isinstance(argnums, int) else tuple(out)


def assert_complex_grad(f, *args, argnums=0, rtol=RTOL, atol=ATOL):
    """The compiled gradient (a fresh array of each argument's shape and dtype, real
    for a real argument) equals finite differences along both directions (the
    absolute tolerance scaled by the gradient's largest element: a difference
    quotient of a large loss is good to fewer absolute digits)."""
    analytic = compiled_grad(f, *args, argnums=argnums)
    numeric = numeric_grad(f, args, argnums)
    pairs = [(analytic, numeric)] if isinstance(argnums, int) else list(zip(analytic, numeric))
    for a, n in pairs:
        scale = max(1.0, float(np.max(np.abs(n), initial=0.0)))
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol * scale)
    return analytic


def real_loss(v, weights):
    """A real loss of a complex value with an arbitrary complex cotangent per
    element (conj(weights)) plus |v|²."""
    return np.real(np.sum(v * weights)) + np.sum(np.abs(v) ** 2)


def weights_like(rng, value):
    return cnormal(rng, np.shape(value))


# --- the issue's example ---------------------------------------------------------


def test_the_issue_example_matches_finite_differences():
    f = lambda z: np.sum(np.abs(z * z))  # noqa: E731
    z = np.array([1 + 2j])
    g = grad(f)(z)
    # |z²| = x² + y²: dL/dx = 2x = 2, dL/dy = 2y = 4
    np.testing.assert_allclose(g, [2 + 4j])
    np.testing.assert_allclose(g, numeric_grad(f, (z,)), rtol=RTOL, atol=ATOL)
    assert g.dtype == np.complex128


def test_gradient_is_pytorchs_convention_not_its_conjugate():
    # L = Im(z) = y: dL/dx = 0, dL/dy = 1, so the gradient is 1j (JAX would give -1j)
    np.testing.assert_allclose(grad(lambda z: np.imag(z))(np.complex128(1 + 2j)), 1j)
    # L = Re(c * z) = Re(c) x - Im(c) y: gradient conj(c)
    c = 2 - 3j
    np.testing.assert_allclose(grad(lambda z: np.real(c * z))(np.complex128(0.5 + 1j)), np.conj(c))


# --- elementwise -----------------------------------------------------------------

BINARY = {
    "+": (lambda a, b: a + b, cnormal),
    "-": (lambda a, b: a - b, cnormal),
    "*": (lambda a, b: a * b, cnormal),
    "/": (lambda a, b: a / b, away_from_zero),
}


@pytest.mark.parametrize("name", BINARY)
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_complex_binary_operators(name, pair, seed):
    fn, domain = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = cnormal(rng, pair[0]), domain(rng, pair[1])
    w = weights_like(rng, fn(a, b))
    assert_complex_grad(lambda a, b: real_loss(fn(a, b), w), a, b, argnums=(0, 1))


@pytest.mark.parametrize("name", BINARY)
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds, real_first=st.booleans())
def test_real_and_complex_operands_mixed(name, pair, seed, real_first):
    """A real operand meeting a complex cotangent receives its real part: a real,
    float64 gradient of the operand's shape."""
    fn, domain = BINARY[name]
    rng = np.random.default_rng(seed)
    if real_first:
        a, b = normal(rng, pair[0]), domain(rng, pair[1])
    else:
        a, b = cnormal(rng, pair[0]), np.abs(normal(rng, pair[1])) + 0.5
    w = weights_like(rng, fn(a, b))
    g_a, g_b = assert_complex_grad(lambda a, b: real_loss(fn(a, b), w), a, b, argnums=(0, 1))
    real_grad = g_a if real_first else g_b
    assert real_grad.dtype == np.float64


UNARY = {
    "unary minus": (lambda z: -z, cnormal),
    "negative": (np.negative, cnormal),
    "exp": (np.exp, cnormal),
    "log": (np.log, right_half),
    "sin": (np.sin, cnormal),
    "cos": (np.cos, cnormal),
    "sqrt": (np.sqrt, right_half),
    "square": (np.square, cnormal),
    "np.conj": (np.conj, cnormal),
    "np.conjugate": (np.conjugate, cnormal),
    ".conj()": (lambda z: z.conj(), cnormal),
    ".conjugate()": (lambda z: z.conjugate(), cnormal),
    "** 2": (lambda z: z ** 2, cnormal),
    "** 3": (lambda z: z ** 3, cnormal),
    "** 0.5": (lambda z: z ** 0.5, right_half),
    "** -1.5": (lambda z: z ** -1.5, right_half),
    "** 1": (lambda z: z ** 1, cnormal),
    "** array": (lambda z: z ** (np.arange(np.size(z)).reshape(np.shape(z)) * 0.5 - 1), right_half),
    "** 0": (lambda z: z ** 0 + z, cnormal),
}


@pytest.mark.parametrize("name", UNARY)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_complex_unary_functions(name, shape, seed):
    fn, domain = UNARY[name]
    rng = np.random.default_rng(seed)
    z = domain(rng, shape)
    w = weights_like(rng, fn(z))
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


REAL_VALUED = {
    "np.abs": (np.abs, away_from_zero),
    "abs()": (abs, away_from_zero),
    "np.absolute": (np.absolute, away_from_zero),
    "np.real": (np.real, cnormal),
    "np.imag": (np.imag, cnormal),
    ".real": (lambda z: z.real, cnormal),
    ".imag": (lambda z: z.imag, cnormal),
    "np.angle": (np.angle, away_from_zero),
    "np.angle deg": (lambda z: np.angle(z, deg=True), away_from_zero),
    "abs ** 2": (lambda z: np.abs(z) ** 2, cnormal),
}


@pytest.mark.parametrize("name", REAL_VALUED)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_complex_in_real_out(name, shape, seed):
    fn, domain = REAL_VALUED[name]
    rng = np.random.default_rng(seed)
    z = domain(rng, shape)
    assert np.isrealobj(fn(z))
    w = rng.normal(size=np.shape(fn(z)))
    assert_complex_grad(lambda z: np.sum(fn(z) * w), z)


def test_abs_and_angle_have_gradient_zero_at_zero():
    z = np.array([0j, 3 + 4j])
    np.testing.assert_allclose(grad(lambda z: np.sum(np.abs(z)))(z), [0, 0.6 + 0.8j])
    np.testing.assert_allclose(grad(lambda z: np.sum(np.angle(z)))(z), [0, (-4 + 3j) / 25])


def test_power_with_a_constant_complex_exponent_of_a_real_base():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 2.0, size=(3,))
    g = assert_complex_grad(lambda x: np.real(np.sum(x ** (0.5 + 1j))), x)
    assert g.dtype == np.float64


def test_real_inputs_of_the_new_functions():
    """np.real / np.imag / np.angle / np.conj of real values: NumPy's values, and the
    gradients of a real program."""
    x = np.array([-1.5, 0.5, 2.0])
    f = lambda x: np.sum(np.real(x) * 2 + np.imag(x) + np.angle(x) + np.conj(x) + x.real * x.imag)  # noqa: E731
    np.testing.assert_allclose(jit(f)(x), f(x))
    np.testing.assert_allclose(grad(f)(x), [3.0, 3.0, 3.0])


# --- promotion from real to complex --------------------------------------------

PROMOTIONS = {
    "x * 1j": lambda x: x * 1j,
    "1j * x": lambda x: 1j * x,
    "x + 0j": lambda x: x + 0j,
    "(x + 1j) * x": lambda x: (x + 1j) * x,
    "astype complex128": lambda x: x.astype(np.complex128),
    "np.exp(1j * x)": lambda x: np.exp(1j * x),
    "x / (1 + 2j)": lambda x: x / (1 + 2j),
    "x * array": lambda x: x * np.array(1 - 2j),
}


@pytest.mark.parametrize("name", PROMOTIONS)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_real_input_promoted_to_complex_gets_a_real_gradient(name, shape, seed):
    fn = PROMOTIONS[name]
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    w = weights_like(rng, fn(x))
    g = assert_complex_grad(lambda x: real_loss(fn(x), w), x)
    assert g.dtype == np.float64 and np.shape(g) == shape


def test_complex_casts():
    rng = np.random.default_rng(2)
    z = cnormal(rng, (3,), np.complex64)
    w = cnormal(rng, (3,))
    g = compiled_grad(lambda z: real_loss(z.astype(np.complex128), w), z)
    assert g.dtype == np.complex64
    np.testing.assert_allclose(g, numeric_grad(lambda z: real_loss(z, w), (z,)), rtol=1e-5, atol=1e-5)
    u = cnormal(rng, (3,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # the cast drops Im, as NumPy warns
        assert_complex_grad(lambda u: np.sum(u.astype(np.float64) ** 3), u)


# --- np.where, reductions, products, shapes ----------------------------------------


@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_where_on_complex_values(pair, seed):
    rng = np.random.default_rng(seed)
    a, b = cnormal(rng, pair[0]), cnormal(rng, pair[1])
    x = normal(rng, pair[1])
    mask = rng.random(np.broadcast_shapes(*pair)) < 0.5
    w = weights_like(rng, mask)
    assert_complex_grad(lambda a, b: real_loss(np.where(mask, a, b), w), a, b, argnums=(0, 1))
    g = assert_complex_grad(lambda a, x: real_loss(np.where(mask, a * a, x), w), a, x, argnums=(0, 1))
    assert g[1].dtype == np.float64
    # the NaN-safe masking: log's NaN at 0 in the discarded branch never reaches the gradient
    zero = np.zeros(pair[0], complex)
    g0 = grad(lambda z: np.sum(np.abs(np.where(np.abs(z) > 0, np.log(z), 0.0)) ** 2))(zero)
    assert np.all(g0 == 0)


@pytest.mark.parametrize("fn", [
    lambda z: np.sum(z), lambda z: np.mean(z), lambda z: np.sum(z, axis=0), lambda z: np.mean(z, axis=-1, keepdims=True),
    lambda z: z.sum(axis=(0,)) * 2, lambda z: z.mean(),
], ids=["sum", "mean", "sum axis 0", "mean keepdims", ".sum", ".mean"])
@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_complex_reductions(fn, shape, seed):
    rng = np.random.default_rng(seed)
    z = cnormal(rng, shape)
    w = weights_like(rng, fn(z))
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


MATMUL_SHAPES = [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2)),
                 ((3,), (2, 3, 4)), ((2, 1, 3, 4), (3, 4, 2))]


@pytest.mark.parametrize("shapes_", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("kinds", ["cc", "rc", "cr"])
def test_complex_matmul(shapes_, kinds):
    rng = np.random.default_rng(len(shapes_[0]) + len(shapes_[1]))
    a, b = (cnormal(rng, s) if k == "c" else normal(rng, s) for k, s in zip(kinds, shapes_))
    w = weights_like(rng, a @ b)
    g_a, g_b = assert_complex_grad(lambda a, b: real_loss(a @ b, w), a, b, argnums=(0, 1))
    assert g_a.dtype == a.dtype and g_b.dtype == b.dtype
    if a.ndim <= 2 and b.ndim <= 2:
        assert_complex_grad(lambda a, b: real_loss(np.dot(a, b), w), a, b, argnums=(0, 1))
        assert_complex_grad(lambda a, b: real_loss(np.matmul(a, b), w), a, b, argnums=(0, 1))


SHAPE_FUNCTIONS = {
    "reshape": lambda z: np.reshape(z, (-1,)),
    ".reshape": lambda z: z.reshape(z.size, 1),
    "transpose": lambda z: np.transpose(z),
    ".T": lambda z: z.T,
    "getitem slice": lambda z: z[::-1],
    "getitem int array": lambda z: z[np.array([0, 0, -1])],
    "getitem int": lambda z: z[-1],
    "concatenate": lambda z: np.concatenate([z, 2 * z], axis=0),
    "stack": lambda z: np.stack([z, z * z], axis=-1),
    "broadcast_to": lambda z: np.broadcast_to(z, (2,) + z.shape),
    "expand_dims": lambda z: np.expand_dims(z, 0),
    "ravel": lambda z: z.ravel(),
    "copy": lambda z: z.copy(),
}


@pytest.mark.parametrize("name", SHAPE_FUNCTIONS)
@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_complex_shape_functions(name, shape, seed):
    fn = SHAPE_FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    z = cnormal(rng, shape)
    w = weights_like(rng, fn(z))
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


def test_concatenate_and_stack_of_real_and_complex():
    rng = np.random.default_rng(3)
    x, z = normal(rng, (2, 3)), cnormal(rng, (2, 3))
    w1, w2 = cnormal(rng, (4, 3)), cnormal(rng, (2, 2, 3))

    def f(x, z):
        return real_loss(np.concatenate([x, z]), w1) + real_loss(np.stack([z, x]), w2)

    g_x, g_z = assert_complex_grad(f, x, z, argnums=(0, 1))
    assert g_x.dtype == np.float64 and g_z.dtype == np.complex128


def test_a_composite_program():
    """A small signal-processing style loss: a complex linear layer, a phase, a
    magnitude, with real parameters and complex data."""
    rng = np.random.default_rng(4)
    W, theta, z = cnormal(rng, (3, 4)), normal(rng, (3,)), cnormal(rng, (5, 4))

    def loss(W, theta, z):
        y = z @ W.T * np.exp(1j * theta)
        return np.mean(np.abs(y - 1.0) ** 2) + np.sum(np.real(y) * np.imag(y.conj()))

    g = assert_complex_grad(loss, W, theta, z, argnums=(0, 1, 2), rtol=1e-5, atol=1e-6)
    assert [a.dtype for a in g] == [np.complex128, np.float64, np.complex128]
    value, g2 = value_and_grad(loss, argnums=(0, 1, 2))(W, theta, z)
    np.testing.assert_allclose(value, loss(W, theta, z))
    for a, b in zip(g, g2):
        np.testing.assert_allclose(a, b)


def test_jacrev_of_a_real_function_of_a_complex_input():
    z = np.array([1 + 2j, -0.5 + 1j])
    jac = jacrev(lambda z: np.abs(z) ** 2)(z)
    np.testing.assert_allclose(jac, np.diag(2 * z))


def test_reverse_over_reverse_through_complex_values():
    # f = sum |z|^4 has the gradient 4 |z|² z; h = sum |grad f|² = 16 sum |z|^6 has 96 |z|^4 z
    f = lambda z: np.sum(np.abs(z) ** 4)  # noqa: E731
    z = np.array([0.3 + 0.7j, -1.1 + 0.2j, 2.0])
    np.testing.assert_allclose(grad(f)(z), 4 * np.abs(z) ** 2 * z)
    np.testing.assert_allclose(grad(lambda z: np.sum(np.abs(grad(f)(z)) ** 2))(z), 96 * np.abs(z) ** 4 * z)


# --- single precision ---------------------------------------------------------


def test_complex64_and_float32_stay_single_precision():
    rng = np.random.default_rng(5)
    z, x = cnormal(rng, (3, 4), np.complex64), normal(rng, (4,), np.float32)
    w = cnormal(rng, (3, 4)).astype(np.complex64)

    def f(z, x):
        y = np.exp(z * 1j) * x + np.sqrt(z * z + 2) / (z - 3j) + x * (0.5 + 0.5j)
        return np.real(np.sum(y * w)) + np.mean(np.abs(y) ** 2) + np.sum(np.angle(z) * np.imag(z @ x)[:, None])

    g32 = compiled_grad(f, z, x, argnums=(0, 1))
    assert g32[0].dtype == np.complex64 and g32[1].dtype == np.float32
    graph = grad(f, argnums=(0, 1)).ir(z, x)
    wide = {n.dtype for n in graph.nodes() if n.dtype.kind in "fc" and not n.aval.weak} - {
        np.dtype(np.float32), np.dtype(np.complex64)}
    assert not wide, grad(f, argnums=(0, 1)).source(z, x)
    g64 = grad(f, argnums=(0, 1))(z.astype(np.complex128), x.astype(np.float64))
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


# --- descent ------------------------------------------------------------------


def test_a_gradient_step_lowers_the_loss():
    rng = np.random.default_rng(6)
    target, A = cnormal(rng, (4,)), cnormal(rng, (4, 4))

    def loss(z):
        return np.sum(np.abs(A @ z - target) ** 2) + np.real(np.sum(np.exp(0.1j * z)))

    z = cnormal(rng, (4,))
    step = grad(loss)
    values = [loss(z)]
    for _ in range(50):
        z = z - 0.01 * step(z)
        values.append(loss(z))
    assert all(b < a for a, b in zip(values, values[1:]))
    assert values[-1] < 0.5 * values[0]
    # the conjugate (JAX's gradient) would not descend: it moves the imaginary parts uphill
    z0 = cnormal(rng, (4,))
    f = lambda z: np.sum(np.imag(z) ** 2)  # noqa: E731
    assert f(z0 - 0.1 * grad(f)(z0)) < f(z0) < f(z0 - 0.1 * np.conj(grad(f)(z0)))


# --- refusals -------------------------------------------------------------------


def _line(marker: str) -> int:
    """The line number of this file's line containing `marker` (a comment)."""
    lines = inspect.getsource(inspect.getmodule(_line)).splitlines()
    return next(k for k, line in enumerate(lines, 1) if marker in line and "_line(" not in line)


def test_an_unverified_primitive_on_complex_values_is_refused_at_the_users_line():
    def f(z):
        y = z * 2
        return np.sum(np.abs(np.tanh(y)))  # refused: tanh

    with pytest.raises(UnsupportedError) as err:
        grad(f)(np.array([1 + 2j]))
    message = str(err.value)
    assert "np.tanh" in message and "complex" in message
    assert f"test_complex.py:{_line('# refused: tanh')}" in message
    assert "real and imaginary parts" in message


@pytest.mark.parametrize("fn", [
    lambda z: np.sum(np.abs(np.tan(z))),
    lambda z: np.sum(np.abs(np.cumsum(z))),
    lambda z: np.real(np.prod(z)),
    lambda z: np.real(np.einsum("i,i->", z, z)),
    lambda z: np.sum(np.abs(np.log1p(z))),
    lambda z: np.real(np.linalg.det(np.outer(z, z) + np.eye(2))),
], ids=["tan", "cumsum", "prod", "einsum", "log1p", "det"])
def test_other_unverified_primitives_are_refused(fn):
    with pytest.raises(UnsupportedError, match="complex"):
        grad(fn)(np.array([1 + 2j, 0.5 - 1j]))


def test_a_differentiated_exponent_of_a_complex_power_is_refused():
    def f(z, p):
        return np.sum(np.abs(z ** p))  # refused: exponent

    z, p = np.array([1 + 2j]), np.array([2.0])
    np.testing.assert_allclose(grad(f)(z, p), numeric_grad(f, (z, p)), rtol=RTOL, atol=ATOL)  # base only: fine
    with pytest.raises(UnsupportedError, match=r"np.power of complex values .* in operand 2 \(only in operand 1\)") as err:
        grad(f, argnums=1)(z, p)
    assert f"test_complex.py:{_line('# refused: exponent')}:" in str(err.value)
    with pytest.raises(UnsupportedError, match="np.power"):
        grad(lambda p: np.sum(np.abs((1 + 1j) ** p)))(p)


def test_assignment_into_a_complex_array_is_refused():
    def f(z):
        z = z * 1
        z[0] = 2.0
        return np.sum(np.abs(z))

    with pytest.raises(UnsupportedError, match="assignment"):
        grad(f)(np.array([1 + 2j, 3j]))


def test_a_complex_output_is_a_grad_error():
    with pytest.raises(GradError, match=r"complex.*real.*np\.abs\(z\) \*\* 2"):
        grad(lambda z: np.sum(z * z))(np.array([1 + 2j]))
    with pytest.raises(GradError, match="complex"):
        value_and_grad(lambda x: np.sum(x * 1j))(np.array([1.0]))
    with pytest.raises(GradError, match="complex"):
        jacrev(lambda z: z * z)(np.array([1 + 2j]))


def test_forward_mode_still_refuses_complex_values():
    with pytest.raises(UnsupportedError, match="complex"):
        jvp(lambda z: np.sum(np.abs(z * z)), (np.array([1 + 2j]),), (np.array([1 + 0j]),))
    with pytest.raises(UnsupportedError, match="complex"):
        jvp(lambda x: np.sum(np.abs(x * 1j)), (np.array([1.0]),), (np.array([1.0]),))


# --- real programs are unchanged ---------------------------------------------------


def test_real_programs_get_no_conjugation():
    rng = np.random.default_rng(7)
    W, x = normal(rng, (3, 4)), normal(rng, (4,))

    def f(W, x):
        h = np.exp(W @ x) / (1 + np.square(x[:3])) * np.sin(x[1:]) ** 1.5
        return np.sum(np.sqrt(np.abs(h) + 1) + np.log(np.cos(h) + 2) - h * h)

    source = grad(f, argnums=(0, 1)).source(W, x)
    assert "conj" not in source and "real" not in source and "imag" not in source


def test_every_listed_primitive_exists():
    names = registry.registered()
    assert set(registry.COMPLEX_VJPS) <= set(names)
    assert all(names[name].differentiable for name in registry.COMPLEX_VJPS)

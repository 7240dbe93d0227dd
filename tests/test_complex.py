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
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import grad, jacrev, jit, jvp, value_and_grad
from compiler.errors import GradError, UnsupportedError
from compiler.primitives import registry
from helpers import PROPERTY, broadcastable_pair, compiled_grad, normal, seeds, shapes

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-7
# fewer examples for the long parametrized families, so the file stays fast
FEW = settings(PROPERTY, max_examples=6)


def cnormal(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    return np.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), dtype)


def right_half(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Complex values with real part in [0.5, 2]: away from 0 and from the branch cut
    of log, sqrt and fractional powers (the negative real axis)."""
    return np.asarray(rng.uniform(0.5, 2.0, size=shape) + 1j * rng.normal(size=shape), dtype)


def away_from_zero(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Complex values with modulus in [0.5, 2] (for abs, angle, division)."""
    return np.asarray(rng.uniform(0.5, 2.0, size=shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, size=shape)), dtype)


def _away(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 1.5, size=shape)


def off_real_axis(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Imaginary parts at least 0.3 from 0: away from the branch cuts of arcsin, arccos,
    arctanh and arccosh (on the real axis) and the poles of tan."""
    return np.asarray(rng.normal(size=shape) + 1j * _away(rng, shape), dtype)


def off_imaginary_axis(rng: np.random.Generator, shape, dtype=np.complex128) -> np.ndarray:
    """Real parts at least 0.3 from 0: away from the branch cuts of arctan and arcsinh
    (on the imaginary axis) and the poles of tanh."""
    return np.asarray(_away(rng, shape) + 1j * rng.normal(size=shape), dtype)


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


def assert_single_precision_gradients(f, z, x, rtol, atol):
    """grad of f(z, x) in (complex64 z, float32 x): single-precision gradients from a
    graph without a double-precision array, agreeing with the double-precision ones
    (atol None: relative to each gradient's largest entry). Returns those."""
    g32 = compiled_grad(f, z, x, argnums=(0, 1))
    assert g32[0].dtype == np.complex64 and g32[1].dtype == np.float32
    graph = grad(f, argnums=(0, 1)).ir(z, x)
    wide = {n.dtype for n in graph.nodes() if n.dtype.kind in "fc" and not n.aval.weak} - {
        np.dtype(np.float32), np.dtype(np.complex64)}
    assert not wide, grad(f, argnums=(0, 1)).source(z, x)
    g64 = grad(f, argnums=(0, 1))(z.astype(np.complex128), x.astype(np.float64))
    for a, b in zip(g32, g64):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)) if atol is None else atol)
    return g64


def assert_weighted_complex_grad(fn, z, rng):
    """`assert_complex_grad` of `fn`'s output contracted with random complex weights."""
    w = weights_like(rng, fn(z))
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


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
    "float_power 2.5": (lambda z: np.float_power(z, 2.5), right_half),
    "float_power 3": (lambda z: np.float_power(z, 3), cnormal),
    "reciprocal": (np.reciprocal, away_from_zero),
    "exp2": (np.exp2, cnormal),
    "expm1": (np.expm1, cnormal),
    "log2": (np.log2, right_half),
    "log10": (np.log10, right_half),
    "log1p": (np.log1p, right_half),
    "tan": (np.tan, off_real_axis),
    "arcsin": (np.arcsin, off_real_axis),
    "arccos": (np.arccos, off_real_axis),
    "arctan": (np.arctan, off_imaginary_axis),
    "sinh": (np.sinh, cnormal),
    "cosh": (np.cosh, cnormal),
    "tanh": (np.tanh, off_imaginary_axis),
    "arcsinh": (np.arcsinh, off_imaginary_axis),
    "arccosh": (np.arccosh, off_real_axis),
    "arctanh": (np.arctanh, off_real_axis),
}


@pytest.mark.parametrize("name", UNARY)
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_complex_unary_functions(name, shape, seed):
    fn, domain = UNARY[name]
    rng = np.random.default_rng(seed)
    z = domain(rng, shape)
    assert_weighted_complex_grad(fn, z, rng)


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


@pytest.mark.parametrize("fn", [np.arcsin, np.arccos, np.arctanh, np.arccosh, np.arcsinh, np.arctan],
                         ids=lambda fn: fn.__name__)
def test_inverse_functions_on_both_sides_of_their_branch_points(fn):
    """The principal branches in every quadrant: arccosh's derivative is
    1 / (sqrt(z - 1) sqrt(z + 1)), which is not 1 / sqrt(z² - 1) where Re z < 0."""
    z = np.array([2 + 0.5j, -2 + 0.5j, -2 - 0.5j, 2 - 0.5j, 0.3 + 2j, -0.3 + 2j, -0.3 - 2j, 0.3 - 2j, 0.2 + 0.1j])
    w = cnormal(np.random.default_rng(8), z.shape)
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


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
    assert_weighted_complex_grad(fn, cnormal(rng, shape), rng)


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
    assert_weighted_complex_grad(fn, cnormal(rng, shape), rng)


def _repeating_indices(shape):
    """Indices into axis 0 of an array of `shape`, twice as many as it has, repeating."""
    count = 2 * int(np.prod(shape))
    return (np.arange(count).reshape((2 * shape[0],) + tuple(shape[1:])) * 7) % shape[0]


# linear maps with real coefficients (moves, copies, sums, zero padding, triangles):
# the cotangent passes through each one's ordinary transposed rule
LINEAR_FUNCTIONS = {
    "squeeze": lambda z: np.squeeze(z[None, :, None]),
    "swapaxes": lambda z: np.swapaxes(z, 0, -1),
    "moveaxis": lambda z: np.moveaxis(z, 0, -1),
    "flip": lambda z: np.flip(z),
    "flip axis": lambda z: np.flip(z, axis=-1),
    "rot90": lambda z: np.rot90(z.reshape(z.shape[0], -1)),
    "split": lambda z: np.array_split(z, 2)[0],
    "hstack": lambda z: np.hstack([z, 2 * z]),
    "diff": lambda z: np.diff(z, axis=0, append=0.5),
    "tile": lambda z: np.tile(z, (2, 1)),
    "tile short": lambda z: np.tile(z, 3),
    "repeat": lambda z: np.repeat(z, 2, axis=0),
    "repeat flat": lambda z: np.repeat(z, 3),
    "repeat counts": lambda z: np.repeat(z, [k % 3 for k in range(z.shape[-1])], axis=-1),
    "roll": lambda z: np.roll(z, 1, axis=0),
    "roll flat": lambda z: np.roll(z, -2),
    "pad constant": lambda z: np.pad(z, ((1, 2),) + ((0, 1),) * (z.ndim - 1)),
    "pad constant_values": lambda z: np.pad(z, 1, constant_values=1.5),
    "pad edge": lambda z: np.pad(z, ((1, 2),) + ((0, 1),) * (z.ndim - 1), mode="edge"),
    "pad reflect": lambda z: np.pad(z, ((2, 1),) + ((1, 0),) * (z.ndim - 1), mode="reflect"),
    "pad symmetric": lambda z: np.pad(z, ((2, 3),) + ((1, 0),) * (z.ndim - 1), mode="symmetric"),
    "pad wrap": lambda z: np.pad(z, ((3, 1),) + ((0, 2),) * (z.ndim - 1), mode="wrap"),
    "cumsum": lambda z: np.cumsum(z, axis=-1),
    "cumsum flat": lambda z: np.cumsum(z),
    "nansum": lambda z: np.nansum(z, axis=0),
    "nanmean": lambda z: np.nanmean(z, axis=-1, keepdims=True),
    "take_along_axis": lambda z: np.take_along_axis(z, _repeating_indices(z.shape), axis=0),
    "tril": lambda z: np.tril(z.reshape(z.shape[0], -1)),
    "triu k": lambda z: np.triu(z.reshape(z.shape[0], -1), 1),
    "tril of a vector": lambda z: np.tril(z.ravel(), -1),
    "diag": lambda z: np.diag(z.ravel(), 1),
    "diagonal": lambda z: np.diagonal(z.reshape(z.shape[0], -1), -1 if z.shape[0] > 1 else 0),
    "trace": lambda z: np.trace(z.reshape(z.shape[0], -1)),
}


@pytest.mark.parametrize("name", LINEAR_FUNCTIONS)
@FEW
@given(shape=shapes(min_dims=1), seed=seeds)
def test_complex_linear_functions(name, shape, seed):
    fn = LINEAR_FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    assert_weighted_complex_grad(fn, cnormal(rng, shape), rng)


def test_nansum_and_nanmean_of_complex_values_with_nans():
    """A lane whose real or imaginary part is NaN drops out: gradient 0 there."""
    z = np.array([[1 + 2j, complex(np.nan, 1.0), 0.5 - 1j], [complex(2.0, np.nan), -1j, 3.0 + 0j]])
    w = cnormal(np.random.default_rng(9), (3,))
    for fn in (np.nansum, np.nanmean):
        g = assert_complex_grad(lambda z: real_loss(fn(z, axis=0), w), z)
        assert g[0, 1] == 0 and g[1, 0] == 0 and np.all(g[[0, 0, 1, 1], [0, 2, 1, 2]] != 0)


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


# --- assignment and the scatters ---------------------------------------------------

ASSIGNMENTS = {
    "int": (1, lambda m: (m,)),
    "slice": ((slice(1, 3),), lambda m: (2, m)),
    "steps": ((slice(None, None, 2), slice(1, None)), lambda m: (2, m - 1)),
    "broadcast": ((slice(None), 0), lambda m: (1,)),
    "array": (np.array([2, 0]), lambda m: (2, m)),
    "repeated array": (np.array([1, 3, 1]), lambda m: (3, m)),
}


@pytest.mark.parametrize("name", ASSIGNMENTS)
@pytest.mark.parametrize("v_kind", ["complex", "real"])
@FEW
@given(m=st.integers(2, 4), seed=seeds)
def test_assignment_into_a_complex_array(name, v_kind, m, seed):
    """x[index] = v: x's cotangent with the overwritten positions zeroed, v's the
    cotangent at the positions it was written to (the last write, for repeats); a
    real v gets the real part, without NumPy's ComplexWarning."""
    index, v_shape = ASSIGNMENTS[name]
    rng = np.random.default_rng(seed)
    z = cnormal(rng, (4, m))
    v = cnormal(rng, v_shape(m)) if v_kind == "complex" else normal(rng, v_shape(m))
    w = cnormal(rng, (4, m))

    def f(z, v):
        y = z * 1.5
        y[index] = v
        return real_loss(y * y, w)

    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        g_z, g_v = assert_complex_grad(f, z, v, argnums=(0, 1))
    assert g_v.dtype == v.dtype


def _scatter(g, indices, shape):
    """`np.add.at` into zeros of `shape` along axis 0: the index_add primitive."""
    if isinstance(g, np.ndarray):
        out = np.zeros(shape, g.dtype)
        np.add.at(out, indices, g)
        return out
    return g.apply("index_add", indices, spec=(("array", 0),), shape=shape, dtype=g.dtype)


def _add_along(g, indices, shape):
    """The add_along_axis primitive (take_along_axis's adjoint) along axis 0."""
    if isinstance(g, np.ndarray):
        out = np.zeros(shape, g.dtype)
        np.add.at(out, (indices, np.arange(shape[1])[None, :]), g)
        return out
    return g.apply("add_along_axis", indices, axis=0, shape=shape, dtype=g.dtype)


def _unpermute(g, order):
    """The unpermute primitive (sort's adjoint): g put back along axis 0 by `order`."""
    if isinstance(g, np.ndarray):
        out = np.empty(g.shape, g.dtype)
        np.put_along_axis(out, order, g, axis=0)
        return out
    return g.apply("unpermute", order, axis=0, shape=g.shape, dtype=g.dtype)


@PROPERTY
@given(n=st.integers(1, 4), m=st.integers(1, 3), seed=seeds)
def test_the_scatter_primitives_on_complex_values(n, m, seed):
    """index_add, add_along_axis and unpermute, which the adjoints of indexing and
    sorting bind (and a second derivative differentiates)."""
    rng = np.random.default_rng(seed)
    z = cnormal(rng, (2 * n + 1, m))
    rows = rng.integers(0, n, size=2 * n + 1)
    along = rng.integers(0, n, size=(2 * n + 1, m))
    order = np.argsort(rng.random((2 * n + 1, m)), axis=0)
    w1, w2, w3 = cnormal(rng, (n, m)), cnormal(rng, (n, m)), cnormal(rng, (2 * n + 1, m))
    assert_complex_grad(lambda z: real_loss(_scatter(z * z, rows, (n, m)), w1), z)
    assert_complex_grad(lambda z: real_loss(_add_along(z * z, along, (n, m)), w2), z)
    assert_complex_grad(lambda z: real_loss(_unpermute(z * z, order), w3), z)


# --- products ----------------------------------------------------------------------

EINSUMS = ["ij,jk->ik", "ij,ij->", "i,j->ij", "bij,bjk->bik", "ii->i", "ii->", "ij->ji", "i,i->", "ij,j->i",
           "ii,i->i", "ijk,kj->i", "i,i,i->", "bi,ij,jk->bk"]


@st.composite
def einsum_cases(draw):
    spec = draw(st.sampled_from(EINSUMS))
    sizes = {c: draw(st.integers(1, 3)) for c in "bijk"}
    inputs = spec.split("->")[0].split(",")
    complex_ = draw(st.lists(st.booleans(), min_size=len(inputs), max_size=len(inputs)).filter(any))
    return spec, [tuple(sizes[c] for c in labels) for labels in inputs], complex_


def _operands(rng, shapes_, complex_):
    return [cnormal(rng, s) if c else normal(rng, s) for s, c in zip(shapes_, complex_)]


def _check_product(fn, operands, rng):
    """Every operand's gradient, real and complex operands mixed: a real operand's
    gradient is real, of its dtype."""
    w = weights_like(rng, fn(*operands))
    argnums = tuple(range(len(operands)))
    grads = assert_complex_grad(lambda *ops: real_loss(fn(*ops), w), *operands, argnums=argnums)
    assert [g.dtype for g in grads] == [x.dtype for x in operands]


@settings(PROPERTY, max_examples=40)
@given(case=einsum_cases(), seed=seeds)
def test_complex_einsum(case, seed):
    spec, shapes_, complex_ = case
    _check_product(lambda *ops: np.einsum(spec, *ops), _operands(np.random.default_rng(seed), shapes_, complex_),
                   np.random.default_rng(seed + 1))


small = st.integers(1, 3)


@st.composite
def product_cases(draw, name):
    m, k, n = draw(small), draw(small), draw(small)
    if name in ("outer", "kron"):
        shapes_ = [draw(shapes(min_dims=1, max_dims=2)), draw(shapes(min_dims=1, max_dims=2))]
    elif name == "cross":
        shapes_ = [s + (3,) for s in draw(broadcastable_pair(max_dims=2))]
    elif name.startswith("convolve"):
        shapes_ = [(draw(st.integers(1, 5)),), (draw(st.integers(1, 5)),)]
    elif name == "tensordot pairs":
        shapes_ = [(k, m), (n, k)]
    elif name == "inner":
        shapes_ = [(m, k), (n, k)]
    elif name == "dot":
        shapes_ = [(m, k), (k,)]
    elif name == "multi_dot":
        shapes_ = [(m, k), (k, n), (n, 2)]
    else:
        shapes_ = [(m, k), (k, n)]
    complex_ = draw(st.lists(st.booleans(), min_size=len(shapes_), max_size=len(shapes_)).filter(any))
    return shapes_, complex_


PRODUCTS = {
    "outer": np.outer,
    "kron": np.kron,
    "cross": np.cross,
    "convolve full": np.convolve,
    "convolve same": lambda a, v: np.convolve(a, v, mode="same"),
    "convolve valid": lambda a, v: np.convolve(a, v, mode="valid"),
    "tensordot": lambda a, b: np.tensordot(a, b, axes=1),
    "tensordot pairs": lambda a, b: np.tensordot(a, b, axes=([0], [1])),
    "inner": np.inner,
    "dot": np.dot,
    "multi_dot": lambda a, b, c: np.linalg.multi_dot([a, b, c]),
}


@pytest.mark.parametrize("name", PRODUCTS)
@PROPERTY
@given(data=st.data(), seed=seeds)
def test_complex_products(name, data, seed):
    shapes_, complex_ = data.draw(product_cases(name))
    rng = np.random.default_rng(seed)
    _check_product(PRODUCTS[name], _operands(rng, shapes_, complex_), rng)


PRODUCT_REDUCTIONS = {
    "prod": np.prod,
    "prod axis": lambda z: np.prod(z, axis=0),
    "prod keepdims": lambda z: np.prod(z, axis=-1, keepdims=True),
    "cumprod": lambda z: np.cumprod(z, axis=-1),
    "cumprod flat": np.cumprod,
}


@pytest.mark.parametrize("name", PRODUCT_REDUCTIONS)
@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds)
def test_complex_prod_and_cumprod(name, shape, seed):
    fn = PRODUCT_REDUCTIONS[name]
    rng = np.random.default_rng(seed)
    z = away_from_zero(rng, shape)
    assert_weighted_complex_grad(fn, z, rng)


@pytest.mark.parametrize("name", PRODUCT_REDUCTIONS)
def test_complex_prod_and_cumprod_with_zeros(name):
    """Slices with no zero, one zero and two zeros: the exact partial derivatives."""
    fn = PRODUCT_REDUCTIONS[name]
    z = np.array([[1 + 1j, 0j, 2 - 1j, 0.5j], [0.5 - 1j, 1.5 + 0.5j, -1 + 0.2j, 1j], [0j, 1 - 1j, 0j, 2 + 0j]])
    w = weights_like(np.random.default_rng(10), fn(z))
    assert_complex_grad(lambda z: real_loss(fn(z), w), z)


# --- linear algebra ------------------------------------------------------------------

def well_conditioned(rng, batch, n, complex_=True):
    a = cnormal(rng, batch + (n, n)) if complex_ else normal(rng, batch + (n, n))
    return a + 2 * n * np.eye(n)


MATRIX_FUNCTIONS = {
    "inv": np.linalg.inv,
    "det": np.linalg.det,
    "slogdet": lambda a: np.linalg.slogdet(a)[1],
    "matrix_power 3": lambda a: np.linalg.matrix_power(a, 3),
    "matrix_power -2": lambda a: np.linalg.matrix_power(a, -2),
}


@pytest.mark.parametrize("name", MATRIX_FUNCTIONS)
@FEW
@given(n=st.integers(1, 3), batch=st.sampled_from([(), (2,)]), seed=seeds)
def test_complex_matrix_functions(name, n, batch, seed):
    """Holomorphic matrix functions: the transposes of the real rules become conjugate
    transposes (inv: g_A = -X^H g X^H); slogdet's logabsdet is real."""
    fn = MATRIX_FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    a = well_conditioned(rng, batch, n)
    value = fn(a)
    w = weights_like(rng, value) if np.iscomplexobj(value) else rng.normal(size=np.shape(value))
    assert_complex_grad(lambda a: real_loss(fn(a), w), a)


@pytest.mark.parametrize("kinds", ["cc", "rc", "cr"])
@FEW
@given(n=st.integers(1, 3), rhs=st.sampled_from(["vector", "matrix", "batched"]), seed=seeds)
def test_complex_solve(kinds, n, rhs, seed):
    rng = np.random.default_rng(seed)
    batch = (2,) if rhs == "batched" else ()
    a = well_conditioned(rng, batch, n, kinds[0] == "c")
    b_shape = (n,) if rhs == "vector" else batch + (n, 2)
    b = cnormal(rng, b_shape) if kinds[1] == "c" else normal(rng, b_shape)
    _check_product(np.linalg.solve, [a, b], rng)


def test_slogdet_of_a_complex_matrix_is_real_like_numpys():
    a = well_conditioned(np.random.default_rng(11), (), 3)
    for dtype in (np.complex64, np.complex128):
        sign, logabsdet = jit(np.linalg.slogdet)(a.astype(dtype))
        expected = np.linalg.slogdet(a.astype(dtype))
        assert logabsdet.dtype == expected.logabsdet.dtype and sign.dtype == expected.sign.dtype
        np.testing.assert_allclose(logabsdet, expected.logabsdet, rtol=1e-5)
    for fn in (np.linalg.eigvalsh, lambda a: np.linalg.svd(a, compute_uv=False), np.linalg.norm):
        assert jit(fn)(a).dtype == np.float64 == fn(a).dtype


def test_reverse_over_reverse_through_the_new_rules():
    """A gradient of a gradient differentiates the rules' own nodes (conj, index_add,
    einsum) on complex values."""
    rng = np.random.default_rng(12)
    w, m = cnormal(rng, (3,)), cnormal(rng, (3, 3))
    f = lambda z: real_loss(np.tanh(z[np.array([0, 2, 0])]) * np.einsum("ij,j->i", m, np.sinh(z)), w)  # noqa: E731
    h = lambda z: np.sum(np.abs(grad(f)(z)) ** 2)  # noqa: E731
    z = off_imaginary_axis(rng, (3,))
    assert_complex_grad(h, z, rtol=1e-5, atol=1e-6)


# --- single precision ---------------------------------------------------------


def test_complex64_and_float32_stay_single_precision():
    rng = np.random.default_rng(5)
    z, x = cnormal(rng, (3, 4), np.complex64), normal(rng, (4,), np.float32)
    w = cnormal(rng, (3, 4)).astype(np.complex64)

    def f(z, x):
        y = np.exp(z * 1j) * x + np.sqrt(z * z + 2) / (z - 3j) + x * (0.5 + 0.5j)
        return np.real(np.sum(y * w)) + np.mean(np.abs(y) ** 2) + np.sum(np.angle(z) * np.imag(z @ x)[:, None])

    assert_single_precision_gradients(f, z, x, rtol=2e-4, atol=2e-4)


def test_the_new_rules_keep_complex64_single_precision():
    """Holomorphic functions, products, scatters, padding and matrix functions on
    complex64 and float32 values: single precision throughout, as in complex128."""
    rng = np.random.default_rng(13)
    z, x = off_imaginary_axis(rng, (3, 3), np.complex64), normal(rng, (3,), np.float32)
    w = cnormal(rng, (3, 3)).astype(np.complex64)

    def f(z, x):
        a = np.tanh(z) + np.arcsinh(z) * np.log1p(z * z) + np.reciprocal(z - 3) + np.exp2(z) / 4 + np.cosh(z) / 8
        b = np.einsum("ij,j->i", a, x) + np.cumprod(z[0]) + np.prod(z, axis=1) + np.cumsum(x)
        c = np.kron(b, x) + np.outer(b, x).ravel() + np.tile(np.roll(b, 1), 3) + np.repeat(b, 3)
        d = np.pad(a, 1, mode="reflect")[1:4, :3] + np.linalg.inv(z + 4 * np.eye(3, dtype=np.float32))
        e = np.linalg.solve(d + 4 * np.eye(3, dtype=np.float32), b) * np.linalg.det(d + 3 * np.eye(3, dtype=np.float32))
        e = np.convolve(e, x) + np.cross(b, x)[[0, 1, 2, 0, 1]]
        y = a.copy()
        y[1] = b
        return np.real(np.sum(c * w.ravel())) + np.mean(np.abs(e) ** 2) + np.sum(np.abs(np.triu(y * w)) ** 2) \
            + np.linalg.slogdet(d + 3 * np.eye(3, dtype=np.float32))[1]

    g64 = assert_single_precision_gradients(f, z, x, rtol=2e-3, atol=None)
    np.testing.assert_allclose(g64[0], numeric_grad(f, (z, x), 0), rtol=1e-5, atol=1e-5 * np.max(np.abs(g64[0])))


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
        y = np.tanh(z * 2)
        return np.sum(np.abs(np.sort(y)))  # refused: sort

    with pytest.raises(UnsupportedError) as err:
        grad(f)(np.array([1 + 2j]))
    message = str(err.value)
    assert "np.sort" in message and "complex" in message
    assert f"test_complex.py:{_line('# refused: sort')}" in message
    assert "real and imaginary parts" in message


REFUSED = {
    # orderings: complex numbers have none that is differentiable (NumPy's is lexicographic)
    "maximum": lambda z: np.sum(np.abs(np.maximum(z, 0.5j))),
    "clip": lambda z: np.sum(np.abs(np.clip(z, 0, 1))),
    "max": lambda z: np.abs(np.max(z)),
    "sort": lambda z: np.sum(np.abs(np.sort(z))),
    "median": lambda z: np.abs(np.median(z)),
    # not holomorphic, or rules written for real matrices only
    "norm": lambda z: np.linalg.norm(z),
    "cholesky": lambda z: np.abs(np.sum(np.linalg.cholesky(np.outer(z, np.conj(z)) + 3 * np.eye(2)))),
    "eigvalsh": lambda z: np.sum(np.linalg.eigvalsh(np.outer(z, np.conj(z)))),
    "svd": lambda z: np.sum(np.linalg.svd(np.outer(z, z), compute_uv=False)),
    "pinv": lambda z: np.abs(np.sum(np.linalg.pinv(np.outer(z, z) + np.eye(2)))),
    "sinc": lambda z: np.sum(np.abs(np.sinc(z))),
    "nan_to_num": lambda z: np.sum(np.abs(np.nan_to_num(z))),
}


@pytest.mark.parametrize("name", REFUSED)
def test_other_unverified_primitives_are_refused(name):
    with pytest.raises(UnsupportedError, match="complex"):
        grad(REFUSED[name])(np.array([1 + 2j, 0.5 - 1j]))


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


def test_a_complex_output_is_a_grad_error():
    with pytest.raises(GradError, match=r"complex.*real.*np\.abs\(z\) \*\* 2"):
        grad(lambda z: np.sum(z * z))(np.array([1 + 2j]))
    with pytest.raises(GradError, match="complex"):
        value_and_grad(lambda x: np.sum(x * 1j))(np.array([1.0]))
    with pytest.raises(GradError, match="complex"):
        jacrev(lambda z: z * z)(np.array([1 + 2j]))


def test_forward_mode_through_complex_values():
    """The programs forward mode once refused: their tangents equal the centered
    differences along the tangent (tests/test_forward_complex.py checks every rule;
    what forward mode still refuses is tested there too)."""
    cases = [(lambda z: np.sum(np.abs(z * z)), np.array([1 + 2j]), np.array([1 + 0j])),
             (lambda z: np.sum(np.abs(z * z)), np.array([1 + 2j, -0.5j]), np.array([0.3 - 1j, 2 + 1j])),
             (lambda x: np.sum(np.abs(x * 1j)), np.array([1.0]), np.array([1.0])),
             (lambda x: np.sum(np.abs(x * 1j)), np.array([-1.5, 0.7]), np.array([0.4, -2.0]))]
    for f, z, t in cases:
        value, tangent = jvp(f, (z,), (t,))
        np.testing.assert_allclose(value, f(z))
        np.testing.assert_allclose(tangent, (f(z + EPS * t) - f(z - EPS * t)) / (2 * EPS), rtol=RTOL, atol=ATOL)
        assert np.isrealobj(tangent)


# --- real programs are unchanged ---------------------------------------------------


def test_real_programs_get_no_conjugation():
    rng = np.random.default_rng(7)
    W, x = normal(rng, (3, 4)), normal(rng, (4,))

    def f(W, x):
        h = np.exp(W @ x) / (1 + np.square(x[:3])) * np.sin(x[1:]) ** 1.5
        return np.sum(np.sqrt(np.abs(h) + 1) + np.log(np.cos(h) + 2) - h * h)

    source = grad(f, argnums=(0, 1)).source(W, x)
    assert "conj" not in source and "real" not in source and "imag" not in source


def test_real_programs_through_the_new_rules_get_no_conjugation():
    """The rules extended to complex values print as before on real values."""
    rng = np.random.default_rng(14)
    A, x = normal(rng, (3, 3)) + 4 * np.eye(3), normal(rng, (3,)) * 0.3

    def f(A, x):
        h = np.tan(x) + np.tanh(x) + np.arcsin(x) + np.arccos(x) + np.arctan(x) + np.sinh(x) + np.cosh(x)
        h = h + np.arcsinh(x) + np.arccosh(x + 2) + np.arctanh(x) + np.log2(x + 2) + np.log10(x + 2)
        h = h + np.log1p(x + 1) + np.expm1(x) + np.exp2(x) + np.reciprocal(x + 2) + np.float_power(x + 2, 1.5)
        B = np.linalg.inv(A) + np.kron(np.eye(1), A) + np.outer(h, x) + np.einsum("ij,jk->ik", A, A)
        y = np.linalg.solve(B, h) * np.linalg.det(A) + np.linalg.slogdet(A)[1] + np.cross(h, x) + np.prod(B, axis=0)
        y = np.convolve(y, x, mode="same") + np.cumprod(x)
        B = B.copy()
        B[0] = y
        return np.sum(B * B)

    source = grad(f, argnums=(0, 1)).source(A, x)
    assert "conj" not in source and "real" not in source and "imag" not in source
    assert_complex_grad(f, A, x, argnums=(0, 1), rtol=1e-5, atol=1e-6)


def test_every_listed_primitive_exists():
    names = registry.registered()
    assert set(registry.COMPLEX_VJPS) <= set(names)
    assert all(names[name].differentiable for name in registry.COMPLEX_VJPS)

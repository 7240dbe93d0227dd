"""np.fft on traced values: values against NumPy; gradients of real losses of the
complex spectra against centered finite differences (along the real and the
imaginary direction of complex inputs: the convention of tests/test_complex.py);
tangents against differences along random directions, real ones of real inputs
(`assert_vjp` checks both modes) and complex ones of complex inputs
(tests/test_forward_complex.py); with padding and truncation (`n`, `s`), every axis
and every norm."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import grad, hessian, jacfwd, jacrev, jit
from compiler.errors import ShapeError, UnsupportedError
from helpers import PROPERTY, assert_vjp, assert_weighted_vjp, normal, seeds, shapes
from test_complex import assert_complex_grad, cnormal, real_loss, weights_like
from test_forward_complex import assert_complex_jvp

NORMS = st.sampled_from([None, "backward", "ortho", "forward"])
LENGTHS = st.none() | st.integers(1, 7)


@st.composite
def one_axis_case(draw):
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, axis, draw(LENGTHS), draw(NORMS)


@st.composite
def many_axes_case(draw):
    """A shape, distinct axes (in any order), a length per axis or None, a norm."""
    shape = draw(shapes(min_dims=1))
    axes = draw(st.permutations(range(len(shape))).map(lambda p: p[: draw(st.integers(1, len(shape)))]))
    s = draw(st.none() | st.tuples(*(st.integers(1, 6) for _ in axes)))
    return shape, tuple(axes), s, draw(NORMS)


# --- values -------------------------------------------------------------------------

ONE_AXIS = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]


@pytest.mark.parametrize("name", ONE_AXIS)
@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_one_axis_transforms_match_numpy(name, case, seed):
    shape, axis, n, norm = case
    fn = getattr(np.fft, name)
    rng = np.random.default_rng(seed)
    x = normal(rng, shape) if name in ("rfft", "ihfft") else cnormal(rng, shape)
    if name in ("irfft", "hfft") and n is None and shape[axis] == 1:
        n = 2  # the default length 2 * (m - 1) would be 0
    f = lambda x: fn(x, n=n, axis=axis, norm=norm)  # noqa: E731
    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12, atol=1e-12)
    assert jit(f)(x).dtype == f(x).dtype


@pytest.mark.parametrize("name", ["fft2", "ifft2", "fftn", "ifftn", "rfft2", "rfftn", "irfft2", "irfftn"])
@PROPERTY
@given(case=many_axes_case(), seed=seeds)
def test_many_axes_transforms_match_numpy(name, case, seed):
    shape, axes, s, norm = case
    fn = getattr(np.fft, name)
    if name.endswith("2"):
        if len(shape) < 2:
            shape = shape + (3,)
        axes = (-2, -1) if len(axes) < 2 else axes[:2]
        s = None if s is None else (s + (3, 3))[:2]
    rng = np.random.default_rng(seed)
    x = normal(rng, shape) if name.startswith("rfft") else cnormal(rng, shape)
    if name.startswith("irfft") and s is None:
        s = tuple(shape[a] if k < len(axes) - 1 else 4 for k, a in enumerate(axes))
    f = lambda x: fn(x, s=s, axes=axes, norm=norm)  # noqa: E731
    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12, atol=1e-12)


def test_a_length_of_minus_one_keeps_the_arrays():
    x = np.random.default_rng(0).normal(size=(3, 5))
    for fn in (np.fft.fftn, np.fft.rfftn, np.fft.irfftn):
        f = lambda x: fn(x, s=(-1, 6), axes=(0, 1))  # noqa: E731
        np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12, atol=1e-12)


def test_source_is_a_readable_numpy_call():
    f = lambda x: np.sum(np.abs(np.fft.fft(x, n=8, axis=0)) ** 2)  # noqa: E731
    x = np.ones((5, 3))
    source = grad(f).source(x)
    assert "np.fft.fft(x, n=8, axis=0)" in source
    assert "np.fft.ifft(" in source and "norm='forward'" in source
    two = jit(lambda x: np.fft.fft2(x, norm="ortho")).source(x)
    assert "np.fft.fftn(x, s=(5, 3), axes=(0, 1), norm='ortho')" in two


def test_single_precision_stays_single():
    x = np.random.default_rng(1).normal(size=(6,)).astype(np.float32)
    f = lambda x: np.sum(np.abs(np.fft.rfft(x)) ** 2) + np.sum(np.fft.irfft(np.fft.fft(x)[:4]))  # noqa: E731
    g = grad(f)(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, grad(f)(x.astype(np.float64)), rtol=1e-4, atol=1e-4)


def test_fftfreq_with_static_ints_inside_a_traced_function():
    def f(x):
        k = np.fft.fftfreq(x.shape[0], d=0.5)
        return np.sum(x * k) + np.sum(x[: len(np.fft.rfftfreq(x.shape[0]))] ** 2)

    x = np.random.default_rng(2).normal(size=7)
    assert_vjp(f, x)


# --- gradients: complex transforms --------------------------------------------------

@pytest.mark.parametrize("name", ["fft", "ifft"])
@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_power_spectrum_gradient(name, case, seed):
    """grad of sum |fft(x)|² of a real x, padded or truncated to n."""
    shape, axis, n, norm = case
    fn = getattr(np.fft, name)
    x = normal(np.random.default_rng(seed), shape)
    assert_vjp(lambda x: np.sum(np.abs(fn(x, n=n, axis=axis, norm=norm)) ** 2), x)


@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_filter_in_the_frequency_domain_gradient(case, seed):
    """sum real(ifft(fft(x) * h)): a complex filter h, differentiated in x and h."""
    shape, axis, n, norm = case
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    length = shape[axis] if n is None else n
    h_re, h_im = normal(rng, (length,) + (1,) * (len(shape) - 1 - axis % len(shape))), normal(rng, (1,))
    weights = normal(rng, shape[:axis % len(shape)] + (length,) + shape[axis % len(shape) + 1:])

    def f(x, h_re, h_im):
        spectrum = np.fft.fft(x, n=n, axis=axis, norm=norm) * (h_re + 1j * h_im)
        return np.sum(np.real(np.fft.ifft(spectrum, axis=axis, norm=norm)) * weights)

    assert_vjp(f, x, h_re, h_im, argnums=(0, 1, 2))


@pytest.mark.parametrize("name", ["fft", "ifft", "hfft"])
@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_complex_input_gradient(name, case, seed):
    """A complex argument: finite differences along its real and imaginary parts."""
    shape, axis, n, norm = case
    fn = getattr(np.fft, name)
    rng = np.random.default_rng(seed)
    z = cnormal(rng, shape)
    if name == "hfft" and n is None and shape[axis] == 1:
        n = 3
    w = weights_like(rng, fn(z, n=n, axis=axis, norm=norm))
    assert_complex_grad(lambda z: real_loss(fn(z, n=n, axis=axis, norm=norm), w), z)
    assert_complex_jvp(lambda z: fn(z, n=n, axis=axis, norm=norm), z, rng=rng)


@pytest.mark.parametrize("name", ["fft2", "ifft2", "fftn", "ifftn"])
@PROPERTY
@given(case=many_axes_case(), seed=seeds)
def test_many_axes_complex_gradient(name, case, seed):
    shape, axes, s, norm = case
    fn = getattr(np.fft, name)
    if name.endswith("2"):
        shape, axes = shape + (2,) * (2 - len(shape)), (-2, -1)
        s = None if s is None else (s + (3, 3))[:2]
    rng = np.random.default_rng(seed)
    z = cnormal(rng, shape)
    w = weights_like(rng, fn(z, s=s, axes=axes, norm=norm))
    assert_complex_grad(lambda z: real_loss(fn(z, s=s, axes=axes, norm=norm), w), z)
    assert_complex_jvp(lambda z: fn(z, s=s, axes=axes, norm=norm), z, rng=rng)


@pytest.mark.parametrize("name", ["fft", "rfft", "ihfft"])
@settings(PROPERTY, max_examples=6)
@given(case=one_axis_case(), seed=seeds)
def test_jacobians_through_the_spectrum(name, case, seed):
    """jacfwd (the tangents batched along a new leading axis) agrees with jacrev,
    and the hessian of a real loss with differences of its gradient."""
    shape, axis, n, norm = case
    fn = getattr(np.fft, name)
    x = normal(np.random.default_rng(seed), shape)
    power = lambda x: np.abs(fn(x, n=n, axis=axis, norm=norm)) ** 2  # noqa: E731
    np.testing.assert_allclose(jacfwd(power)(x), jacrev(power)(x), rtol=1e-10, atol=1e-10)
    loss = lambda x: np.sum(power(x) ** 2)  # noqa: E731
    eps, flat = 1e-5, np.eye(x.size).reshape((x.size,) + shape)
    numeric = np.stack([(grad(loss)(x + eps * e) - grad(loss)(x - eps * e)) / (2 * eps) for e in flat])
    np.testing.assert_allclose(hessian(loss)(x).reshape(x.size, x.size), numeric.reshape(x.size, x.size),
                               rtol=1e-5, atol=1e-5 * max(1.0, np.max(np.abs(numeric))))


# --- gradients: real transforms -----------------------------------------------------

@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_rfft_gradient(case, seed):
    """A real loss of the half spectrum with complex weights, even and odd n."""
    shape, axis, n, norm = case
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    w = weights_like(rng, np.fft.rfft(x, n=n, axis=axis))
    assert_vjp(lambda x: real_loss(np.fft.rfft(x, n=n, axis=axis, norm=norm), w), x)


@pytest.mark.parametrize("name", ["irfft", "hfft"])
@PROPERTY
@given(case=one_axis_case(), seed=seeds)
def test_irfft_gradient_of_a_complex_half_spectrum(name, case, seed):
    """The imaginary parts irfft discards (DC, and Nyquist for even n) get 0; the
    bins it reads twice get twice the cotangent."""
    shape, axis, n, norm = case
    fn = getattr(np.fft, name)
    rng = np.random.default_rng(seed)
    z = cnormal(rng, shape)
    n = 2 * shape[axis] - 1 if n is None else n
    w = normal(rng, fn(z, n=n, axis=axis).shape)
    g = assert_complex_grad(lambda z: np.sum(fn(z, n=n, axis=axis, norm=norm) * w), z)
    assert_complex_jvp(lambda z: fn(z, n=n, axis=axis, norm=norm), z, rng=rng)
    first = np.take(g, 0, axis=axis)
    assert np.all(np.imag(first) == 0)


@pytest.mark.parametrize("n", [6, 7])
@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds, norm=NORMS)
def test_rfft_irfft_round_trip_with_a_filter(n, shape, seed, norm):
    """irfft(rfft(x) * h, n) on the last axis, x padded or truncated to n, even and odd."""
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    h = normal(rng, (n // 2 + 1,))
    assert_weighted_real(lambda x, h: np.fft.irfft(np.fft.rfft(x, n=n, norm=norm) * h, n=n, norm=norm), rng, x, h)


@pytest.mark.parametrize("name", ["rfft2", "rfftn", "irfft2", "irfftn", "ihfft"])
@PROPERTY
@given(case=many_axes_case(), seed=seeds)
def test_real_transforms_over_several_axes(name, case, seed):
    shape, axes, s, norm = case
    fn = getattr(np.fft, name)
    if name == "ihfft":
        axes, s = axes[:1], None if s is None else s[:1]
        kwargs = {"n": None if s is None else s[0], "axis": axes[0]}
    else:
        if name.endswith("2"):
            shape, axes = shape + (2,) * (2 - len(shape)), (-2, -1)
            s = None if s is None else (s + (3, 3))[:2]
        if name.startswith("irfft") and s is None:
            s = tuple(shape[a] if k < len(axes) - 1 else 5 for k, a in enumerate(axes))
        kwargs = {"s": s, "axes": axes}
    rng = np.random.default_rng(seed)
    if name.startswith("irfft"):
        z = cnormal(rng, shape)
        w = normal(rng, fn(z, **kwargs).shape)
        assert_complex_grad(lambda z: np.sum(fn(z, norm=norm, **kwargs) * w), z)
        assert_complex_jvp(lambda z: fn(z, norm=norm, **kwargs), z, rng=rng)
    else:
        x = normal(rng, shape)
        w = weights_like(rng, fn(x, **kwargs))
        assert_vjp(lambda x: real_loss(fn(x, norm=norm, **kwargs), w), x)


def assert_weighted_real(fn, rng, *args):
    weights = normal(rng, np.shape(fn(*args)))
    assert_vjp(lambda *a: np.sum(fn(*a) * weights), *args, argnums=tuple(range(len(args))))


# --- shifts: real in, real out, so both modes -------------------------------------

@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds, data=st.data())
def test_shifts_both_modes(name, shape, seed, data):
    fn = getattr(np.fft, name)
    axes = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1)
                     | st.permutations(range(len(shape))).map(tuple))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    np.testing.assert_array_equal(jit(lambda x: fn(x, axes=axes))(x), fn(x, axes=axes))
    assert_weighted_vjp(lambda x: fn(x, axes=axes), x, rng=rng)


def test_shift_round_trip_is_identity():
    x = np.arange(7.0)
    np.testing.assert_array_equal(jit(lambda x: np.fft.ifftshift(np.fft.fftshift(x)))(x), x)


# --- refusals -----------------------------------------------------------------------

def test_refusals_name_the_problem():
    x = np.ones((4, 3))
    cases = [
        (lambda x: np.fft.fft(x, norm="sideways"), ShapeError, "norm"),
        (lambda x: np.fft.fftn(x, axes=(0, 0)), ShapeError, "repeated axes"),
        (lambda x: np.fft.fft(x, n=0), ShapeError, "data points"),
        (lambda x: np.fft.rfft(x + 1j), ShapeError, "real arrays"),
        (lambda x: np.fft.fft(x, out=np.empty((4, 3), complex)), UnsupportedError, "out="),
        (lambda x: np.fft.fft(x[0, 0]), ShapeError, "out of bounds"),
    ]
    for f, cls, words in cases:
        with pytest.raises(cls, match=words) as info:
            jit(f)(x)
        assert "test_numpy_fft.py" in str(info.value)


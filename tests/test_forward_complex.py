"""Forward mode (jvp, jacfwd, hessian, hvp) through complex values.

A tangent moves a complex value in the complex plane: w = f(z) has the tangent
f'(z) t of a holomorphic f (not conjugated, unlike reverse mode's cotangents), and a
real-valued function of z (|z|, np.angle, Re, Im) has a real one. Every rule is
checked against centered differences in complex arithmetic,
(f(z + eps t) - f(z - eps t)) / 2 eps, along random complex directions, on
hypothesis-drawn shapes, real and complex operands mixed; against reverse mode
(under its convention a real loss L changes along t by Re(sum(conj(grad L) * t)));
and second derivatives of real functions through complex values (hessian, jacfwd,
hvp) against differences of the gradient. The operation tables are
tests/test_complex.py's, so both modes cover the same primitives.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import grad, hessian, hvp, jacfwd, jacrev, jvp, vjp
from compiler.errors import GradError, UnsupportedError
from error_checks import checks_for
from helpers import PROPERTY, broadcastable_pair, normal, seeds, shapes
from test_complex import (
    ASSIGNMENTS, BINARY, LINEAR_FUNCTIONS, MATRIX_FUNCTIONS, PRODUCT_REDUCTIONS, PRODUCTS, PROMOTIONS, REAL_VALUED,
    SHAPE_FUNCTIONS, UNARY, _add_along, _operands, _repeating_indices, _scatter, _unpermute, away_from_zero, cnormal,
    einsum_cases, product_cases, real_loss, right_half, weights_like, well_conditioned,
)

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-7
FEW = settings(PROPERTY, max_examples=6)


def tangent_like(rng: np.random.Generator, value) -> np.ndarray:
    """A random direction of the value's dtype: complex for a complex value, real for a real one."""
    dtype = np.result_type(value)
    return cnormal(rng, np.shape(value), dtype) if dtype.kind == "c" else normal(rng, np.shape(value), dtype)


def differences(f, args, tangents, eps=EPS):
    """(f(a + eps t) - f(a - eps t)) / 2 eps, in complex (or real) double precision."""
    wide = [np.asarray(a, np.complex128 if np.iscomplexobj(a) else np.float64) for a in args]
    plus = f(*(a + eps * t for a, t in zip(wide, tangents)))
    minus = f(*(a - eps * t for a, t in zip(wide, tangents)))
    return (np.asarray(plus) - np.asarray(minus)) / (2 * eps)


def assert_close(analytic, numeric, rtol=RTOL, atol=ATOL):
    """The absolute tolerance scaled by the largest entry: a difference quotient of a
    large value is good to fewer absolute digits."""
    scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol * scale)


def assert_complex_jvp(f, *args, rng, rtol=RTOL, atol=ATOL):
    """jvp of `f` along random directions: the value is f's, the tangent has the
    value's shape and dtype (real for a real value) and equals the differences.
    Returns the tangents drawn."""
    tangents = tuple(tangent_like(rng, a) for a in args)
    value, tangent = jvp(f, args, tangents)
    expected = f(*args)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)
    assert np.shape(tangent) == np.shape(expected)
    assert np.result_type(tangent) == np.result_type(expected), (np.result_type(tangent), np.result_type(expected))
    assert_close(tangent, differences(f, args, tangents), rtol, atol)
    return tangents


# --- elementwise ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*UNARY, *REAL_VALUED])
@FEW
@given(shape=shapes(), seed=seeds)
def test_unary_functions_of_complex_values(name, shape, seed):
    """Holomorphic and conjugating functions, and the real-valued ones (|z|, np.angle,
    Re and Im: real tangents, Re(conj(z) t) / |z| for |z|)."""
    fn, domain = {**UNARY, **REAL_VALUED}[name]
    rng = np.random.default_rng(seed)
    assert_complex_jvp(fn, domain(rng, shape), rng=rng)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("kinds", ["cc", "rc", "cr"])
@FEW
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_operators_with_real_and_complex_operands(name, kinds, pair, seed):
    fn, domain = BINARY[name]
    rng = np.random.default_rng(seed)
    a = cnormal(rng, pair[0]) if kinds[0] == "c" else normal(rng, pair[0])
    b = domain(rng, pair[1]) if kinds[1] == "c" else np.abs(normal(rng, pair[1])) + 0.5
    assert_complex_jvp(fn, a, b, rng=rng)


@pytest.mark.parametrize("name", PROMOTIONS)
@FEW
@given(shape=shapes(), seed=seeds)
def test_real_inputs_made_complex(name, shape, seed):
    """A real input's real tangent becomes complex with it (x * 1j, x.astype(complex))."""
    rng = np.random.default_rng(seed)
    assert_complex_jvp(PROMOTIONS[name], normal(rng, shape), rng=rng)


@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_powers_of_complex_and_real_bases(shape, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 2, size=shape)
    assert_complex_jvp(lambda z: z ** p, right_half(rng, shape), rng=rng)
    assert_complex_jvp(lambda x: x ** (0.5 + 1j), rng.uniform(0.5, 2.0, size=shape), rng=rng)


def test_a_real_tangent_of_a_complex_value_moves_it_along_the_real_axis():
    rng = np.random.default_rng(1)
    z, t = right_half(rng, (4,)), normal(rng, (4,))
    for fn in (np.log, np.abs, np.angle, np.conj, np.imag, lambda z: np.sum(z ** 3)):
        value, tangent = jvp(fn, (z,), (t,))
        assert np.result_type(tangent) == np.result_type(value)
        assert_close(tangent, differences(fn, (z,), (t,)))


def test_complex_casts():
    rng = np.random.default_rng(2)
    z = cnormal(rng, (3,))
    assert_complex_jvp(lambda z: z.astype(np.complex128) * 2, z.astype(np.complex64), rng=rng)
    assert_complex_jvp(lambda x: np.exp(x.astype(np.complex128) * 1j), normal(rng, (3,)), rng=rng)
    f = lambda z: z.astype(np.float64) ** 3  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # the value drops Im, as NumPy warns
        assert_complex_jvp(f, z, rng=rng)
    assert "np.real(t_z)" in jvp.source(f, (z,), (z,))  # the tangent's cast takes Re without a warning


@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_where_on_complex_and_real_values(pair, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(np.broadcast_shapes(*pair)) < 0.5
    assert_complex_jvp(lambda a, b: np.where(mask, a, b), cnormal(rng, pair[0]), cnormal(rng, pair[1]), rng=rng)
    assert_complex_jvp(lambda a, x: np.where(mask, a * a, x), cnormal(rng, pair[0]), normal(rng, pair[1]), rng=rng)


def test_abs_and_angle_at_zero_agree_with_reverse_mode():
    """At z == 0 both derivatives are taken as 0, in either mode."""
    z, t = np.array([0j, 3 + 4j]), np.array([1 - 2j, 0.5 + 1j])
    for fn in (np.abs, np.angle):
        f = lambda z: np.sum(fn(z))  # noqa: E731
        _, tangent = jvp(f, (z,), (t,))
        np.testing.assert_allclose(tangent, np.real(np.sum(np.conj(grad(f)(z)) * t)), rtol=1e-12, atol=1e-15)
        assert jvp(fn, (z,), (t,))[1][0] == 0


# --- linear maps, reductions, products, matrices ----------------------------------------

LINEAR = {**SHAPE_FUNCTIONS, **LINEAR_FUNCTIONS, "sum": np.sum, "mean axis": lambda z: np.mean(z, axis=-1),
          "sum keepdims": lambda z: np.sum(z, axis=0, keepdims=True)}


@pytest.mark.parametrize("name", LINEAR)
@FEW
@given(shape=shapes(min_dims=1), seed=seeds)
def test_linear_functions_of_complex_values(name, shape, seed):
    rng = np.random.default_rng(seed)
    assert_complex_jvp(LINEAR[name], cnormal(rng, shape), rng=rng)


def test_nansum_and_nanmean_with_nan_lanes():
    z = np.array([[1 + 2j, complex(np.nan, 1.0), 0.5 - 1j], [complex(2.0, np.nan), -1j, 3.0 + 0j]])
    for fn in (np.nansum, np.nanmean):
        assert_complex_jvp(lambda z: fn(z, axis=0), z, rng=np.random.default_rng(3))


@pytest.mark.parametrize("name", PRODUCTS)
@FEW
@given(data=st.data(), seed=seeds)
def test_products_of_real_and_complex_operands(name, data, seed):
    shapes_, complex_ = data.draw(product_cases(name))
    rng = np.random.default_rng(seed)
    assert_complex_jvp(PRODUCTS[name], *_operands(rng, shapes_, complex_), rng=rng)


@settings(PROPERTY, max_examples=20)
@given(case=einsum_cases(), seed=seeds)
def test_einsum_of_real_and_complex_operands(case, seed):
    spec, shapes_, complex_ = case
    rng = np.random.default_rng(seed)
    assert_complex_jvp(lambda *ops: np.einsum(spec, *ops), *_operands(rng, shapes_, complex_), rng=rng)


@pytest.mark.parametrize("shapes_", [((3, 4), (4, 2)), ((4,), (4, 2)), ((2, 3, 4), (4,)), ((3,), (2, 3, 4))], ids=str)
@pytest.mark.parametrize("kinds", ["cc", "rc", "cr"])
def test_matmul_of_real_and_complex_operands(shapes_, kinds):
    rng = np.random.default_rng(len(shapes_[0]))
    assert_complex_jvp(np.matmul, *_operands(rng, shapes_, [k == "c" for k in kinds]), rng=rng)


@pytest.mark.parametrize("name", PRODUCT_REDUCTIONS)
@FEW
@given(shape=shapes(min_dims=1), seed=seeds)
def test_prod_and_cumprod(name, shape, seed):
    rng = np.random.default_rng(seed)
    assert_complex_jvp(PRODUCT_REDUCTIONS[name], away_from_zero(rng, shape), rng=rng)


@pytest.mark.parametrize("name", PRODUCT_REDUCTIONS)
def test_prod_and_cumprod_with_zeros(name):
    """Slices with no zero, one zero and two zeros: exact partial derivatives."""
    z = np.array([[1 + 1j, 0j, 2 - 1j, 0.5j], [0.5 - 1j, 1.5 + 0.5j, -1 + 0.2j, 1j], [0j, 1 - 1j, 0j, 2 + 0j]])
    assert_complex_jvp(PRODUCT_REDUCTIONS[name], z, rng=np.random.default_rng(4))


@pytest.mark.parametrize("name", MATRIX_FUNCTIONS)
@FEW
@given(n=st.integers(1, 3), batch=st.sampled_from([(), (2,)]), seed=seeds)
def test_matrix_functions(name, n, batch, seed):
    """inv, det, matrix powers: holomorphic; slogdet's logabsdet: real, Re tr(A^-1 dA)."""
    rng = np.random.default_rng(seed)
    assert_complex_jvp(MATRIX_FUNCTIONS[name], well_conditioned(rng, batch, n), rng=rng)


@FEW
@given(n=st.integers(1, 3), batch=st.sampled_from([(), (2,)]), seed=seeds)
def test_the_sign_of_a_complex_determinant(n, batch, seed):
    """slogdet's sign, det / |det|, turns with the determinant's phase (reverse mode
    takes it as non-differentiable; a real matrix's sign is piecewise constant)."""
    rng = np.random.default_rng(seed)
    assert_complex_jvp(lambda a: np.linalg.slogdet(a)[0], well_conditioned(rng, batch, n), rng=rng)
    assert_complex_jvp(lambda a: np.linalg.slogdet(a)[0], well_conditioned(rng, batch, n, complex_=False), rng=rng)


@pytest.mark.parametrize("kinds", ["cc", "rc", "cr"])
@FEW
@given(n=st.integers(1, 3), rhs=st.sampled_from(["vector", "matrix", "batched"]), seed=seeds)
def test_solve(kinds, n, rhs, seed):
    rng = np.random.default_rng(seed)
    batch = (2,) if rhs == "batched" else ()
    a = well_conditioned(rng, batch, n, kinds[0] == "c")
    b_shape = (n,) if rhs == "vector" else batch + (n, 2)
    b = cnormal(rng, b_shape) if kinds[1] == "c" else normal(rng, b_shape)
    assert_complex_jvp(np.linalg.solve, a, b, rng=rng)


@pytest.mark.parametrize("name", ASSIGNMENTS)
@pytest.mark.parametrize("v_kind", ["complex", "real"])
def test_assignment_into_a_complex_array(name, v_kind):
    index, v_shape = ASSIGNMENTS[name]
    rng = np.random.default_rng(5)
    z = cnormal(rng, (4, 3))
    v = cnormal(rng, v_shape(3)) if v_kind == "complex" else normal(rng, v_shape(3))

    def f(z, v):
        y = z * 1.5
        y[index] = v
        return y * y

    assert_complex_jvp(f, z, v, rng=rng)


@FEW
@given(n=st.integers(1, 4), m=st.integers(1, 3), seed=seeds)
def test_the_scatter_primitives(n, m, seed):
    rng = np.random.default_rng(seed)
    z = cnormal(rng, (2 * n + 1, m))
    rows = rng.integers(0, n, size=2 * n + 1)
    along = rng.integers(0, n, size=(2 * n + 1, m))
    order = np.argsort(rng.random((2 * n + 1, m)), axis=0)
    assert_complex_jvp(lambda z: _scatter(z * z, rows, (n, m)), z, rng=rng)
    assert_complex_jvp(lambda z: _add_along(z * z, along, (n, m)), z, rng=rng)
    assert_complex_jvp(lambda z: _unpermute(z * z, order), z, rng=rng)
    assert_complex_jvp(lambda z: np.take_along_axis(z, _repeating_indices(z.shape), axis=0), z, rng=rng)


# --- agreement with reverse mode ---------------------------------------------------------

AGREEMENT = {**{name: UNARY[name] for name in ("exp", "log", "sqrt", "arccosh", "np.conj", "** array", "tan")},
             **REAL_VALUED}


@pytest.mark.parametrize("name", AGREEMENT)
@FEW
@given(shape=shapes(), seed=seeds)
def test_jvp_agrees_with_the_gradient(name, shape, seed):
    """For a real loss L, jvp along t is Re(sum(conj(grad L) * t)) (PyTorch's
    convention: grad L = dL/dRe + i dL/dIm), and vjp's pullback of a real
    function's cotangent c pairs with the tangent the same way."""
    fn, domain = AGREEMENT[name]
    rng = np.random.default_rng(seed)
    z = domain(rng, shape)
    w = weights_like(rng, fn(z))
    loss = lambda z: real_loss(fn(z), w)  # noqa: E731
    t = cnormal(rng, shape)
    _, tangent = jvp(loss, (z,), (t,))
    np.testing.assert_allclose(tangent, np.real(np.sum(np.conj(grad(loss)(z)) * t)), rtol=1e-10, atol=1e-10)
    if np.isrealobj(fn(z)):
        c = rng.normal(size=np.shape(fn(z)))
        (pulled,) = vjp(fn, z)[1](c)
        np.testing.assert_allclose(np.sum(c * jvp(fn, (z,), (t,))[1]), np.real(np.sum(np.conj(pulled) * t)),
                                   rtol=1e-10, atol=1e-10)


def test_single_precision_stays_single():
    rng = np.random.default_rng(6)
    z, x = cnormal(rng, (3, 4), np.complex64), normal(rng, (4,), np.float32)

    def f(z, x):
        y = np.exp(z * 1j) * x + np.sqrt(z * z + 2) / (z - 3j) + x * (0.5 + 0.5j)
        return y, np.abs(y) ** 2 + np.angle(z) * np.imag(z @ x)[:, None]

    tangents = (cnormal(rng, (3, 4), np.complex64), normal(rng, (4,), np.float32))
    _, (t_y, t_r) = jvp(f, (z, x), tangents)
    assert t_y.dtype == np.complex64 and t_r.dtype == np.float32
    _, (w_y, w_r) = jvp(f, (z.astype(np.complex128), x.astype(np.float64)),
                        tuple(t.astype(np.complex128 if t.dtype.kind == "c" else np.float64) for t in tangents))
    np.testing.assert_allclose(t_y, w_y, rtol=1e-4, atol=1e-4 * np.max(np.abs(w_y)))
    np.testing.assert_allclose(t_r, w_r, rtol=1e-4, atol=1e-4 * np.max(np.abs(w_r)))


def test_generated_tangents_read_like_the_math():
    z, t = np.array([1 + 2j]), np.array([1j])
    holomorphic = jvp.source(lambda z: np.sum(np.exp(z) * np.log(z) - 1j * z), (z,), (t,))
    assert "t_z * " in holomorphic and "np.conj" not in holomorphic and "np.real" not in holomorphic
    assert "np.real(np.conj(z) * t_z)" in jvp.source(lambda z: np.abs(z), (z,), (t,))
    x = np.array([0.5, -1.0])
    real = jvp.source(lambda x: np.sum(np.sin(x) * np.exp(x)), (x,), (x,))
    assert "np.conj" not in real and "np.real" not in real and "complex128" not in real


# --- second derivatives of real functions through complex values ----------------------------

_RNG = np.random.default_rng(7)
M = cnormal(_RNG, (3, 3))
A = well_conditioned(_RNG, (), 3)
W = cnormal(_RNG, (3,))

REAL_THROUGH_COMPLEX = {
    "|exp(ix) x|^2": lambda x: np.sum(np.abs(np.exp(1j * x) * x) ** 2),
    "Re log(x + 2j) x": lambda x: np.real(np.sum(np.log(x + 2j) * x)),
    "angle": lambda x: np.sum(np.angle(x + 1j * x ** 2 + 0.5j)),
    "Im prod": lambda x: np.imag(np.prod(x + 1j)),
    "matmul, |.|^3": lambda x: np.sum(np.abs(M @ (x * (1 - 0.5j)) + 2) ** 3),
    "det": lambda x: np.abs(np.linalg.det(np.outer(x, x) * 1j + A)),
    "slogdet, solve": lambda x: np.linalg.slogdet(A + np.diag(x * 1j))[1] + np.real(np.sum(np.linalg.solve(A, x * W))),
    "cumprod, astype, conj": lambda x: np.real(np.sum(np.cumprod(x.astype(np.complex128) + 1j) * np.conj(W * x))),
    "sqrt, tanh, imag": lambda x: np.sum(np.sqrt(x + 3j) * np.imag(np.tanh(x * 1j + 0.3))).real,
}


def _jacobian_by_differences(f, x, eps=1e-5):
    """The Jacobian of f at x, input axis last, by centered differences."""
    columns = [differences(f, (x,), (e.reshape(x.shape),), eps) for e in np.eye(x.size)]
    return np.stack(columns, axis=-1).reshape(np.shape(f(x)) + x.shape)


@pytest.mark.parametrize("name", REAL_THROUGH_COMPLEX)
def test_hessian_of_a_real_function_through_complex_values(name):
    """hessian = jacfwd(jacrev(f)): forward mode over the backward pass's conj,
    np.real and complex products; it equals differences of the gradient."""
    f = REAL_THROUGH_COMPLEX[name]
    x = np.array([0.3, -1.2, 0.7])
    h = hessian(f)(x)
    assert h.dtype == np.float64
    assert_close(h, _jacobian_by_differences(grad(f), x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, h.T, rtol=1e-9, atol=1e-9 * np.max(np.abs(h)))
    np.testing.assert_allclose(jacfwd(grad(f))(x), jacrev(grad(f))(x), rtol=1e-9, atol=1e-9 * np.max(np.abs(h)))
    t = np.array([0.5, 1.0, -2.0])
    np.testing.assert_allclose(hvp(f, (x,), (t,)), h @ t, rtol=1e-9, atol=1e-9 * np.max(np.abs(h)))


JACFWD_CASES = {name: UNARY[name] for name in ("exp", "log", "sqrt", "np.conj", "reciprocal", "arcsin", "** 0.5")}
JACFWD_CASES.update(REAL_VALUED)


@pytest.mark.parametrize("name", JACFWD_CASES)
def test_jacfwd_of_a_real_input_through_each_lanewise_rule(name):
    """The batched tangent pass (every basis direction at once) through the derived
    and the explicit lanewise rules: complex Jacobians of complex outputs."""
    fn, domain = JACFWD_CASES[name]
    rng = np.random.default_rng(8)
    z0 = domain(rng, (3,))
    f = lambda x: fn(z0 + (0.3 + 0.2j) * x[::-1] + 0.1 * x ** 2)  # noqa: E731
    x = 0.1 * normal(rng, (3,))
    jac = jacfwd(f)(x)
    assert jac.dtype == np.result_type(f(x), x)
    assert_close(jac, _jacobian_by_differences(f, x))
    if np.isrealobj(f(x)):
        np.testing.assert_allclose(jac, jacrev(f)(x), rtol=1e-10, atol=1e-12)


HVP_CASES = {
    "|z|^4": lambda z: np.sum(np.abs(z) ** 4),
    "Re w tanh(z) + |.|^2": lambda z: real_loss(np.tanh(z), W),
    "angle^2": lambda z: np.sum(np.angle(z) ** 2),
    "matmul": lambda z: np.sum(np.abs(M @ z - W) ** 2) + np.real(np.sum(np.exp(0.3j * z))),
}


@pytest.mark.parametrize("name", HVP_CASES)
def test_hvp_with_a_complex_input(name):
    """hvp(f, (z,), (t,)) is the tangent of the complex gradient along the complex t:
    the centered difference of grad f along t."""
    f = HVP_CASES[name]
    rng = np.random.default_rng(9)
    z, t = away_from_zero(rng, (3,)), cnormal(rng, (3,))
    product = hvp(f, (z,), (t,))
    assert product.dtype == np.complex128
    assert_close(product, differences(grad(f), (z,), (t,), 1e-5), rtol=1e-5, atol=1e-6)


# --- what stays refused -------------------------------------------------------------------------

line_of, check = checks_for(__file__)


def test_unverified_primitives_of_complex_values_are_refused_at_the_users_line():
    z, t = np.array([1 + 2j, 0.5 - 1j]), np.array([1j, 1.0 + 0j])
    with pytest.raises(UnsupportedError) as info:
        jvp(lambda z: np.abs(np.sort(z * 2)), (z,), (t,))  # <- sort
    check(info, UnsupportedError, "sort", "forward-mode", "np.sort of complex values", "real and imaginary parts")
    with pytest.raises(UnsupportedError) as info:
        jvp(lambda z: np.maximum(z, 0.5j), (z,), (t,))  # <- maximum
    check(info, UnsupportedError, "maximum", "np.maximum of complex values")
    with pytest.raises(UnsupportedError) as info:
        jvp(lambda z: np.sign(z) * z, (z,), (t,))  # <- sign
    check(info, UnsupportedError, "sign", "np.sign of complex values")


def test_a_differentiated_exponent_of_a_complex_power_is_refused():
    z, p = np.array([1 + 2j]), np.array([2.0])
    f = lambda z, p: z ** p  # noqa: E731
    assert_complex_jvp(lambda z: f(z, p), z, rng=np.random.default_rng(10))  # the base only: fine
    with pytest.raises(UnsupportedError) as info:
        jvp(lambda p: (1 + 1j) ** p, (p,), (np.ones(1),))  # <- exponent
    check(info, UnsupportedError, "exponent", r"in operand 2 (only in operand 1)")


def test_jacobians_with_respect_to_complex_inputs_are_refused():
    """An identity basis spans only the real directions of a complex input: a forward
    Jacobian would miss the imaginary ones (jacrev covers real functions)."""
    z = np.array([1 + 2j, 0.5 - 1j])
    with pytest.raises(UnsupportedError) as info:
        jacfwd(lambda z: np.abs(z) ** 2)(z)  # <- jacfwd
    check(info, UnsupportedError, "jacfwd", "complex values", "jacrev")
    with pytest.raises(UnsupportedError) as info:
        hessian(lambda z: np.sum(np.abs(z) ** 2))(z)  # <- hessian
    check(info, UnsupportedError, "hessian", "complex values")


def test_a_complex_tangent_of_a_real_input_is_an_error():
    with pytest.raises(GradError) as info:
        jvp(lambda x: x * 2, (np.ones(2),), (np.ones(2) + 1j,))  # <- complex tangent
    check(info, GradError, "complex tangent", "the tangent of a real value is real")

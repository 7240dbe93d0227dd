"""Forward mode through the elementwise, scipy.special and fused nn primitives.

Every differentiable ufunc's tangent (broadcasting included, one operand's tangent
or both) equals centered finite differences on hypothesis-drawn shapes, and so does
the tangent of its gradient (forward over reverse: a Hessian-vector product).
float32 in gives a float32 tangent out. The stable nn primitives (logsumexp,
log_softmax, softmax cross-entropy, sigmoid, BCE with logits) have first and second
derivatives in both modes, finite at extreme logits.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import grad, hvp, jvp
from compiler.primitives.registry import registered
from compiler.primitives.scipy_special import SCIPY_UFUNCS
from helpers import PROPERTY, broadcastable_pair, nonzero, normal, positive, seeds, shapes
from runtime import nn

FEW = settings(PROPERTY, max_examples=8)
EPS = 1e-6
RTOL, ATOL = 1e-5, 1e-6  # centered differences at EPS on O(1) values


def uniform(low: float, high: float):
    return lambda rng, shape: rng.uniform(low, high, size=shape)


small, inside, above_one = uniform(-1.2, 1.2), uniform(-0.9, 0.9), uniform(1.2, 3.0)
gamma_domain = uniform(0.5, 3.0)

# ufunc name -> domain of its argument (NumPy's, then scipy.special's by __name__)
UNARY = {
    "negative": normal, "exp": normal, "exp2": normal, "log": positive, "log2": positive, "log10": positive,
    "log1p": positive, "expm1": normal, "sin": normal, "cos": normal, "tan": small, "arcsin": inside,
    "arccos": inside, "arctan": normal, "sinh": normal, "cosh": normal, "tanh": normal, "arcsinh": normal,
    "arccosh": above_one, "arctanh": inside, "deg2rad": normal, "radians": normal, "rad2deg": normal,
    "degrees": normal, "sqrt": positive, "cbrt": nonzero, "square": normal, "reciprocal": nonzero,
    "absolute": nonzero, "fabs": nonzero, "conjugate": normal,
    "expit": normal, "log_expit": normal, "logit": uniform(0.1, 0.9), "erf": normal, "erfc": normal,
    "ndtr": normal, "log_ndtr": normal, "gammaln": gamma_domain, "psi": gamma_domain,
    "gamma": gamma_domain, "rgamma": gamma_domain, "loggamma": gamma_domain, "erfinv": inside,
    "erfcinv": uniform(0.1, 1.9), "j0": normal, "j1": normal, "y0": gamma_domain, "y1": gamma_domain,
    "i0": small, "i1": small, "i0e": small, "i1e": small, "k0": gamma_domain, "k1": gamma_domain,
    "k0e": gamma_domain, "k1e": gamma_domain,
}
# ufunc name -> domains of its two arguments
BINARY = {
    "add": (normal, normal), "subtract": (normal, normal), "multiply": (normal, normal),
    "divide": (normal, nonzero), "power": (positive, normal), "float_power": (positive, normal),
    "maximum": (normal, normal), "minimum": (normal, normal), "fmax": (normal, normal), "fmin": (normal, normal),
    "logaddexp": (normal, normal), "logaddexp2": (normal, normal), "arctan2": (normal, nonzero),
    "hypot": (nonzero, nonzero), "copysign": (nonzero, nonzero), "remainder": (normal, nonzero),
    "fmod": (normal, nonzero),
    "xlogy": (normal, positive), "xlog1py": (normal, uniform(-0.5, 2.0)),
    "beta": (gamma_domain, gamma_domain), "betaln": (gamma_domain, gamma_domain),
}
# differentiable in their last operand only (an order or shape parameter has no closed-form
# derivative and is refused): tests/test_scipy_special_breadth.py covers them in both modes
LAST_OPERAND_ONLY = {"jv", "yv", "yn", "iv", "ive", "kv", "kve", "gammainc", "gammaincc", "gammaincinv",
                     "gammainccinv", "betainc", "betaincinv"}


def ufunc(name: str):
    """np.<name>, or scipy.special's ufunc named `name` (skipped without SciPy)."""
    if name not in SCIPY_UFUNCS:
        return getattr(np, name)
    return getattr(pytest.importorskip("scipy.special"), name)


def test_every_differentiable_ufunc_has_a_domain_here():
    prims = registered().values()
    names = {p.name for p in prims if p.ufunc and p.lanewise and p.differentiable}
    assert names == set(UNARY) | set(BINARY) | LAST_OPERAND_ONLY


# --- checks --------------------------------------------------------------------------

def along(fn, args, tangents, step):
    return fn(*(a + step * t for a, t in zip(args, tangents)))


def assert_tangent(fn, args, tangents, rtol=RTOL, atol=ATOL):
    """jvp(fn) gives fn's value and, at its shape and dtype, the centered difference
    along `tangents`."""
    value, tangent = jvp(fn, args, tangents)
    expected = fn(*args)
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)
    assert np.shape(tangent) == np.shape(expected)
    assert np.result_type(tangent) == np.result_type(expected)
    numeric = (along(fn, args, tangents, EPS) - along(fn, args, tangents, -EPS)) / (2 * EPS)
    np.testing.assert_allclose(tangent, numeric, rtol=rtol, atol=atol)


def assert_second_order(f, args, rng):
    """The tangent of the scalar `f`'s gradient in all its arguments (forward over
    reverse) equals centered differences of that gradient, which the compiled first
    derivative gives."""
    gradient = grad(f, argnums=tuple(range(len(args))))
    tangents = tuple(rng.normal(size=np.shape(a)) for a in args)
    _, product = jvp(gradient, args, tangents)
    ahead, behind = along(gradient, args, tangents, EPS), along(gradient, args, tangents, -EPS)
    for p, a, b in zip(product, ahead, behind):
        np.testing.assert_allclose(p, (a - b) / (2 * EPS), rtol=RTOL, atol=ATOL)


def contracted(fn, shape, rng):
    """`lambda *a: sum(fn(*a) * W)` with fixed random weights W: each lane of fn's
    gradient gets its own cotangent."""
    weights = rng.normal(size=shape)
    return lambda *a: np.sum(fn(*a) * weights)


# --- ufuncs ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", UNARY)
@FEW
@given(shape=shapes(), seed=seeds)
def test_unary_ufunc_first_and_second_order(name, shape, seed):
    fn, rng = ufunc(name), np.random.default_rng(seed)
    x = UNARY[name](rng, shape)
    assert_tangent(fn, (x,), (rng.normal(size=shape),))
    assert_second_order(contracted(fn, shape, rng), (x,), rng)


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_ufunc_with_broadcasting_first_and_second_order(name, pair, seed):
    fn, rng = ufunc(name), np.random.default_rng(seed)
    x, y = (domain(rng, shape) for domain, shape in zip(BINARY[name], pair))
    tx, ty = rng.normal(size=pair[0]), rng.normal(size=pair[1])
    assert_tangent(fn, (x, y), (tx, ty))
    assert_tangent(lambda x: fn(x, y), (x,), (tx,))  # y carries no tangent
    assert_tangent(lambda y: fn(x, y), (y,), (ty,))
    assert_second_order(contracted(fn, np.broadcast_shapes(*pair), rng), (x, y), rng)


@pytest.mark.parametrize("name", [*UNARY, *BINARY])
def test_float32_in_float32_tangent_out(name):
    fn, rng = ufunc(name), np.random.default_rng(4)
    domains = (UNARY[name],) if name in UNARY else BINARY[name]
    args = tuple(domain(rng, shape) for domain, shape in zip(domains, [(2, 3), (3,)]))
    tangents = tuple(rng.normal(size=a.shape) for a in args)
    args32, tangents32 = (tuple(a.astype(np.float32) for a in group) for group in (args, tangents))
    value, tangent = jvp(fn, args32, tangents32)
    expected = np.float64 if name == "float_power" else np.float32  # float_power computes in float64
    assert value.dtype == tangent.dtype == fn(*args32).dtype == expected
    np.testing.assert_allclose(tangent, jvp(fn, args, tangents)[1], rtol=2e-4, atol=2e-5)
    f = lambda *a: np.sum(fn(*a))  # noqa: E731
    _, products = jvp(grad(f, argnums=tuple(range(len(args)))), args32, tangents32)
    assert all(p.dtype == np.float32 for p in products)


def test_python_float_primals():
    assert jvp(np.sin, (0.5,), (2.0,))[1] == pytest.approx(2.0 * np.cos(0.5), rel=1e-14)
    f = lambda x, y: x ** y * np.logaddexp(x, y)  # noqa: E731
    tangent = jvp(f, (1.5, 0.5), (1.0, -1.0))[1]
    assert tangent == pytest.approx((f(1.5 + EPS, 0.5 - EPS) - f(1.5 - EPS, 0.5 + EPS)) / (2 * EPS), rel=1e-8)


# --- x ** 0 and the mixed derivative of x ** y at y == 0 ------------------------------

X_WITH_ZEROS = np.array([-1.5, 0.0, 0.0, 0.5, 2.0])
POWERS_OF_ZERO = {
    "x ** 0": lambda x: x ** 0,
    "np.power(x, 0)": lambda x: np.power(x, 0),
    "np.power(x, 0.0)": lambda x: np.power(x, 0.0),
    "np.power(x, zeros)": lambda x: np.power(x, np.zeros(5)),
    "np.float_power(x, 0)": lambda x: np.float_power(x, 0),
}


@pytest.mark.parametrize("name", POWERS_OF_ZERO)
def test_power_zero_has_zero_tangent_everywhere_including_zero(name):
    fn, t = POWERS_OF_ZERO[name], np.ones(5)
    value, tangent = jvp(fn, (X_WITH_ZEROS,), (t,))
    np.testing.assert_array_equal(value, np.ones(5))
    np.testing.assert_array_equal(tangent, np.zeros(5))
    _, curvature = jvp(grad(lambda x: np.sum(fn(x))), (X_WITH_ZEROS,), (t,))
    np.testing.assert_array_equal(curvature, np.zeros(5))


@pytest.mark.parametrize("power", [np.power, np.float_power])
def test_traced_zero_exponent_has_zero_tangent_and_the_true_mixed_derivative(power):
    """d/dy (d/dx x ** y) = x ** (y - 1) (1 + y log x), 1 / x at y == 0; 0 is taken
    at x == y == 0, where x ** y jumps."""
    x, y, ones = X_WITH_ZEROS, np.zeros(5), np.ones(5)
    _, tangent = jvp(power, (x, y), (ones, ones))
    np.testing.assert_array_equal(tangent, [0.0, 0.0, 0.0, np.log(0.5), np.log(2.0)])
    d_dx = grad(lambda x, y: np.sum(power(x, y)), argnums=0)
    mixed = np.array([1 / -1.5, 0.0, 0.0, 2.0, 0.5])
    np.testing.assert_allclose(jvp(lambda y: d_dx(x, y), (y,), (ones,))[1], mixed, rtol=1e-14)
    np.testing.assert_allclose(grad(lambda y: np.sum(d_dx(x, y)))(y), mixed, rtol=1e-14)
    np.testing.assert_array_equal(jvp(lambda x: d_dx(x, y), (x,), (ones,))[1], np.zeros(5))


# --- the other elementwise primitives ----------------------------------------------------

@FEW
@given(shape=shapes(min_dims=1), seed=seeds)
def test_where_sinc_and_nan_to_num(shape, seed):
    rng = np.random.default_rng(seed)
    x, y, mask = normal(rng, shape), nonzero(rng, shape[1:]), rng.random(shape) > 0.5
    fns = [
        lambda x, y: np.where(x > 0, x * y, np.exp(y)),
        lambda x, y: np.where(mask, x, y) + np.sinc(x * y),
        lambda x, y: np.nan_to_num(x / y),
    ]
    for fn in fns:
        assert_tangent(fn, (x, y), (rng.normal(size=shape), rng.normal(size=shape[1:])))
        assert_second_order(contracted(fn, shape, rng), (x, y), rng)


def test_sinc_at_zero_and_nan_to_num_at_infinities():
    _, curvature = jvp(grad(np.sinc), (0.0,), (1.0,))
    assert curvature == pytest.approx(-np.pi**2 / 3, rel=1e-14)
    x = np.array([-np.inf, 1.0, np.nan, np.inf])
    np.testing.assert_array_equal(jvp(np.nan_to_num, (x,), (np.full(4, 2.0),))[1], [0.0, 2.0, 0.0, 0.0])


# --- fused nn primitives -------------------------------------------------------------------

def scaled_normal(rng, shape):
    return 3.0 * rng.normal(size=shape)


@st.composite
def axis_cases(draw, several=False):
    """A shape and an axis of it (or None / a tuple of axes, with `several`)."""
    shape = draw(shapes(min_dims=1))
    nd = len(shape)
    single = st.integers(-nd, nd - 1)
    if several:
        many = st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)
        return shape, draw(st.one_of(st.none(), single, many)), draw(st.booleans()), draw(seeds)
    return shape, draw(single), draw(seeds)


@FEW
@given(case=axis_cases(several=True))
def test_logsumexp(case):
    shape, axis, keepdims, seed = case
    rng = np.random.default_rng(seed)
    x = scaled_normal(rng, shape)
    fn = lambda x: nn.logsumexp(x, axis=axis, keepdims=keepdims)  # noqa: E731
    assert_tangent(fn, (x,), (rng.normal(size=shape),))
    assert_second_order(contracted(fn, np.shape(fn(x)), rng), (x,), rng)


@FEW
@given(case=axis_cases())
def test_log_softmax(case):
    shape, axis, seed = case
    rng = np.random.default_rng(seed)
    x = scaled_normal(rng, shape)
    fn = lambda x: nn.log_softmax(x, axis=axis)  # noqa: E731
    assert_tangent(fn, (x,), (rng.normal(size=shape),))
    assert_second_order(contracted(fn, shape, rng), (x,), rng)


@FEW
@given(shape=shapes(), seed=seeds)
def test_sigmoid_and_relu(shape, seed):
    rng = np.random.default_rng(seed)
    x = scaled_normal(rng, shape)
    x = np.where(np.abs(x) < 0.1, 0.1, x)  # away from relu's kink
    for fn in (nn.sigmoid, lambda x: nn.relu(x) * x):
        assert_tangent(fn, (x,), (rng.normal(size=shape),))
        assert_second_order(contracted(fn, shape, rng), (x,), rng)


def labels_of(kind, rng, n, k):
    classes = rng.integers(0, k, n)
    if kind in ("int64", "int32", "uint8"):
        return classes.astype(kind)
    if kind == "onehot":
        return np.eye(k)[classes]
    if kind == "soft":
        return rng.dirichlet(np.ones(k), size=n)
    return rng.uniform(0, 2, (n, k))  # rows that do not sum to one


def squared(z, labels):
    """loss + loss ** 2: the loss's cotangent depends on z, so softmax_cross_entropy_grad
    gets a traced g."""
    loss = nn.softmax_cross_entropy(z, labels)
    return loss + loss ** 2


LOSSES = {"loss": nn.softmax_cross_entropy, "loss + loss ** 2": squared}
LABEL_KINDS = ["int64", "int32", "uint8", "onehot", "soft", "unnormalized"]


@pytest.mark.parametrize("loss", LOSSES)
@FEW
@given(n=st.integers(1, 4), k=st.integers(1, 4), kind=st.sampled_from(LABEL_KINDS), seed=seeds)
def test_softmax_cross_entropy(loss, n, k, kind, seed):
    f, rng = LOSSES[loss], np.random.default_rng(seed)
    z, labels = scaled_normal(rng, (n, k)), labels_of(kind, rng, n, k)
    v = rng.normal(size=(n, k))
    assert_tangent(lambda z: f(z, labels), (z,), (v,))
    assert_second_order(lambda z: f(z, labels), (z,), rng)
    # reverse over reverse: the gradient of <grad f, v> is the same Hessian-vector product
    first = grad(lambda z: f(z, labels))
    product = jvp(first, (z,), (v,))[1]
    np.testing.assert_allclose(grad(lambda z: np.sum(first(z) * v))(z), product, rtol=1e-10, atol=1e-12)
    if kind in ("onehot", "soft", "unnormalized"):  # float labels carry tangents too
        assert_tangent(f, (z, labels), (v, rng.normal(size=(n, k))))
        assert_second_order(f, (z, labels), rng)


@FEW
@given(shape=shapes(min_dims=1, max_dims=2), broadcast=st.booleans(), seed=seeds)
def test_binary_cross_entropy_with_logits(shape, broadcast, seed):
    rng = np.random.default_rng(seed)
    y_shape = shape[1:] if broadcast else shape
    z, y = scaled_normal(rng, shape), rng.uniform(0, 1, y_shape)
    f = nn.binary_cross_entropy_with_logits
    assert_tangent(f, (z, y), (rng.normal(size=shape), rng.normal(size=y_shape)))
    assert_tangent(lambda z: f(z, y), (z,), (rng.normal(size=shape),))
    assert_second_order(f, (z, y), rng)


BIG = 1000.0
LOGITS = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, BIG], [BIG, BIG, BIG], [-BIG, -BIG, -BIG], [3.0, -BIG, 1.0]])
LABELS = np.array([1, 2, 0, 2, 0])


def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def test_extreme_logits_have_exact_finite_first_and_second_derivatives():
    rng = np.random.default_rng(5)
    v = rng.normal(size=LOGITS.shape)
    p = softmax(LOGITS)
    pv = np.sum(p * v, axis=1, keepdims=True)
    np.testing.assert_allclose(jvp(lambda z: nn.logsumexp(z, axis=1), (LOGITS,), (v,))[1], pv[:, 0], rtol=1e-12)
    np.testing.assert_allclose(jvp(nn.log_softmax, (LOGITS,), (v,))[1], v - pv, rtol=1e-12, atol=1e-12)
    sce = lambda z: nn.softmax_cross_entropy(z, LABELS)  # noqa: E731
    _, tangent = jvp(sce, (LOGITS,), (v,))
    assert tangent == pytest.approx(np.mean(pv[:, 0] - v[np.arange(5), LABELS]), rel=1e-12)
    softmax_hvp = p * (v - pv) / 5  # the Hessian of the mean loss times v
    np.testing.assert_allclose(hvp(sce, (LOGITS,), (v,)), softmax_hvp, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad(lambda z: np.sum(grad(sce)(z) * v))(LOGITS), softmax_hvp, rtol=1e-10, atol=1e-14)
    z, y, t = LOGITS[:, 0], (LABELS > 0).astype(float), v[:, 0]
    s = 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    bce_hvp = hvp(lambda z: nn.binary_cross_entropy_with_logits(z, y), (z,), (t,))
    np.testing.assert_allclose(bce_hvp, s * (1 - s) * t / 5, rtol=1e-12, atol=1e-300)


NN_FLOAT32 = {
    "sigmoid": lambda z: np.sum(nn.sigmoid(z) ** 2),
    "relu": lambda z: np.sum(nn.relu(z) * z),
    "logsumexp": lambda z: np.sum(nn.logsumexp(z, axis=1) ** 2),
    "log_softmax": lambda z: np.sum(nn.log_softmax(z, axis=0) ** 2),
    "sparse cross-entropy": lambda z: nn.softmax_cross_entropy(z, LABELS[:3]),
    "one-hot cross-entropy": lambda z: nn.softmax_cross_entropy(z, np.eye(4, dtype=np.float32)[LABELS[:3]]),
    "bce": lambda z: nn.binary_cross_entropy_with_logits(z, (z > 0).astype(np.float32)),
}


@pytest.mark.parametrize("name", NN_FLOAT32)
def test_nn_float32_tangents_stay_float32(name):
    f, rng = NN_FLOAT32[name], np.random.default_rng(6)
    z, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    z32, v32 = z.astype(np.float32), v.astype(np.float32)
    _, tangent = jvp(f, (z32,), (v32,))
    assert np.result_type(tangent) == np.float32
    np.testing.assert_allclose(tangent, jvp(f, (z,), (v,))[1], rtol=1e-4, atol=1e-5)
    product = hvp(f, (z32,), (v32,))
    assert product.dtype == np.float32
    np.testing.assert_allclose(product, hvp(f, (z,), (v,)), rtol=1e-4, atol=1e-5)

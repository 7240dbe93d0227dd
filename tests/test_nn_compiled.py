"""The fused runtime.nn primitives, compiled: exact values at extreme logits, and
finite-difference agreement on hypothesis-drawn shapes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import compile_step, grad, value_and_grad
from runtime import nn, optim
from runtime.check import check_grad

BIG = 1000.0


# --- exact references, computed stably in the test ----------------------------------

def _lse(z, axis):
    m = np.max(z, axis=axis, keepdims=True)
    return m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def _softmax(z, axis):
    return np.exp(z - _lse(z, axis))


def _sigmoid(z):
    # exact at the extremes: 1/(1+e^1000) underflows to 0, 1/(1+e^-1000) is 1
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


LOGITS = np.array([[BIG, -BIG, 0.0],
                   [-BIG, BIG, BIG],
                   [BIG, BIG, BIG],
                   [-BIG, -BIG, -BIG],
                   [3.0, -BIG, 1.0]])
LABELS = np.array([1, 2, 0, 2, 0])


def via_step(f, z, *batch):
    """f's value and gradient with respect to z from one compiled SGD(lr=1) step."""
    params = {"z": z.copy()}
    step = compile_step(lambda p, *b: f(p["z"], *b), optim.SGD(lr=1.0))
    value = step(params, *batch)
    return value, z - params["z"]


def assert_exact(f, z, expected_value, expected_grad, *batch, atol=1e-12):
    for value, g in (value_and_grad(f)(z, *batch), via_step(f, z, *batch)):
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(g))
        np.testing.assert_allclose(value, expected_value, rtol=1e-13, atol=atol)
        np.testing.assert_allclose(g, expected_grad, rtol=1e-9, atol=atol)
    np.testing.assert_array_equal(grad(f)(z, *batch), value_and_grad(f)(z, *batch)[1])


def test_softmax_cross_entropy_int_labels_at_extreme_logits():
    n = len(LOGITS)
    expected = np.mean(_lse(LOGITS, 1)[:, 0] - LOGITS[np.arange(n), LABELS])
    onehot = np.eye(3)[LABELS]
    g = (_softmax(LOGITS, 1) - onehot) / n
    assert np.isfinite(expected) and expected > 100
    assert_exact(nn.softmax_cross_entropy, LOGITS, expected, g, LABELS, atol=1e-9)


def test_softmax_cross_entropy_onehot_and_soft_labels_at_extreme_logits():
    n = len(LOGITS)
    onehot = np.eye(3)[LABELS]
    expected = -np.sum(onehot * (LOGITS - _lse(LOGITS, 1))) / n
    assert_exact(nn.softmax_cross_entropy, LOGITS, expected, (_softmax(LOGITS, 1) - onehot) / n,
                 onehot, atol=1e-9)
    soft = np.full((n, 3), 1.0 / 3)
    expected = -np.sum(soft * (LOGITS - _lse(LOGITS, 1))) / n
    assert_exact(nn.softmax_cross_entropy, LOGITS, expected, (_softmax(LOGITS, 1) - soft) / n,
                 soft, atol=1e-9)


def test_binary_cross_entropy_with_logits_at_extreme_logits():
    z = np.array([BIG, -BIG, BIG, -BIG, 0.0, 40.0, -40.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    # log(1 + e^z) - y z, exactly: 0, 0, 1000, 1000, log 2, 40 + log1p(e^-40), 40 + ...
    per_example = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - y * z
    np.testing.assert_allclose(per_example[:5], [0.0, 0.0, BIG, BIG, np.log(2)], atol=1e-15)
    assert_exact(nn.binary_cross_entropy_with_logits, z, per_example.mean(),
                 (_sigmoid(z) - y) / len(z), y)
    # a column of logits (N, 1) with float labels (N, 1)
    assert_exact(nn.binary_cross_entropy_with_logits, z[:, None], per_example.mean(),
                 ((_sigmoid(z) - y) / len(z))[:, None], y[:, None])


def test_logsumexp_at_extreme_values():
    w = np.arange(1.0, 6.0)[:, None]

    def total(z):
        return nn.logsumexp(z)

    def weighted_rows(z, w):
        return np.sum(w[:, 0] * nn.logsumexp(z, axis=1))

    def weighted_keepdims(z, w):
        return np.sum(w * nn.logsumexp(z, axis=-1, keepdims=True))

    assert_exact(total, LOGITS, _lse(LOGITS, None).item(), _softmax(LOGITS, None))
    rows = _lse(LOGITS, 1)
    np.testing.assert_allclose(rows[:, 0], [BIG, BIG + np.log(2), BIG + np.log(3), -BIG + np.log(3),
                                            3.0 + np.log1p(np.exp(-2.0))], rtol=1e-15)
    assert_exact(weighted_rows, LOGITS, np.sum(w * rows), w * _softmax(LOGITS, 1), w, atol=1e-9)
    assert_exact(weighted_keepdims, LOGITS, np.sum(w * rows), w * _softmax(LOGITS, 1), w, atol=1e-9)


def test_log_softmax_at_extreme_values():
    w = np.random.default_rng(0).standard_normal(LOGITS.shape)

    def f(z, w):
        return np.sum(w * nn.log_softmax(z, axis=-1))

    def f0(z, w):
        return np.sum(w * nn.log_softmax(z, axis=0))

    logp = LOGITS - _lse(LOGITS, 1)
    assert np.all(np.isfinite(logp))
    g = w - _softmax(LOGITS, 1) * np.sum(w, axis=1, keepdims=True)
    assert_exact(f, LOGITS, np.sum(w * logp), g, w, atol=1e-9)
    logp0 = LOGITS - _lse(LOGITS, 0)
    g0 = w - _softmax(LOGITS, 0) * np.sum(w, axis=0, keepdims=True)
    assert_exact(f0, LOGITS, np.sum(w * logp0), g0, w, atol=1e-9)


def test_sigmoid_at_extreme_values():
    z = np.array([-BIG, -40.0, -1.0, 0.0, 2.0, 40.0, BIG])
    w = np.linspace(-1.0, 2.0, len(z))

    def f(z, w):
        return np.sum(w * nn.sigmoid(z))

    s = _sigmoid(z)
    assert s[0] == 0.0 and s[-1] == 1.0
    assert_exact(f, z, np.sum(w * s), w * s * (1 - s), w, atol=1e-15)


def test_mlp_with_saturated_logits_trains_without_nans():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([4, 5, 3], rng)
    params["W2"] *= 1e4  # logits in the thousands
    x = rng.standard_normal((8, 4))
    y = rng.integers(0, 3, 8)

    def loss(p, x, y):
        return nn.softmax_cross_entropy(nn.mlp(p, x, activation=nn.tanh), y)

    assert np.abs(nn.mlp(params, x, activation=nn.tanh)).max() > 500
    step = compile_step(loss, optim.SGD(lr=1e-4))
    for _ in range(3):
        assert np.isfinite(step(params, x, y))
    for v in params.values():
        assert np.all(np.isfinite(v))


# --- 8. finite differences on drawn shapes ------------------------------------------

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2 ** 32 - 1)


def _arrays(shape, seed, scale=2.0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal(shape), rng


@st.composite
def lse_cases(draw):
    shape = draw(shapes)
    nd = len(shape)
    axis = draw(st.one_of(
        st.none(),
        st.integers(-nd, nd - 1),
        st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple),
    ))
    return shape, axis, draw(st.booleans()), draw(seeds)


@SETTINGS
@given(lse_cases())
def test_logsumexp_matches_finite_differences(case):
    shape, axis, keepdims, seed = case
    x, rng = _arrays(shape, seed)
    out_shape = np.shape(nn.logsumexp(x, axis=axis, keepdims=keepdims))
    w = rng.standard_normal(out_shape)

    def f(x, w):
        return np.sum(w * nn.logsumexp(x, axis=axis, keepdims=keepdims))

    assert check_grad(f, x, w)
    assert check_grad(f, x, w, grad=grad(f)).ok


@st.composite
def axis_cases(draw):
    shape = draw(shapes)
    return shape, draw(st.integers(-len(shape), len(shape) - 1)), draw(seeds)


@SETTINGS
@given(axis_cases())
def test_log_softmax_matches_finite_differences(case):
    shape, axis, seed = case
    x, rng = _arrays(shape, seed)
    w = rng.standard_normal(shape)

    def f(x, w):
        return np.sum(w * nn.log_softmax(x, axis=axis))

    assert check_grad(f, x, w)


@SETTINGS
@given(shapes, seeds)
def test_sigmoid_matches_finite_differences(shape, seed):
    x, rng = _arrays(shape, seed, scale=4.0)
    w = rng.standard_normal(shape)

    def f(x, w):
        return np.sum(w * nn.sigmoid(x))

    assert check_grad(f, x, w)


@SETTINGS
@given(shapes, seeds)
def test_relu_matches_finite_differences(shape, seed):
    x, rng = _arrays(shape, seed)
    x = np.where(x >= 0, x + 0.1, x - 0.1)  # away from the kink at 0
    w = rng.standard_normal(shape)

    def f(x, w):
        return np.sum(w * nn.relu(x) ** 2) + np.sum(nn.relu(x))

    assert check_grad(f, x, w)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 4),
       st.sampled_from(["int", "int32", "uint8", "onehot", "soft", "unnormalized"]), seeds)
def test_softmax_cross_entropy_matches_finite_differences(n, k, kind, seed):
    z, rng = _arrays((n, k), seed, scale=3.0)
    classes = rng.integers(0, k, n)
    if kind.startswith("int") or kind == "uint8":
        labels = classes.astype(kind if kind != "int" else np.int64)
    elif kind == "onehot":
        labels = np.eye(k)[classes]
    elif kind == "soft":
        labels = rng.dirichlet(np.ones(k), size=n)
    else:  # rows that do not sum to one: the gradient is (p * row_sum - labels) / n
        labels = rng.uniform(0, 2, (n, k))

    def f(z, labels):
        return nn.softmax_cross_entropy(z, labels)

    assert check_grad(f, z, labels)
    if labels.dtype.kind == "f":  # the loss is linear in float labels; their gradient too
        assert check_grad(f, z, labels, argnums=(0, 1))
        np.testing.assert_allclose(grad(f, argnums=1)(z, labels), -nn.log_softmax(z, axis=-1) / n,
                                   rtol=1e-12, atol=1e-14)


@SETTINGS
@given(shapes, st.booleans(), seeds)
def test_bce_with_logits_matches_finite_differences(shape, hard, seed):
    shape = shape[:2]
    z, rng = _arrays(shape, seed, scale=3.0)
    y = rng.integers(0, 2, shape).astype(np.float64) if hard else rng.uniform(0, 1, shape)

    def f(z, y):
        return nn.binary_cross_entropy_with_logits(z, y)

    assert check_grad(f, z, y, argnums=(0, 1))
    np.testing.assert_allclose(grad(f)(z, y), (_sigmoid(z) - y) / shape[0], rtol=1e-12, atol=1e-15)


def test_bce_with_logits_broadcast_labels_get_reduced_gradients():
    z, rng = _arrays((3, 4), 7)
    y = rng.uniform(0, 1, 4)

    def f(z, y):
        return nn.binary_cross_entropy_with_logits(z, y)

    g_z, g_y = grad(f, argnums=(0, 1))(z, y)
    assert g_y.shape == (4,)
    np.testing.assert_allclose(g_y, -z.sum(axis=0) / 3, rtol=1e-12)
    np.testing.assert_allclose(g_z, (_sigmoid(z) - y) / 3, rtol=1e-12)
    assert check_grad(f, z, 0.25, argnums=(0, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_gradients_keep_the_input_dtype(dtype):
    z = np.random.default_rng(1).standard_normal((3, 4)).astype(dtype)
    labels = np.array([0, 3, 1])
    fns = [
        lambda z: np.sum(nn.sigmoid(z)),
        lambda z: np.sum(nn.relu(z) * z),
        lambda z: nn.logsumexp(z),
        lambda z: np.sum(nn.logsumexp(z, axis=(0, 1), keepdims=True)),
        lambda z: np.sum(nn.log_softmax(z, axis=0) * z),
        lambda z: nn.softmax_cross_entropy(z, labels),
        lambda z: nn.softmax_cross_entropy(z, np.eye(4, dtype=dtype)[labels]),
        lambda z: nn.binary_cross_entropy_with_logits(z, (z > 0).astype(dtype)),
    ]
    for f in fns:
        value, g = value_and_grad(f)(z)
        assert np.asarray(value).dtype == dtype and g.dtype == dtype
        expected = np.asarray(f(z.astype(np.float64)))
        np.testing.assert_allclose(value, expected, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


def test_second_derivatives_through_sigmoid_and_logsumexp():
    z = np.random.default_rng(2).standard_normal((3, 4))

    def sigmoid_slope_sum(x):
        return np.sum(grad(lambda x: np.sum(nn.sigmoid(x)))(x))

    def lse_grad_dot(x):
        return np.sum(grad(lambda x: nn.logsumexp(x, axis=1).sum())(x) * x)

    s = _sigmoid(z)
    np.testing.assert_allclose(grad(sigmoid_slope_sum)(z), s * (1 - s) * (1 - 2 * s), rtol=1e-10)
    assert check_grad(lse_grad_dot, z)


FUSED_LOSSES = {
    "sigmoid": lambda z, labels: np.sum(nn.sigmoid(z)),
    "relu": lambda z, labels: np.sum(nn.relu(z) * z),
    "logsumexp": lambda z, labels: np.sum(nn.logsumexp(z, axis=1)),
    "log_softmax": lambda z, labels: np.sum(nn.log_softmax(z) * z),
    "softmax_cross_entropy": lambda z, labels: nn.softmax_cross_entropy(z, labels),
    "binary_cross_entropy_with_logits": lambda z, labels: nn.binary_cross_entropy_with_logits(z, z > 0),
}


@pytest.mark.parametrize("name", ["sigmoid", "relu", "softmax_cross_entropy", "binary_cross_entropy_with_logits"])
def test_fused_primitives_appear_as_one_node_in_the_graph(name):
    """The fused primitives are not traced through: each is one node of the graph (its
    stable gradient is its own rule), and the generated code spells it in NumPy alone."""
    z = np.random.default_rng(0).standard_normal((3, 4))
    compiled = value_and_grad(lambda z: FUSED_LOSSES[name](z, np.array([0, 3, 1])))
    ops = [n.op for n in compiled.ir(z).nodes() if n.is_call]
    primitive = "softmax_cross_entropy" if name == "softmax_cross_entropy" else f"runtime.nn.{name}"
    assert ops.count(primitive) == 1, ops
    assert not {"logaddexp", "max", "isfinite"} & set(ops), ops
    assert "runtime" not in compiled.source(z)


@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax_cross_entropy"])
def test_softmax_family_computes_its_exponentials_once(name):
    """logsumexp, log_softmax and softmax cross-entropy are built from one shift and
    one exp, whose result the gradient reuses (no second exp, no runtime call)."""
    z = np.random.default_rng(0).standard_normal((3, 4))
    compiled = value_and_grad(lambda z: FUSED_LOSSES[name](z, np.array([0, 3, 1])))
    ops = [n.op for n in compiled.ir(z).nodes() if n.is_call]
    assert [ops.count(op) for op in ("softmax_shift", "exp")] == [1, 1], ops
    source = compiled.source(z)
    assert source.count("np.exp(") == 1 and "runtime" not in source, source


def test_elu_gradient_away_from_zero():
    x = np.array([-3.0, -0.5, -1e-8, 1e-8, 0.5, 3.0])
    g = grad(lambda x: np.sum(nn.elu(x)))(x)
    np.testing.assert_allclose(g, np.where(x > 0, 1.0, np.exp(x)), rtol=1e-14)
    x = x[np.abs(x) > 0.1]  # elu with alpha != 1 has a kink at 0
    assert check_grad(lambda x: np.sum(nn.elu(x, alpha=0.7) ** 2), x)


def test_elu_gradient_at_zero_is_one():
    x = np.array([0.0, -0.0])
    np.testing.assert_array_equal(grad(lambda x: np.sum(nn.elu(x)))(x), [1.0, 1.0])


def test_softmax_cross_entropy_ir_dtype_matches_the_computed_value():
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    labels = np.eye(4)[[0, 1, 3]]  # float64

    def f(z, labels):
        return nn.softmax_cross_entropy(z, labels)

    value = value_and_grad(f)(z, labels)[0]
    graph = value_and_grad(f).ir(z, labels)
    assert np.asarray(value).dtype == np.asarray(f(z, labels)).dtype == np.float64
    assert graph.node(graph.outputs[0]).dtype == np.asarray(value).dtype


def test_softmax_cross_entropy_with_non_finite_logits_is_never_finite():
    """Its row maximum is not guarded (a careful step's form): a row of -inf or one
    holding +inf makes the loss nan and that row's gradient nan, as in PyTorch and
    JAX; the other rows' gradients are unaffected."""
    z = np.array([[-np.inf, -np.inf, -np.inf], [1.0, np.inf, 0.0], [0.5, 1.0, 2.0]])
    labels = np.array([0, 0, 2])
    with np.errstate(invalid="ignore", divide="ignore"):
        loss, g = value_and_grad(lambda z: nn.softmax_cross_entropy(z, labels))(z)
    assert np.isnan(loss)
    assert np.all(np.isnan(g[:2]))
    p = np.exp(z[2] - z[2].max()) / np.exp(z[2] - z[2].max()).sum()
    np.testing.assert_allclose(g[2], (p - np.eye(3)[2]) / 3, rtol=1e-14)


@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_cross_entropy_gradient_keeps_float32_under_a_float64_cotangent(sparse):
    """A float32 loss scaled by a float64 array makes its cotangent float64; the
    gradient in the float32 logits is still float32 (the rule casts the cotangent),
    and right."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([0, 2, 1, 2]) if sparse else np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
    scale = np.array(3.0)  # a 0-d float64 array: float32 * it is float64

    def f(z):
        return nn.softmax_cross_entropy(z, labels) * scale

    g = grad(f)(z)
    onehot = np.eye(3)[[0, 2, 1, 2]]
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 3.0 * (p - onehot) / 4, rtol=2e-6, atol=1e-7)


def test_constants_made_at_load_are_not_kept_arrays():
    """`rows = np.arange(n)` is made once when the module loads and only read: a
    function with it but no kept arrays takes no lock per call."""
    z, y = np.ones((3, 4)), np.array([0, 1, 2])
    f = value_and_grad(lambda z: nn.softmax_cross_entropy(z, y))
    assert "rows = np.arange(3)" in f.source(z)
    assert not f._lookup((z,), {})[0].generated.keeps_arrays

import math

import numpy as np
import pytest

from runtime import nn

EXTREMES = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])


def stable() -> np.errstate:
    """Raise on overflow, division by zero and invalid operations. Underflow stays
    allowed: 0 is the correctly rounded value of sigmoid(-1000) and friends."""
    return np.errstate(all="raise", under="ignore")


def test_sigmoid_matches_formula_and_is_stable():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(nn.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-13)
    with stable():
        s = nn.sigmoid(EXTREMES)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s[[0, -1]], [0.0, 1.0], atol=1e-300)
    assert s[3] == 0.5


def test_sigmoid_keeps_float32():
    assert nn.sigmoid(np.ones(3, np.float32)).dtype == np.float32


def test_tanh_relu_elu_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(nn.tanh(x), [math.tanh(v) for v in x])
    np.testing.assert_array_equal(nn.relu(x), [0, 0, 0, 0.5, 2])
    expected = [v if v > 0 else 0.7 * (math.exp(v) - 1) for v in x]
    np.testing.assert_allclose(nn.elu(x, alpha=0.7), expected, rtol=1e-15)
    with stable():
        e = nn.elu(EXTREMES)
    np.testing.assert_allclose(e[[0, -1]], [-1.0, 1000.0])


def test_activations_keep_float32():
    x = np.array([-1.0, 2.0], np.float32)
    for fn in (nn.tanh, nn.relu, nn.elu, nn.softmax):
        assert fn(x).dtype == np.float32, fn.__name__


def test_logsumexp_values_axes_and_keepdims():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    direct = lambda axis, keepdims=False: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(nn.logsumexp(x), direct(None))
    assert np.shape(nn.logsumexp(x)) == ()
    for axis in (0, 1, -1, (0, 1)):
        np.testing.assert_allclose(nn.logsumexp(x, axis=axis), direct(axis))
        np.testing.assert_allclose(nn.logsumexp(x, axis=axis, keepdims=True),
                                   direct(axis, keepdims=True))
        assert nn.logsumexp(x, axis=axis, keepdims=True).shape == direct(axis, True).shape


def test_logsumexp_is_stable():
    with stable():
        np.testing.assert_allclose(nn.logsumexp(np.array([1000.0, 1000.0])), 1000 + math.log(2))
        np.testing.assert_allclose(nn.logsumexp(np.array([-1000.0, -1000.0])), -1000 + math.log(2))
        np.testing.assert_allclose(nn.logsumexp(np.array([[1000.0, -1000.0, 0.0]]), axis=1),
                                   [1000.0])
        assert nn.logsumexp(np.array([-np.inf, 0.0])) == 0.0
        assert nn.logsumexp(np.array([np.inf, 0.0])) == np.inf


def test_log_softmax_and_softmax():
    b = np.array([-1.0, 2.7, 0.5])  # the lecture's example
    np.testing.assert_allclose(nn.softmax(b), np.exp(b) / np.exp(b).sum())
    np.testing.assert_allclose(nn.softmax(b), [0.02, 0.88, 0.10], atol=0.01)
    np.testing.assert_allclose(nn.log_softmax(b), b - np.log(np.exp(b).sum()))
    x = np.random.default_rng(1).standard_normal((4, 3))
    np.testing.assert_allclose(nn.softmax(x, axis=0).sum(axis=0), np.ones(3))
    np.testing.assert_allclose(nn.softmax(x, axis=0), np.exp(x) / np.exp(x).sum(0, keepdims=True))
    with stable():
        s = nn.softmax(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(s, [[1.0, 0.0, 0.0]], atol=1e-300)


def test_binary_cross_entropy_by_hand():
    p = np.array([0.9, 0.2, 0.6])
    y = np.array([1.0, 0.0, 0.0])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    assert nn.binary_cross_entropy(p, y) == pytest.approx(expected, rel=1e-14)
    # (N, 1) columns give the same per-example mean
    assert nn.binary_cross_entropy(p[:, None], y[:, None]) == pytest.approx(expected, rel=1e-14)


def test_binary_cross_entropy_with_logits_matches_probabilities_and_is_stable():
    z = np.array([-3.0, -0.2, 0.0, 1.5, 4.0])
    y = np.array([0, 1, 1, 0, 1])
    expected = nn.binary_cross_entropy(1 / (1 + np.exp(-z)), y)
    assert nn.binary_cross_entropy_with_logits(z, y) == pytest.approx(expected, rel=1e-13)
    with stable():
        loss = nn.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0, 1000.0]),
                                                   np.array([1.0, 0.0, 0.0]))
    assert loss == pytest.approx(1000.0 / 3)


def test_quadratic_by_hand():
    yhat = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = np.array([[0.0, 2.0], [1.0, 1.0], [3.0, 1.0]])
    # per example: 0.5*(1 + 0), 0.5*(1 + 4), 0.5*(0 + 4)
    assert nn.quadratic(yhat, y) == pytest.approx((0.5 + 2.5 + 2.0) / 3)
    assert nn.quadratic(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(2.5)


def test_softmax_cross_entropy_int_and_one_hot_labels_agree():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    one_hot = np.eye(4)[labels]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(5), labels]))
    assert nn.softmax_cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-13)
    assert nn.softmax_cross_entropy(logits, one_hot) == pytest.approx(expected, rel=1e-13)
    soft = np.full((5, 4), 0.25)
    assert nn.softmax_cross_entropy(logits, soft) == pytest.approx(-np.mean(np.log(p).sum(1) / 4))
    with stable():
        big = nn.softmax_cross_entropy(np.array([[1000.0, -1000.0]]), np.array([1]))
    assert big == pytest.approx(2000.0)


def test_fused_functions_carry_their_primitive_names():
    for name in ("sigmoid", "logsumexp", "log_softmax", "binary_cross_entropy_with_logits",
                 "softmax_cross_entropy"):
        assert getattr(nn, name).__adjoint_fused_name__ == f"runtime.nn.{name}"


def test_initializers_scale_and_dtype():
    rng = np.random.default_rng(0)
    W = nn.glorot_uniform(rng, 300, 200)
    limit = math.sqrt(6 / 500)
    assert W.shape == (300, 200) and W.dtype == np.float64
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
    assert W.var() == pytest.approx(limit ** 2 / 3, rel=0.03)
    H = nn.he_normal(rng, 400, 300, dtype=np.float32)
    assert H.dtype == np.float32
    assert H.std() == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert abs(H.mean()) < 0.01


def test_init_mlp_structure():
    params = nn.init_mlp([4, 8, 3], np.random.default_rng(0), init="glorot", dtype=np.float32)
    assert list(params) == ["W1", "b1", "W2", "b2"]
    assert [p.shape for p in params.values()] == [(4, 8), (8,), (8, 3), (3,)]
    assert all(p.dtype == np.float32 for p in params.values())
    assert not params["b1"].any() and params["W1"].any()
    again = nn.init_mlp([4, 8, 3], np.random.default_rng(0), init="glorot", dtype=np.float32)
    np.testing.assert_array_equal(params["W2"], again["W2"])
    with pytest.raises(ValueError, match="init must be one of"):
        nn.init_mlp([4, 3], np.random.default_rng(0), init="xavier")


def test_mlp_matches_explicit_layers():
    rng = np.random.default_rng(3)
    params = nn.init_mlp([5, 7, 6, 2], rng)
    params["b2"] = rng.standard_normal(6)
    x = rng.standard_normal((4, 5))
    h1 = np.maximum(x @ params["W1"] + params["b1"], 0)
    h2 = np.maximum(h1 @ params["W2"] + params["b2"], 0)
    np.testing.assert_allclose(nn.mlp(params, x), h2 @ params["W3"] + params["b3"])
    h1 = np.tanh(x @ params["W1"] + params["b1"])
    h2 = np.tanh(h1 @ params["W2"] + params["b2"])
    np.testing.assert_allclose(nn.mlp(params, x, activation=nn.tanh),
                               h2 @ params["W3"] + params["b3"])


def test_losses_keep_float32():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    y01 = (z > 0).astype(np.float32)
    assert nn.softmax_cross_entropy(z, labels).dtype == np.float32
    assert nn.binary_cross_entropy_with_logits(z, y01).dtype == np.float32
    assert nn.binary_cross_entropy(nn.sigmoid(z), y01).dtype == np.float32
    assert nn.quadratic(z, y01).dtype == np.float32
    assert nn.logsumexp(z, axis=1).dtype == np.float32


class Probe:
    """Stands in for a tracer: records the fused calls it is handed."""

    calls: list = []

    def __init__(self, value):
        self.value = value

    @classmethod
    def __adjoint_fused__(cls, name, impl, args, kwargs):
        cls.calls.append((name, len(args), kwargs))
        return impl(*[a.value if isinstance(a, Probe) else a for a in args], **kwargs)


def test_fused_calls_inside_nn_pass_arrays_positionally():
    Probe.calls.clear()
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(nn.softmax(Probe(x), axis=1), np.exp(x) / np.exp(x).sum())
    assert Probe.calls == [("runtime.nn.log_softmax", 1, {"axis": 1})]
    Probe.calls.clear()
    nn.softmax_cross_entropy(Probe(x), np.array([2]))
    assert Probe.calls[0] == ("runtime.nn.softmax_cross_entropy", 2, {})

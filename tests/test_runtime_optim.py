import math

import numpy as np
import pytest

from runtime.optim import SGD, Adam
from runtime.tree import flatten


def params_and_grads(dtype=np.float64):
    params = {"W": np.array([[1.0, -2.0], [0.5, 3.0]], dtype), "b": np.array([0.25, -1.0], dtype)}
    grads = [{"W": np.array([[0.1, 0.2], [-0.3, 0.4]], dtype), "b": np.array([1.0, -0.5], dtype)},
             {"W": np.array([[-0.2, 0.0], [0.6, 0.1]], dtype), "b": np.array([0.5, 0.5], dtype)}]
    return params, grads


def run(opt, params, grads):
    """Two functional updates; returns the final params and state."""
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, g, state)
    return params, state


def test_sgd_plain():
    params, (g1, g2) = params_and_grads()
    new, state = run(SGD(lr=0.1), params, [g1, g2])
    assert state == {}
    for k in params:
        np.testing.assert_allclose(new[k], params[k] - 0.1 * g1[k] - 0.1 * g2[k])


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_weight_decay_two_steps_by_hand(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    params, (g1, g2) = params_and_grads()
    new, state = run(SGD(lr, momentum=mu, nesterov=nesterov, weight_decay=wd), params, [g1, g2])
    for k in params:
        p0 = params[k]
        d1 = g1[k] + wd * p0
        v1 = d1
        p1 = p0 - lr * (d1 + mu * v1 if nesterov else v1)
        d2 = g2[k] + wd * p1
        v2 = mu * v1 + d2
        p2 = p1 - lr * (d2 + mu * v2 if nesterov else v2)
        np.testing.assert_allclose(new[k], p2, rtol=1e-14)
        np.testing.assert_allclose(state["velocity"][k], v2, rtol=1e-14)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, nesterov=True)


def test_adam_two_steps_by_hand_with_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    params, (g1, g2) = params_and_grads()
    new, state = run(Adam(lr, b1, b2, eps), params, [g1, g2])
    assert float(state["t"]) == 2.0
    for k in params:
        m1, v1 = (1 - b1) * g1[k], (1 - b2) * g1[k] ** 2
        # after one step the bias-corrected ratio is g / (|g| + eps): a step of ~lr
        p1 = params[k] - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
        np.testing.assert_allclose(p1, params[k] - lr * np.sign(g1[k]), rtol=1e-6)
        m2 = b1 * m1 + (1 - b1) * g2[k]
        v2 = b2 * v1 + (1 - b2) * g2[k] ** 2
        p2 = p1 - lr * (m2 / (1 - b1 ** 2)) / (np.sqrt(v2 / (1 - b2 ** 2)) + eps)
        np.testing.assert_allclose(new[k], p2, rtol=1e-14)
        np.testing.assert_allclose(state["m"][k], m2, rtol=1e-14)
        np.testing.assert_allclose(state["v"][k], v2, rtol=1e-14)


def test_update_is_pure():
    params, (g1, _) = params_and_grads()
    for opt in (SGD(0.1, momentum=0.9, weight_decay=0.1), Adam(0.1)):
        state = opt.init(params)
        before = flatten((params, g1, state))[0]
        snapshot = [leaf.copy() for leaf in before]
        new, new_state = opt.update(params, g1, state)
        for leaf, copy in zip(flatten((params, g1, state))[0], snapshot, strict=True):
            np.testing.assert_array_equal(leaf, copy)
        after = flatten((new, new_state))[0]
        assert not any(a is b for a in after for b in before)


@pytest.mark.parametrize("opt", [
    SGD(0.1), SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.1), Adam(0.05),
    # NumPy float64 hyperparameters are stored as Python floats, so they do not upcast
    SGD(np.float64(0.1), momentum=np.float64(0.9)), Adam(np.float64(0.05), b1=np.float64(0.8)),
], ids=repr)
def test_float32_stays_float32(opt):
    params, grads = params_and_grads(np.float32)
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(params, g, state)
    assert all(leaf.dtype == np.float32 for leaf in flatten((params, state))[0])


def test_adam_state_layout():
    params, _ = params_and_grads(np.float32)
    state = Adam(0.1).init(params)
    assert list(state) == ["m", "v", "t"]
    assert state["t"].shape == () and state["t"].dtype == np.float32 and state["t"] == 0
    assert all(not leaf.any() for leaf in state["m"].values())
    with pytest.raises(TypeError, match="floating-point"):
        Adam(0.1).init({"W": np.ones(2, dtype=np.int64)})


@pytest.mark.parametrize("opt", [SGD(0.1, momentum=0.5), Adam(0.05)], ids=repr)
def test_apply_writes_update_in_place(opt):
    params, grads = params_and_grads()
    expected = flatten(run(opt, params, grads))[0]
    state = opt.init(params)
    arrays = flatten((params, state))[0]
    for g in grads:
        assert opt.apply(params, g, state) is None
    leaves = flatten((params, state))[0]
    assert all(a is b for a, b in zip(leaves, arrays, strict=True))
    for leaf, value in zip(leaves, expected, strict=True):
        np.testing.assert_allclose(leaf, value, rtol=1e-15)


def test_adam_minimizes_a_quadratic():
    opt = Adam(0.1)
    params = {"x": np.array([3.0, -2.0])}
    state = opt.init(params)
    for _ in range(300):
        opt.apply(params, {"x": 2 * (params["x"] - 1)}, state)
    np.testing.assert_allclose(params["x"], [1.0, 1.0], atol=1e-3)
    assert math.isclose(float(state["t"]), 300)

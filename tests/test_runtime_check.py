import numpy as np
import pytest

from runtime import check
from runtime.check import GradCheck, assert_grad_close, check_grad, numerical_grad


def quiz(x, z):
    """The lecture's differentiation quiz."""
    return np.exp(x * z) + x * z / np.log(x) + np.sin(np.log(x)) / (x * z)


def quiz_grad(x, z):
    a, b = x * z, np.log(x)
    g_a = np.exp(a) + 1 / b - np.sin(b) / a ** 2
    g_b = np.cos(b) / a - a / b ** 2
    return g_a * z + g_b / x, g_a * x


def test_numerical_grad_solves_the_lecture_quiz():
    dx, dz = numerical_grad(quiz, 2.0, 3.0, argnums=(0, 1))
    assert round(dx) == 1208 and round(dz) == 810
    assert dx == pytest.approx(1208.38, abs=0.01) and dz == pytest.approx(809.70, abs=0.01)
    np.testing.assert_allclose((dx, dz), quiz_grad(2.0, 3.0), rtol=1e-7, atol=1e-9)
    assert numerical_grad(quiz, 2.0, 3.0, argnums=1) == pytest.approx(dz)
    assert numerical_grad(quiz, 2.0, 3.0, argnums=-1) == pytest.approx(dz)


def test_numerical_grad_of_arrays_and_pytrees():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([0.5, -1.5])
    f = lambda A, x: np.sum(np.sin(A @ x))
    gA, gx = numerical_grad(f, A, x, argnums=(0, 1))
    c = np.cos(A @ x)
    np.testing.assert_allclose(gA, np.outer(c, x), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gx, A.T @ c, rtol=1e-7, atol=1e-9)

    params = {"W": A, "bs": [x, 2.0]}
    g = lambda p: np.sum(np.tanh(p["W"] @ p["bs"][0])) * p["bs"][1]
    grads = numerical_grad(g, params)
    assert list(grads) == ["W", "bs"] and isinstance(grads["bs"], list)
    t = 1 - np.tanh(A @ x) ** 2
    np.testing.assert_allclose(grads["W"], 2.0 * np.outer(t, x), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(grads["bs"][0], 2.0 * A.T @ t, rtol=1e-7, atol=1e-9)
    assert grads["bs"][1] == pytest.approx(np.sum(np.tanh(A @ x)))


def test_numerical_grad_leaves_inputs_untouched_and_works_in_float64():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    copy = x.copy()
    seen = []

    def f(v):
        seen.append(v.dtype)
        return np.sum(v ** 3)

    g = numerical_grad(f, x)
    np.testing.assert_array_equal(x, copy)
    assert set(seen) == {np.dtype(np.float64)} and g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * copy.astype(np.float64) ** 2, rtol=1e-7, atol=1e-9)


def test_numerical_grad_errors():
    with pytest.raises(ValueError, match="scalar"):
        numerical_grad(lambda x: x * 2, np.ones(2))
    with pytest.raises(ValueError, match="out of range"):
        numerical_grad(quiz, 2.0, 3.0, argnums=2)
    with pytest.raises(TypeError, match="argnums"):
        numerical_grad(quiz, 2.0, 3.0, argnums=[0, 1])


def test_check_grad_passes_for_the_right_gradient():
    result = check_grad(quiz, 2.0, 3.0, argnums=(0, 1), grad=quiz_grad)
    assert result.ok and result
    assert result.max_rel_error < 1e-7
    assert "passed" in str(result)


def mlp_loss(params, x):
    h = np.tanh(x @ params["W1"])
    return np.sum((h @ params["W2"]) ** 2)


def mlp_grad(params, x, bug=None):
    h = np.tanh(x @ params["W1"])
    out = h @ params["W2"]
    g_out = 2 * out
    g_W2 = h.T @ g_out
    g_W1 = x.T @ ((g_out @ params["W2"].T) * (1 - h ** 2))
    if bug is not None:
        g_W1[bug] += 0.5
    return {"W1": g_W1, "W2": g_W2}


def test_check_grad_reports_the_wrong_coordinate():
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 4)), "W2": rng.standard_normal((4, 2))}
    x = rng.standard_normal((5, 3))
    assert check_grad(mlp_loss, params, x, grad=mlp_grad).ok
    result = check_grad(mlp_loss, params, x, grad=lambda p, x: mlp_grad(p, x, bug=(2, 1)))
    assert not result.ok and not result
    assert result.worst == "arg 0 ['W1'][2, 1]"
    right = mlp_grad(params, x)["W1"][2, 1]
    assert result.numeric == pytest.approx(right, rel=1e-7)
    assert result.analytic == pytest.approx(right + 0.5)
    assert result.max_rel_error > 1e-3
    text = str(result)
    assert "FAILED" in text and "arg 0 ['W1'][2, 1]" in text
    with pytest.raises(AssertionError, match=r"arg 0 \['W1'\]\[2, 1\]"):
        assert_grad_close(mlp_loss, params, x, grad=lambda p, x: mlp_grad(p, x, bug=(2, 1)))
    assert_grad_close(mlp_loss, params, x, grad=mlp_grad)


def test_check_grad_names_the_argument_and_flags_nan():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([0.5, -1.5])
    f = lambda A, x: np.sum(np.sin(A @ x))

    def bad(A, x):
        gA = np.outer(np.cos(A @ x), x)
        gx = A.T @ np.cos(A @ x)
        gx[1] = np.nan
        return gA, gx

    result = check_grad(f, A, x, argnums=(0, 1), grad=bad)
    assert not result.ok and result.worst == "arg 1 [1]"


def test_check_grad_tolerances_follow_allclose():
    f = lambda x: np.sum(x ** 2)
    x = np.array([1.0, 1e-9])
    near = lambda x: 2 * x * (1 + 5e-6)
    assert check_grad(f, x, grad=near).ok
    assert not check_grad(f, x, grad=near, rtol=1e-6).ok
    # a tiny gradient is judged against atol, not relative to itself
    assert check_grad(f, x, grad=lambda x: 2 * x + np.array([0.0, 5e-8])).ok


def test_check_grad_rejects_mismatched_structures():
    x = np.ones(3)
    with pytest.raises(ValueError, match="shape"):
        check_grad(lambda x: np.sum(x), x, grad=lambda x: np.ones(2))
    with pytest.raises(ValueError, match="tuple of 2"):
        check_grad(quiz, 2.0, 3.0, argnums=(0, 1), grad=lambda x, z: 1.0)


def test_registered_gradient_provider(monkeypatch):
    monkeypatch.setattr(check, "_provider", None)
    with pytest.raises(TypeError, match="grad="):
        check_grad(quiz, 2.0, 3.0)
    calls = []

    def provider(f, argnums):
        calls.append((f, argnums))
        return quiz_grad

    check.use_gradient(provider)
    result = check_grad(quiz, 2.0, 3.0, argnums=(0, 1))
    assert result.ok and calls == [(quiz, (0, 1))]
    assert isinstance(result, GradCheck)

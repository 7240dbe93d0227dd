"""Forward mode and the derivatives built on both modes: jvp, vjp, linearize,
jacfwd, jacrev, jacobian, hessian, hvp; composition to third order; custom rules
and stop_gradient; check_grads. Values are checked against finite differences
(runtime.check) and against each other (⟨u, J v⟩ both ways)."""
import numpy as np
import pytest

from compiler import (
    GradError, TracingError, UnsupportedError, compile_step, custom_jvp, custom_vjp, grad, hessian, hvp, jacfwd,
    jacobian, jacrev, jit, jvp, linearize, stop_gradient, value_and_grad, vjp,
)
from error_checks import checks_for
from quiz_functions import quiz
from runtime import nn, optim
from runtime.check import check_grads, numerical_grad

QUIZ_DX, QUIZ_DZ = 1208.3812151266095, 809.707479218564


def _numerical_jacobian(f, x, eps=1e-6):
    """d f / d x by centered differences, shaped out.shape + x.shape."""
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(f(x))
    jac = np.empty(out.shape + x.shape)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps
        jac[(...,) + idx] = (np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * eps)
    return jac


def mixing(x):
    """R^3 -> R^2, every output reading every input."""
    return np.stack([np.sum(np.tanh(x) * x[::-1]), np.prod(np.sin(x) + 2)])


def layer(x, W):
    return np.tanh(W @ x)


# --- the quiz by forward mode ---------------------------------------------------------

def test_quiz_by_forward_mode_gives_the_lecture_answer():
    y, dy_dx = jvp(quiz, (2.0, 3.0), (1.0, 0.0))
    _, dy_dz = jvp(quiz, (2.0, 3.0), (0.0, 1.0))
    assert y == pytest.approx(quiz(2.0, 3.0))
    assert dy_dx == pytest.approx(QUIZ_DX, rel=1e-12)
    assert dy_dz == pytest.approx(QUIZ_DZ, rel=1e-12)
    assert [round(dy_dx), round(dy_dz)] == [1208, 810]


def test_quiz_tangent_program_reads_like_dual_numbers():
    source = jvp.source(quiz, (2.0, 3.0), (1.0, 0.0))
    assert "def quiz_jvp(x, z, t_x, t_z):" in source
    assert "t_a = t_x * z + t_z * x" in source
    assert "t_d = t_a * d" in source
    assert "g_" not in source  # tangents are named apart from cotangents


def test_quiz_by_vjp_gives_both_partials_from_one_pullback():
    y, pullback = vjp(quiz, 2.0, 3.0)
    dx, dz = pullback(1.0)
    assert y == pytest.approx(quiz(2.0, 3.0))
    assert (dx, dz) == (pytest.approx(QUIZ_DX), pytest.approx(QUIZ_DZ))
    assert pullback(2.0)[0] == pytest.approx(2 * QUIZ_DX)  # reusable


# --- jvp, vjp, linearize ---------------------------------------------------------------

def test_jvp_and_vjp_agree_on_u_J_v_for_array_outputs():
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=3), rng.normal(size=(4, 3))
    v_x, v_W, u = rng.normal(size=3), rng.normal(size=(4, 3)), rng.normal(size=4)
    out, t = jvp(layer, (x, W), (v_x, v_W))
    np.testing.assert_allclose(out, layer(x, W))
    out2, pullback = vjp(layer, x, W)
    g_x, g_W = pullback(u)
    np.testing.assert_allclose(u @ t, g_x @ v_x + np.sum(g_W * v_W), rtol=1e-12)
    numeric = (layer(x + 1e-6 * v_x, W + 1e-6 * v_W) - layer(x - 1e-6 * v_x, W - 1e-6 * v_W)) / 2e-6
    np.testing.assert_allclose(t, numeric, rtol=1e-6, atol=1e-8)


def test_jvp_takes_pytrees_and_float32_stays_float32():
    params = {"W": np.ones((2, 3), np.float32), "b": np.zeros(2, np.float32)}
    tangents = {"W": np.full((2, 3), 0.5, np.float32), "b": np.ones(2, np.float32)}
    x = np.arange(3, dtype=np.float32)

    def model(p, x):
        return np.tanh(p["W"] @ x + p["b"])

    out, t = jvp(model, (params, x), (tangents, np.zeros(3, np.float32)))
    assert out.dtype == t.dtype == np.float32
    z = params["W"] @ x
    np.testing.assert_allclose(t, (1 - np.tanh(z) ** 2) * (tangents["W"] @ x + 1), rtol=1e-5)


def test_jvp_of_a_function_not_reading_the_seeded_input_is_zero():
    out, t = jvp(lambda x, y: np.sin(y), (np.ones(3), np.ones(2)), (np.ones(3), np.zeros(2)))
    np.testing.assert_array_equal(t, np.zeros(2))


def test_jvp_has_aux():
    out, t, aux = jvp(lambda x: (np.sum(x ** 2), {"n": np.max(x)}), (np.arange(3.0),), (np.ones(3),), has_aux=True)
    assert t == pytest.approx(6.0) and aux["n"] == 2.0


def test_linearize_reuses_one_compiled_tangent_program():
    x = np.array([0.1, 0.7, -0.4])
    out, f_jvp = linearize(np.sin, x)
    np.testing.assert_allclose(out, np.sin(x))
    for v in np.eye(3):
        np.testing.assert_allclose(f_jvp(v), np.cos(x) * v)


def test_vjp_of_a_dict_output_takes_a_dict_cotangent():
    def split(x):
        return {"a": x * 2, "b": np.sum(x ** 2)}

    x = np.arange(3.0)
    out, pullback = vjp(split, x)
    (g,) = pullback({"a": np.ones(3), "b": 1.0})
    np.testing.assert_allclose(g, 2 + 2 * x)


def test_tangent_and_cotangent_of_the_wrong_shape_are_refused_at_the_user_line():
    with pytest.raises(GradError, match=r"test_forward.py:\d+: .*tangent 0 has shape \(2,\)"):
        jvp(np.sin, (np.ones(3),), (np.ones(2),))
    _, pullback = vjp(np.sin, np.ones(3))
    with pytest.raises(GradError, match=r"test_forward.py:\d+: cotangent 0 has shape"):
        pullback(np.ones(4))
    with pytest.raises(GradError, match="must be a tuple"):
        jvp(np.sin, np.ones(3), np.ones(3))


# --- Jacobians, Hessians ---------------------------------------------------------------

@pytest.mark.parametrize("transform", [jacfwd, jacrev, jacobian])
def test_jacobians_match_finite_differences(transform):
    x = np.array([0.3, -1.2, 0.8])
    J = transform(mixing)(x)
    assert J.shape == (2, 3)
    np.testing.assert_allclose(J, _numerical_jacobian(mixing, x), rtol=1e-6, atol=1e-8)


def test_jacobian_shapes_follow_outputs_then_inputs_for_several_arguments():
    rng = np.random.default_rng(1)
    x, W = rng.normal(size=3), rng.normal(size=(4, 3))
    for transform in (jacfwd, jacrev):
        J_x, J_W = transform(layer, argnums=(0, 1))(x, W)
        assert J_x.shape == (4, 3) and J_W.shape == (4, 4, 3)
        np.testing.assert_allclose(J_x, _numerical_jacobian(lambda x: layer(x, W), x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(J_W, _numerical_jacobian(lambda W: layer(x, W), W), rtol=1e-6, atol=1e-8)


def test_jacobian_is_one_compiled_program_choosing_its_mode_from_the_sizes():
    wide = jacobian(lambda x: np.sum(np.sin(x)))   # R^5 -> R: reverse, one pass
    tall = jacobian(lambda x: np.sin(x) * np.arange(6.0))  # R -> R^6... per element: forward
    x5, x1 = np.linspace(0, 1, 5), np.array([0.5])
    assert wide.source(x5).count("np.cos(x)") == 1
    np.testing.assert_allclose(wide(x5), np.cos(x5))
    np.testing.assert_allclose(tall(x1)[:, 0], np.cos(0.5) * np.arange(6.0))
    assert "def <lambda>_jacobian" not in tall.source(x1)


def test_hessian_is_forward_over_reverse_and_matches_finite_differences_of_the_gradient():
    def loss(w):
        return np.sum(np.tanh(w) ** 2 * w[0]) + np.prod(w)

    w = np.array([0.4, -0.3, 0.9])
    H = hessian(loss)(w)
    np.testing.assert_allclose(H, _numerical_jacobian(grad(loss), w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(H, H.T, atol=1e-12)


def test_hvp_of_an_mlp_loss_equals_the_hessian_times_v():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)

    def loss(w):
        W1, W2 = w[:12].reshape(3, 4), w[12:].reshape(4, 2)
        return nn.softmax_cross_entropy(np.tanh(x @ W1) @ W2, y)

    w, v = rng.normal(size=20) * 0.5, rng.normal(size=20)
    Hv = hvp(loss, (w,), (v,))
    np.testing.assert_allclose(Hv, _numerical_jacobian(grad(loss), w) @ v, rtol=1e-5, atol=1e-7)
    assert "np.stack" not in hvp.source(loss, (w,), (v,))  # H v without forming H


# --- composition ---------------------------------------------------------------------------

def test_composition_to_third_order():
    assert grad(grad(grad(np.tanh)))(0.3) == pytest.approx(
        numerical_grad(grad(grad(np.tanh)), 0.3), rel=1e-6)
    x = np.array([0.2, -0.5])
    f = lambda x: np.sum(np.sin(x) ** 3)  # noqa: E731
    np.testing.assert_allclose(jacfwd(jacrev(f))(x), hessian(f)(x), rtol=1e-12)
    third = jacfwd(hessian(f))(x)
    np.testing.assert_allclose(third, _numerical_jacobian(hessian(f), x), rtol=1e-5, atol=1e-7)
    _, t = jvp(grad(grad(np.sin)), (0.4,), (1.0,))
    assert t == pytest.approx(-np.cos(0.4))


def test_grad_of_a_function_that_calls_jvp_and_vjp_inside():
    def directional(x):
        return jvp(lambda x: np.sum(np.exp(x)), (x,), (np.ones_like(x),))[1]

    def pulled(x):
        return np.sum(vjp(np.sin, x)[1](np.ones_like(x))[0] ** 2)

    x = np.array([0.1, 0.6])
    np.testing.assert_allclose(grad(directional)(x), np.exp(x))
    np.testing.assert_allclose(grad(pulled)(x), -2 * np.cos(x) * np.sin(x))


# --- custom rules, stop_gradient ---------------------------------------------------------------

@custom_vjp
def clipped_identity(x):
    return x


clipped_identity.defvjp(lambda x: (x, None), lambda res, g: (np.clip(g, -1.0, 1.0),))


@custom_vjp
def safe_log(x):
    return np.log(x)


safe_log.defvjp(lambda x: (np.log(x), x), lambda x, g: (g / np.maximum(x, 1e-12),))


@custom_jvp
def softplus(x):
    return np.logaddexp(0.0, x)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t * nn.sigmoid(x)


def test_custom_vjp_replaces_the_body_gradient_and_inlines_the_rule():
    x = np.array([-3.0, 0.5, 4.0])
    g = grad(lambda x: np.sum(clipped_identity(x) * np.array([5.0, 0.5, -2.0])))(x)
    np.testing.assert_allclose(g, [1.0, 0.5, -1.0])
    np.testing.assert_allclose(grad(lambda x: np.sum(safe_log(x)))(x[1:]), 1 / x[1:])
    assert "np.maximum(x, 1e-12)" in grad(lambda x: np.sum(safe_log(x))).source(x[1:])
    np.testing.assert_allclose(clipped_identity(x), x)  # untraced: the plain function


def test_custom_jvp_in_both_modes_and_second_order():
    x = np.array([-1.0, 0.3, 2.0])
    f = lambda x: np.sum(softplus(x) ** 2)  # noqa: E731
    expected = 2 * np.logaddexp(0, x) / (1 + np.exp(-x))
    np.testing.assert_allclose(grad(f)(x), expected)
    np.testing.assert_allclose(jvp(f, (x,), (np.ones(3),))[1], np.sum(expected))
    np.testing.assert_allclose(hessian(f)(x), _numerical_jacobian(grad(f), x), rtol=1e-6, atol=1e-8)


def test_custom_rules_in_a_training_step():
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=3)}
    x, y = rng.normal(size=(8, 3)), rng.normal(size=8)

    def loss_fn(p, x, y):
        return np.mean((clipped_identity(softplus(x @ p["w"])) - y) ** 2)

    expected = params["w"] - 0.1 * np.clip(grad(loss_fn)(params, x, y)["w"], -np.inf, np.inf)
    step = compile_step(loss_fn, optim.SGD(lr=0.1))
    step(params, x, y)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)


def test_custom_rule_returning_the_wrong_structure_names_the_rule():
    @custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(GradError, match=r"test_forward.py:\d+: <lambda> must return a tuple with one cotangent per argument \(2\)"):
        grad(lambda x: f(x, 2.0))(1.0)


def test_stop_gradient_is_a_constant_at_every_order():
    x = np.array([0.5, -1.0])
    f = lambda x: np.sum(stop_gradient(x) * x ** 2)  # noqa: E731
    np.testing.assert_allclose(grad(f)(x), 2 * x * x)
    np.testing.assert_allclose(hessian(f)(x), np.diag(2 * x))
    np.testing.assert_allclose(jvp(f, (x,), (np.ones(2),))[1], np.sum(2 * x * x))
    np.testing.assert_allclose(jit(lambda x: stop_gradient(x) + 1)(x), x + 1)


# --- check_grads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fun", [mixing, lambda x: np.tanh(x) @ np.arange(3.0), lambda x: np.sort(x) ** 2])
def test_check_grads_both_modes_to_second_order(fun):
    check_grads(fun, (np.array([0.3, -1.2, 0.8]),), order=2, modes=("fwd", "rev"))


def test_check_grads_reports_a_wrong_rule():
    @custom_vjp
    def wrong(x):
        return np.sin(x)

    wrong.defvjp(lambda x: (np.sin(x), x), lambda x, g: (g * np.sin(x),))  # should be cos
    with pytest.raises(AssertionError, match="reverse"):
        check_grads(lambda x: wrong(x), (np.array([0.3, 0.4]),), order=1, modes=("rev",))


def test_value_and_grad_and_jvp_share_one_forward_value():
    x = np.array([0.2, 0.4])
    value, _ = value_and_grad(lambda x: np.sum(np.exp(x)))(x)
    assert jvp(lambda x: np.sum(np.exp(x)), (x,), (x,))[0] == pytest.approx(value)


# --- jacfwd pushes every basis direction at once (a leading batch axis) -----------------

_M = np.arange(12.0).reshape(3, 4) / 10
_B3 = np.arange(24.0).reshape(2, 3, 4) / 20

BATCHED = {
    "matmul vector @ matrix": lambda x: np.tanh(x[:3] @ _M),
    "matrix @ vector": lambda x: _M @ np.sin(x),
    "vector @ vector": lambda x: np.stack([x @ x, np.sin(x) @ x]),
    "batched matmul": lambda x: np.sum(_B3 @ x, axis=1),
    "outer via broadcasting": lambda x: (x[:, None] * x[None, :]).ravel(),
    "sum and mean with axes": lambda x: np.concatenate([np.sum(np.reshape(x, (2, 2)) ** 2, axis=0),
                                                        np.mean(np.reshape(x, (2, 2)), axis=1, keepdims=True).ravel()]),
    "transpose and broadcast_to": lambda x: (np.broadcast_to(x, (3, 4)).T * _M.T).ravel(),
    "basic and advanced indexing": lambda x: np.concatenate([x[1:3] * x[::-1][:2], x[np.array([0, 0, 3])]]),
    "separated advanced indices": lambda x: np.reshape(x, (2, 2))[np.array([1, 0]), np.array([0, 1])] * np.reshape(x, (2, 2))[np.array([1]), :].ravel()[0],
    "element by element fallback": lambda x: np.sort(x) * np.prod(x) + np.cumsum(x),
    "softmax cross-entropy": lambda x: np.atleast_1d(nn.softmax_cross_entropy(np.reshape(x, (2, 2)), np.array([0, 1]))),
}


@pytest.mark.parametrize("name", sorted(BATCHED))
def test_jacfwd_batched_pass_matches_jacrev_and_finite_differences(name):
    f = BATCHED[name]
    x = np.array([0.3, -0.7, 1.1, 0.5])
    J = jacfwd(f)(x)
    np.testing.assert_allclose(J, jacrev(f)(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(J, _numerical_jacobian(f, x), rtol=1e-6, atol=1e-8)


def test_jacfwd_is_one_batched_tangent_pass_not_a_pass_per_input():
    source = jacfwd(lambda x: np.tanh(_M.T @ np.sin(x))).source(np.ones(3))
    assert source.count("np.cos(x)") == 1 and source.count("@") == 2  # the primal's and the tangents' matmul
    assert "np.stack" not in source


def test_linearize_has_aux():
    x = np.array([0.2, 0.4])
    out, f_jvp, aux = linearize(lambda x: (np.sin(x), {"norm": np.sum(x ** 2)}), x, has_aux=True)
    np.testing.assert_allclose(f_jvp(np.ones(2)), np.cos(x))
    assert aux["norm"] == pytest.approx(0.2)


# --- mistakes: an error of the project's class at the user's line, one compiler frame ---------

_, check = checks_for(__file__)


def test_misuse_of_the_forward_mode_api_is_reported_at_the_users_line():
    with pytest.raises(GradError) as info:
        jvp(np.sin, (np.ones(3),), (np.ones(2),))  # <- tangent shape
    check(info, GradError, "tangent shape", "tangent 0 has shape (2,)")
    with pytest.raises(GradError) as info:
        jvp(np.sin, np.ones(3), np.ones(3))  # <- not a tuple
    check(info, GradError, "not a tuple", "must be a tuple")
    _, pullback = vjp(np.sin, np.ones(3))
    with pytest.raises(GradError) as info:
        pullback({"a": np.ones(3)})  # <- cotangent structure
    check(info, GradError, "cotangent structure", "{'a': x} for x")
    with pytest.raises(GradError) as info:
        jacfwd(np.sin)(np.arange(3))  # <- integer input
    check(info, GradError, "integer input", "only floating inputs")
    with pytest.raises(TracingError) as info:
        hessian(lambda x: np.sum(np.asarray(x)))(np.ones(2))  # <- asarray of traced
    check(info, TracingError, "asarray of traced", "np.asarray")
    with pytest.raises(UnsupportedError) as info:
        jvp(lambda z: np.abs(np.sort(z)), (np.ones(2) + 1j,), (np.ones(2) + 0j,))  # <- complex forward mode
    check(info, UnsupportedError, "complex forward mode", "complex")

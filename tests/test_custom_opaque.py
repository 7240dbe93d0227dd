"""custom_vjp / custom_jvp around code that cannot be traced: the generated code calls
the user's functions when it runs (compiler/custom.py), and the transforms apply the
user's rules; bodies that trace are still traced and inlined."""
import numpy as np
import pytest

from compiler import GradError, UnsupportedError, custom_jvp, custom_vjp, grad, jit, jvp, value_and_grad
from runtime.check import numerical_grad

X = np.array([0.3, -1.1, 0.8])
P = {"scale": np.array([1.5, -0.5, 2.0]), "shift": 0.25}


def simulator(x, params):
    """Leaves NumPy: converts to a list and loops in Python (as C code or a simulator would)."""
    values = [float(v) for v in np.asarray(x)]
    out = [params["scale"][i] * v ** 3 + params["shift"] * v for i, v in enumerate(values)]
    return np.array(out)


@custom_vjp
def simulate(x, params):
    return simulator(x, params)


def simulate_fwd(x, params):
    return simulator(x, params), (np.asarray(x), params)


def simulate_bwd(residuals, g):
    x, params = residuals
    g_x = g * (3 * params["scale"] * x ** 2 + params["shift"])
    return g_x, {"scale": g * x ** 3, "shift": float(np.sum(g * x))}


simulate.defvjp(simulate_fwd, simulate_bwd)


def loss(x, params):
    return np.sum(np.sin(simulate(np.tanh(x), params)) * np.array([1.0, 2.0, -1.0]))


def test_a_custom_vjp_around_untraceable_code_runs_it_and_applies_the_rule():
    value, (g_x, g_p) = value_and_grad(loss, argnums=(0, 1))(X, P)
    assert value == pytest.approx(loss(X, P), rel=1e-12)
    np.testing.assert_allclose(g_x, numerical_grad(lambda x: loss(x, P), X), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(g_p["scale"], numerical_grad(lambda s: loss(X, dict(P, scale=s)), P["scale"]), rtol=1e-7)
    assert g_p["shift"] == pytest.approx(numerical_grad(lambda s: loss(X, dict(P, shift=s)), P["shift"]), rel=1e-7)
    source = grad(loss).source(X, P)
    assert "simulate(" in source and "simulate_vjp(" in source, source


def test_float32_arguments_get_float32_gradients():
    x32 = X.astype(np.float32)
    p32 = {"scale": P["scale"].astype(np.float32), "shift": 0.25}
    g_x = grad(loss)(x32, p32)
    assert g_x.dtype == np.float32
    np.testing.assert_allclose(g_x, grad(loss)(X, P), rtol=1e-4)


def test_a_custom_jvp_around_untraceable_code_in_forward_mode():
    @custom_jvp
    def softplus(x):
        return np.array([np.log1p(np.exp(v)) for v in np.asarray(x).tolist()])

    softplus.defjvp(lambda primals, tangents: (softplus(primals[0]), tangents[0] / (1 + np.exp(-np.asarray(primals[0])))))
    f = lambda x: np.sum(softplus(x * 2.0) ** 2)  # noqa: E731
    tangent = np.array([1.0, -0.5, 2.0])
    value, t = jvp(f, (X,), (tangent,))
    assert value == pytest.approx(f(X))
    assert t == pytest.approx(np.sum(numerical_grad(f, X) * tangent), rel=1e-7)
    np.testing.assert_allclose(jit(f)(X), f(X))
    with pytest.raises(UnsupportedError, match=r"test_custom_opaque.py:\d+: reverse mode through the custom_jvp softplus"):
        grad(f)(X)


def test_forward_mode_through_an_untraceable_custom_vjp_is_refused():
    with pytest.raises(UnsupportedError, match=r"test_custom_opaque.py:\d+: forward mode through the custom_vjp simulate"):
        jvp(lambda x: simulate(x, P), (X,), (X,))


def test_a_traceable_body_is_still_traced_and_inlined():
    @custom_vjp
    def clip_gradient(x):
        return np.sin(x)

    clip_gradient.defvjp(lambda x: (np.sin(x), np.cos(x)), lambda c, g: (np.clip(g * c, -0.1, 0.1),))
    source = value_and_grad(lambda x: np.sum(clip_gradient(x))).source(X)
    code = "\n".join(line.split("#")[0] for line in source.splitlines())  # comments quote the user's line
    assert "np.sin(x)" in code and "np.cos(x)" in code and "clip_gradient(" not in code, source


def test_results_of_another_shape_than_the_first_are_refused_when_they_run():
    size = {"now": 3}

    @custom_vjp
    def unruly(x):
        return np.zeros(size["now"]) + float(np.asarray(x)[0])

    unruly.defvjp(lambda x: (unruly(x), None), lambda r, g: (np.zeros(3),))
    f = jit(lambda x: unruly(x))
    np.testing.assert_allclose(f(X), np.full(3, X[0]))
    size["now"] = 2
    with pytest.raises(GradError, match=r"returned float64\[2\] when the compiled code was built for float64\[3\]"):
        f(X)


def test_a_function_that_fails_on_stand_in_values_says_what_to_do():
    @custom_vjp
    def picky(x):
        values = np.asarray(x)
        if values[0] == 1.0:
            raise ValueError("ones are not allowed")
        return values * 2

    picky.defvjp(lambda x: (picky(x), None), lambda r, g: (2 * g,))
    with pytest.raises(GradError, match=r"running it once on stand-in values \(ones\).*ones are not allowed"):
        grad(lambda x: np.sum(picky(x)))(X)


def test_a_forward_rule_may_call_the_function_itself_as_in_jax():
    @custom_vjp
    def f(x, y):
        return np.sin(x) * y

    f.defvjp(lambda x, y: (f(x, y), (np.cos(x), np.sin(x), y)),
             lambda res, g: (res[0] * g * res[2], np.sum(res[1] * g)))
    loss = lambda x, y: np.sum(f(x, y) ** 2)  # noqa: E731
    g_x, g_y = grad(loss, argnums=(0, 1))(X, 2.0)
    np.testing.assert_allclose(g_x, numerical_grad(lambda x: loss(x, 2.0), X), rtol=1e-7)
    assert g_y == pytest.approx(numerical_grad(lambda y: loss(X, y), 2.0), rel=1e-7)

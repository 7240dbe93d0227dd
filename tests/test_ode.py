"""scipy.integrate.odeint and solve_ivp inside differentiated functions: SciPy's solver
runs when the compiled code runs, and the gradient comes from the adjoint
sensitivity method (compiler/ode.py), checked against finite differences."""
import numpy as np
import pytest
from scipy.integrate import odeint, solve_ivp

from compiler import UnsupportedError, grad, jit, jvp
from runtime.check import numerical_grad

rng = np.random.default_rng(0)
TIMES = np.linspace(0.0, 1.5, 4)
TOL = {"rtol": 1e-10, "atol": 1e-10}


def mlp_dynamics(y, t, params):
    """A small neural ODE's vector field: a 2-8-2 tanh network of the state and time."""
    h = np.tanh(params["W1"] @ y + params["b1"] + t * params["c"])
    return params["W2"] @ h + params["b2"]


PARAMS = {"W1": rng.normal(size=(8, 2)) * 0.5, "b1": rng.normal(size=8) * 0.1, "c": rng.normal(size=8) * 0.1,
          "W2": rng.normal(size=(2, 8)) * 0.5, "b2": rng.normal(size=2) * 0.1}
Y0 = np.array([0.7, -0.4])
TARGET = rng.normal(size=(4, 2))


def neural_ode_loss(params, y0):
    ys = odeint(mlp_dynamics, y0, TIMES, args=(params,), **TOL)
    return np.mean((ys - TARGET) ** 2)


def assert_gradients_match(loss, args, argnums, rtol=1e-5, atol=1e-7):
    gradients = grad(loss, argnums=argnums)(*args)
    for k, gradient in zip(argnums, gradients):
        for key in (gradient if isinstance(gradient, dict) else {None: gradient}):
            def along(value, k=k, key=key):
                moved = list(args)
                moved[k] = dict(args[k], **{key: value}) if key is not None else value
                return loss(*moved)
            here = args[k][key] if key is not None else args[k]
            expected = numerical_grad(along, here, eps=1e-5)
            got = gradient[key] if key is not None else gradient
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"argument {k} {key}")


def test_neural_ode_gradient_in_parameters_and_initial_state():
    np.testing.assert_allclose(jit(neural_ode_loss)(PARAMS, Y0), neural_ode_loss(PARAMS, Y0), rtol=1e-12)
    assert_gradients_match(neural_ode_loss, (PARAMS, Y0), (0, 1))


def test_odeint_with_time_first_dynamics_and_float_arguments():
    def loss(y0, k):
        ys = odeint(lambda t, y, k: -k * y * (1 + np.sin(t)), y0, TIMES, args=(k,), tfirst=True, **TOL)
        return np.sum(ys[-1] ** 2) + np.sum(ys[1])

    assert_gradients_match(loss, (np.array([1.0, 2.0, -0.5]), 0.8), (0, 1))


def test_solve_ivp_with_output_times_after_the_start():
    def loss(y0, a):
        solution = solve_ivp(lambda t, y, a: np.stack([y[1], -a * np.sin(y[0])]), (0.0, 2.0), y0,
                             t_eval=np.array([0.5, 1.2, 2.0]), args=(a,), method="DOP853", **TOL)
        return np.sum(solution.y[0] * np.array([1.0, -2.0, 0.5])) + np.sum(solution.y[1] ** 2)

    assert_gradients_match(loss, (np.array([0.4, 0.1]), 1.3), (0, 1))


def test_the_generated_code_calls_the_solver_and_its_adjoint():
    source = grad(neural_ode_loss).source(PARAMS, Y0)
    assert "odeint(" in source and "odeint_adjoint(" in source


def test_what_cannot_be_differentiated_is_refused_at_the_users_line():
    y0 = np.array([1.0])
    with pytest.raises(UnsupportedError, match=r"test_ode.py:\d+: .*needs t_eval"):
        grad(lambda y0: np.sum(solve_ivp(lambda t, y: -y, (0.0, 1.0), y0).y))(y0)
    with pytest.raises(UnsupportedError, match=r"test_ode.py:\d+: .*constant output times"):
        grad(lambda y0, t: np.sum(odeint(lambda y, t: -y, y0, t)), argnums=0)(y0, TIMES)
    with pytest.raises(UnsupportedError, match=r"full_output"):
        grad(lambda y0: np.sum(odeint(lambda y, t: -y, y0, TIMES, full_output=1)[0]))(y0)
    with pytest.raises(UnsupportedError, match=r"test_ode.py:\d+: forward mode through odeint"):
        jvp(lambda y0: odeint(lambda y, t: -y, y0, TIMES), (y0,), (y0,))
    with pytest.raises(UnsupportedError, match=r"save|standalone"):
        grad(neural_ode_loss).save("/tmp/adjoint_unsaveable.py", PARAMS, Y0)


def test_odeint_with_a_jacobian_of_the_dynamics_and_its_arguments():
    """Dfun (forward solve only) gets the call's arguments, in tfirst order too."""
    for tfirst in (False, True):
        def dynamics(*a):
            (y, t), k = (a[1], a[0]) if tfirst else a[:2], a[2]
            return -k * y

        def jacobian(*a):
            (y, t), k = (a[1], a[0]) if tfirst else a[:2], a[2]
            return -k * np.eye(len(y))

        def loss(y0, k):
            return np.sum(odeint(dynamics, y0, TIMES, args=(k,), Dfun=jacobian, tfirst=tfirst, **TOL) ** 2)

        assert_gradients_match(loss, (np.array([1.0, -0.5]), 0.7), (0, 1))

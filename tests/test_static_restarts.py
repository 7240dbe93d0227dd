"""Ints that a nested transform needs the value of: the enclosing trace learns that
its own int argument is static and restarts once (it used to restart the inner trace
forever), and any restart that would repeat is refused instead of looped on."""
import numpy as np
import pytest

import compiler.api as api
from compiler import grad, hessian, jvp
from compiler.errors import TracingError
from runtime.check import numerical_grad

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 8))
V = rng.standard_normal((1, 8))


def test_nested_grad_of_a_function_needing_a_traced_int():
    """The program of the report: vsplit with a count the outer trace passed as a traced int."""
    g1 = grad(lambda x, n, v: np.sum(np.vsplit(x, n)[0] * v), argnums=(0, 2))

    def K(x, n, v):
        gx, gv = g1(x, n, v)
        return np.sum(gx * x) + np.sum(gv * v)

    for n in (4, 2):  # K(x) = 2 * sum(first block of x * v)
        expected = numerical_grad(lambda x: np.sum(2 * np.vsplit(x, n)[0] * V), X)
        np.testing.assert_allclose(grad(K)(X, n, V), expected, rtol=1e-6, atol=1e-8)


SECOND_ORDER = {
    "hsplit": lambda x, n: np.sum(np.hsplit(x, n)[1] ** 3),
    "split": lambda x, n: np.sum(np.split(x, n, axis=1)[0] ** 3),
    "array_split": lambda x, n: np.sum(np.array_split(x, n, axis=1)[-1] ** 3),
    "pad": lambda x, n: np.sum(np.sin(np.pad(x, n)) * np.pad(x, n)),
    "einsum sublist": lambda x, n: np.sum(np.einsum(x, [0, n]) ** 3),
}


def _loop(x, n):
    for _ in range(n):
        x = np.sin(x) * 1.5
    return np.sum(x ** 2)


SECOND_ORDER["range loop"] = _loop


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_second_order_gradients_of_functions_with_int_arguments(name):
    f = SECOND_ORDER[name]
    g = grad(f)
    outer = grad(lambda x, n: np.sum(g(x, n) ** 2))
    x = X[:2, :4]
    expected = numerical_grad(lambda x: np.sum(numerical_grad(lambda y: f(y, 2), x, eps=1e-4) ** 2), x, eps=1e-4)
    np.testing.assert_allclose(outer(x, 2), expected, rtol=1e-4, atol=1e-6)
    H = hessian(f)(x, 2)
    direction = rng.standard_normal(x.shape)
    _, hv = jvp(lambda x: g(x, 2), (x,), (direction,))
    np.testing.assert_allclose(np.tensordot(H, direction, axes=2), hv, rtol=1e-8, atol=1e-10)


def test_an_int_computed_from_traced_data_is_decided_per_call():
    """The int that the inner function needs comes from the data: the outer trace
    decides it from the call's values (a guard), and each value compiles its path."""
    inner = grad(lambda x, n: np.sum(np.hsplit(x, n)[0] ** 2))

    def outer(x):
        n = (np.sum(x) > 0) + 1
        return np.sum(inner(x, n) * x)

    for x in (X, -X, X):
        n = int(np.sum(x) > 0) + 1
        expected = numerical_grad(lambda x: np.sum(2 * np.where(np.arange(8) < 8 // n, x, 0) * x), x)
        np.testing.assert_allclose(grad(outer)(x), expected, rtol=1e-6, atol=1e-8)
    assert grad(outer).trace_count == 2


def test_a_restart_that_would_repeat_is_refused_not_looped_on(monkeypatch):
    """Should a trace ever ask again for an int that is already static (a bug), the
    compile stops with an error naming the argument instead of restarting forever."""
    real = api.signature
    monkeypatch.setattr(api, "signature", lambda fn, args, kwargs, static_ints=frozenset(): real(fn, args, kwargs))

    def f(x, n):
        return np.sum(np.hsplit(x, n)[0])

    with pytest.raises(TracingError, match=r"needs the value of `n`.*already static"):
        grad(f)(X, 2)

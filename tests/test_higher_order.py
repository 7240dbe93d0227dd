"""Transforms compose: a transformed function called inside another trace applies its
compiled graph to the enclosing trace, so grad(grad(f)) is the transform twice."""
import numpy as np
import pytest

from compiler import grad, jit, value_and_grad
from runtime.check import numerical_grad


def test_third_derivative_of_a_cube():
    f = lambda x: x ** 3  # noqa: E731
    assert grad(grad(f))(2.0) == pytest.approx(12.0)
    assert grad(grad(grad(f)))(2.0) == pytest.approx(6.0)


def test_mixed_second_derivative_of_the_lecture_quiz():
    def quiz(x, z):
        return np.exp(x * z) + x * z / np.log(x) + np.sin(np.log(x)) / (x * z)

    d_dx = grad(quiz, argnums=0)
    d2_dzdx = grad(lambda x, z: d_dx(x, z), argnums=1)
    expected = numerical_grad(lambda x, z: d_dx(x, z), 2.0, 3.0, argnums=1, eps=1e-5)
    assert d2_dzdx(2.0, 3.0) == pytest.approx(expected, rel=1e-6)


def test_second_order_through_repeated_integer_indexing():
    def h(x):
        return np.sum(x[np.array([0, 0, 1])] ** 3)

    x = np.array([1.0, 2.0, 3.0])
    hessian_diag_sum = grad(lambda x: np.sum(grad(h)(x)))
    # grad h = [6 x0^2, 3 x1^2, 0]; its gradient summed over outputs: [12 x0, 6 x1, 0]
    assert np.allclose(hessian_diag_sum(x), [12.0, 12.0, 0.0])


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(0)
    a, x, v = rng.standard_normal((4, 4)), rng.standard_normal(4), rng.standard_normal(4)

    def f(x):
        return np.sum(np.tanh(a @ x) ** 2) + np.sum(np.exp(0.1 * x))

    hvp = grad(lambda x: np.sum(grad(f)(x) * v))
    expected = numerical_grad(lambda x: np.sum(grad(f)(x) * v), x, eps=1e-6)
    assert np.allclose(hvp(x), expected, rtol=1e-6, atol=1e-8)


def test_value_and_grad_and_jit_inside_other_transforms():
    f = lambda x: np.sum(np.sin(x) ** 2)  # noqa: E731
    x = np.linspace(0.1, 1.0, 5)
    from_value = grad(lambda x: value_and_grad(f)(x)[0])(x)
    assert np.allclose(from_value, 2 * np.sin(x) * np.cos(x))
    assert np.allclose(jit(grad(f))(x), 2 * np.sin(x) * np.cos(x))
    assert np.allclose(grad(jit(f))(x), 2 * np.sin(x) * np.cos(x))

"""Minimised programs that once gave wrong answers or crashed, one test each.

Every failure the random-program fuzzer (tests/fuzzing.py) finds ends up here.
"""
import numpy as np

from compiler import grad, jit, value_and_grad


def test_python_float_argument_keeps_float32_work_float32():
    x = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    value, (g_x, g_a) = value_and_grad(lambda x, a: np.sum(x * a), (0, 1))(x, 2.0)
    assert value.dtype == np.float32 and g_x.dtype == np.float32
    np.testing.assert_allclose(value, np.sum(x * 2.0))
    np.testing.assert_allclose(g_x, np.full(3, 2.0))
    np.testing.assert_allclose(g_a, np.sum(x))
    assert jit(lambda x, a: x * a)(x, 2.0).dtype == np.float32


def test_python_float_results_are_numpy_scalars():
    value, g = value_and_grad(lambda a, b: a * b + 1.0)(2.0, 5.0)
    for result in (value, g):
        assert isinstance(result, (np.ndarray, np.generic)) and result.dtype == np.float64
    assert (value, g) == (11.0, 5.0)
    assert isinstance(jit(lambda a: a * 2.0)(3.0), np.float64)
    assert grad(lambda a: np.sum(np.float32([1.0, 2.0]) * a))(2.0) == 3.0


def test_scatter_add_keeps_the_reshape_that_shapes_its_cotangent():
    x = np.array([1.5, -2.0, 0.5])
    y = np.array([2.0, 3.0])
    c = np.array([[1.0, 2.0]])
    cases = [
        (lambda x: np.sum(x[0].reshape(1) * np.ones(1)), np.eye(3)[0]),
        (lambda x: np.sum(np.outer(x[0], y)), np.eye(3)[0] * 5.0),
        (lambda x: np.sum(x[-2].flatten() * 3.0), np.eye(3)[1] * 3.0),
        (lambda x: np.sum(x[np.array([0, 0])].reshape(1, 2) * c), np.eye(3)[0] * 3.0),
    ]
    for f, expected in cases:
        np.testing.assert_allclose(grad(f)(x), expected)
    m = np.arange(12.0).reshape(4, 3)
    idx = np.array([2, 0])
    ones = np.ones((2, 1, 2))
    expected = np.zeros((4, 3))
    expected[np.ix_([0, 2], [0, 2])] = 1.0
    np.testing.assert_allclose(grad(lambda m: np.sum(np.expand_dims(m[::2, idx], -2) * ones))(m), expected)

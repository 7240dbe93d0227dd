"""Indexing: ints, slices (negative steps too), None, Ellipsis and integer arrays
with repeated indices, whose gradients must accumulate; against finite differences
on hypothesis-drawn shapes and indices, plus float32."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad
from helpers import PROPERTY, assert_float32_backward, assert_weighted_vjp, compiled_grad, normal, seeds, shapes


@PROPERTY
@given(data=st.data(), shape=shapes(max_dims=4), seed=seeds)
def test_basic_indexing_vjp(data, shape, seed):
    index = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: x[index] ** 2, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1), seed=seeds)
def test_integer_array_indexing_vjp(data, shape, seed):
    result = data.draw(shapes(min_dims=1, max_dims=2))
    index = data.draw(hnp.integer_array_indices(shape, result_shape=st.just(result)))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.sin(x[index]), x, rng=rng)


@PROPERTY
@given(shape=shapes(min_dims=2, max_dims=3), seed=seeds)
def test_integer_arrays_mixed_with_slices_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    rows = rng.integers(-shape[0], shape[0], size=5)  # five draws: repeats likely
    cols = rng.integers(0, shape[1], size=(2, 5))
    last = rng.integers(0, shape[-1], size=4)
    assert_weighted_vjp(lambda x: x[rows, 1:] ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: x[::-1, cols] * 3.0, x, rng=rng)
    assert_weighted_vjp(lambda x: np.exp(x[rows, cols[0]]), x, rng=rng)
    assert_weighted_vjp(lambda x: x[None, ..., list(last)], x, rng=rng)
    if len(shape) == 3:
        assert_weighted_vjp(lambda x: x[rows, :, rows[::-1] % shape[2]] ** 2, x, rng=rng)


def test_repeated_indices_accumulate():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x[[0, 0, 2, 0, -1]]), x), [3.0, 0.0, 1.0, 1.0])
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    g = compiled_grad(lambda x: np.sum(x[np.array([3, 3, 1, 3])] * w), x)
    np.testing.assert_array_equal(g, [0.0, 100.0, 0.0, 1011.0])
    m = np.arange(6.0).reshape(2, 3)
    g = compiled_grad(lambda m: np.sum(m[[1, 1], [2, 2]] ** 2), m)
    np.testing.assert_array_equal(g, [[0.0, 0.0, 0.0], [0.0, 0.0, 20.0]])


def test_gradient_through_several_reads_of_one_array_accumulates():
    x = np.arange(5.0)

    def f(x):
        return np.sum(x[1:] * x[:-1]) + x[0] * x[-1] + np.sum(x[::-2]) + x[2]

    g = compiled_grad(f, x)
    expected = np.array([1.0 + 4.0 + 1.0, 0.0 + 2.0, 1.0 + 3.0 + 1.0 + 1.0, 2.0 + 4.0, 3.0 + 0.0 + 1.0])
    np.testing.assert_array_equal(g, expected)


def test_index_with_a_boolean_constant_mask():
    x = np.array([[1.0, -2.0], [3.0, 4.0]])
    mask = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(compiled_grad(lambda x: np.sum(x[mask] ** 2), x), [[2.0, 0.0], [0.0, 8.0]])


def test_integer_index_arrays_traced_as_arguments():
    x = np.array([1.0, 2.0, 3.0])
    i = np.array([2, 2, 0])
    g = grad(lambda x, i: np.sum(x[i] * np.array([1.0, 2.0, 4.0])))
    np.testing.assert_array_equal(g(x, i), [4.0, 0.0, 3.0])
    np.testing.assert_array_equal(g(x, np.array([1, 1, 1])), [0.0, 7.0, 0.0])


def test_iterating_over_a_traced_array():
    x = np.arange(6.0).reshape(3, 2)
    g = compiled_grad(lambda x: sum(np.sum(row * k) for k, row in enumerate(x)), x)
    np.testing.assert_array_equal(g, [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])


def test_float32_indexing_backward_stays_float32():
    x = np.random.default_rng(3).normal(size=(3, 4))
    assert_float32_backward(lambda x: np.sum(x[[0, 0, 2], 1:] ** 2) + np.sum(x[::-1, None, 2]) + x[1, -1], x)
    assert_float32_backward(lambda x: x[1, 2], x)

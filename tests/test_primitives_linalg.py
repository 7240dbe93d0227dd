"""Matrix products: np.dot, np.matmul / @ for 1-D, 2-D and batched operands with
broadcasting batch dimensions, np.outer; against finite differences on
hypothesis-drawn shapes, plus float32."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad
from helpers import PROPERTY, assert_float32_backward, assert_weighted_vjp, compiled_grad, matmul_shapes, normal, seeds, shapes

sides = st.integers(1, 4)


@PROPERTY
@given(shapes_=matmul_shapes(), seed=seeds)
def test_matmul_vjp(shapes_, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shapes_[0]), normal(rng, shapes_[1])
    assert_weighted_vjp(lambda a, b: a @ b, a, b, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda a, b: np.matmul(np.tanh(a), b) ** 2, a, b, rng=rng, argnums=(0, 1))


@st.composite
def dot_shapes(draw):
    m, k, n = draw(sides), draw(sides), draw(sides)
    return draw(st.sampled_from([((k,), (k,)), ((m, k), (k,)), ((k,), (k, n)), ((m, k), (k, n)), ((), (m, k)), ((k,), ())]))


@PROPERTY
@given(shapes_=dot_shapes(), seed=seeds)
def test_dot_vjp(shapes_, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shapes_[0]), normal(rng, shapes_[1])
    assert_weighted_vjp(np.dot, a, b, rng=rng, argnums=(0, 1))
    if a.ndim:
        assert_weighted_vjp(lambda a, b: a.dot(b) * 2.0, a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(a_shape=shapes(), b_shape=shapes(), seed=seeds)
def test_outer_vjp(a_shape, b_shape, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    assert_weighted_vjp(np.outer, a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(seed=seeds, batch=sides, hidden=sides)
def test_dense_layer_with_constant_weights_and_bias(seed, batch, hidden):
    rng = np.random.default_rng(seed)
    x, w, b = normal(rng, (batch, 3)), normal(rng, (3, hidden)), normal(rng, (hidden,))

    def layer(x, w, b):
        return np.tanh(x @ w + b) @ np.ones((hidden, 2))

    assert_weighted_vjp(layer, x, w, b, rng=rng, argnums=(0, 1, 2))


def test_matmul_gradients_use_transposed_views():
    x, w = np.ones((4, 3)), np.ones((3, 2))
    src = grad(lambda x, w: np.sum(x @ w), argnums=(0, 1)).source(x, w)
    assert "@ w.T" in src and "x.T @" in src, src


@pytest.mark.parametrize("shapes_", [((3,), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (2, 3, 4))])
def test_float32_linalg_backward_stays_float32(shapes_):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=shapes_[0]), rng.normal(size=shapes_[1])
    assert_float32_backward(lambda a, b: np.sum((a @ b) ** 2), a, b, argnums=(0, 1))
    assert_float32_backward(lambda a, b: np.sum(np.outer(a, b)), a, b, argnums=(0, 1))


def test_vector_dot_vector_scalar_output():
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    ga, gb = compiled_grad(lambda a, b: a @ b, a, b, argnums=(0, 1))
    np.testing.assert_array_equal(ga, b)
    np.testing.assert_array_equal(gb, a)

"""Data movement: reshape (with -1), transpose (with axes), swapaxes, expand_dims,
squeeze, broadcast_to, concatenate, stack, astype, .T and the array methods; each
VJP against finite differences on hypothesis-drawn shapes, and float32 stays float32."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import ShapeError, grad
from helpers import (
    PROPERTY, assert_float32_backward, assert_weighted_vjp, compiled_grad, normal, seeds, shapes,
)


@st.composite
def reshape_target(draw, size):
    """A shape with `size` elements, maybe with one -1."""
    dims, rest = [], size
    while rest > 1 and len(dims) < 3:
        d = draw(st.sampled_from([k for k in range(1, rest + 1) if rest % k == 0]))
        dims.append(d)
        rest //= d
    dims.append(rest)
    dims = draw(st.permutations(dims + [1] * draw(st.integers(0, 1))))
    if draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


@PROPERTY
@given(data=st.data(), shape=shapes(), seed=seeds)
def test_reshape_vjp(data, shape, seed):
    target = data.draw(reshape_target(int(np.prod(shape))))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.reshape(x, target) ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: np.sin(x.reshape(target)), x, rng=rng)
    assert_weighted_vjp(lambda x: np.ravel(x) * 3.0 + x.reshape(-1), x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=4), seed=seeds)
def test_transpose_and_swapaxes_vjp(data, shape, seed):
    ndim = len(shape)
    perm = data.draw(st.permutations(range(ndim)))
    perm = tuple(p - ndim if data.draw(st.booleans()) else p for p in perm)  # negative axes too
    a, b = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.exp(np.transpose(x, perm)), x, rng=rng)
    assert_weighted_vjp(lambda x: x.transpose(perm) * 2.0 + np.transpose(x).T.transpose(perm), x, rng=rng)
    assert_weighted_vjp(lambda x: x.T ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: np.swapaxes(x, a, b) ** 3 + x.swapaxes(b, a), x, rng=rng)
    if ndim > 1:
        assert_weighted_vjp(lambda x: x.transpose(*perm) * 0.5, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(max_dims=3), seed=seeds)
def test_expand_dims_and_squeeze_vjp(data, shape, seed):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim - 1, ndim))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.expand_dims(x, axis) ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: np.expand_dims(x, (0, -1)) * x[..., None], x, rng=rng)
    ones = tuple(i for i, d in enumerate(shape) if d == 1)
    assert_weighted_vjp(lambda x: np.squeeze(x) ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: np.squeeze(np.expand_dims(x, axis), axis=axis), x, rng=rng)
    if ones:
        drop = data.draw(st.sampled_from(ones))
        assert_weighted_vjp(lambda x: np.sin(x.squeeze(drop - ndim)), x, rng=rng)


@st.composite
def broadcast_source_and_target(draw):
    """A source shape and a shape it broadcasts to: size-1 dims grow, new leading dims appear."""
    source = draw(shapes(max_dims=3))
    grown = tuple(draw(st.integers(1, 3)) if d == 1 else d for d in source)
    leading = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    return source, leading + grown


@PROPERTY
@given(shapes_=broadcast_source_and_target(), seed=seeds)
def test_broadcast_to_vjp(shapes_, seed):
    source, target = shapes_
    rng = np.random.default_rng(seed)
    x = normal(rng, source)
    assert_weighted_vjp(lambda x: np.broadcast_to(x, target) ** 2, x, rng=rng)
    assert_weighted_vjp(lambda x: np.broadcast_to(np.exp(x), target) * np.broadcast_to(x, target), x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1), count=st.integers(1, 3), seed=seeds)
def test_concatenate_vjp(data, shape, count, seed):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(normal(rng, tuple(s)))
    const = np.ones(shape)

    def f(*xs):
        return np.concatenate([x * (k + 1.0) for k, x in enumerate(xs)] + [const], axis=axis) ** 2

    assert_weighted_vjp(f, *parts, rng=rng, argnums=tuple(range(count)))
    assert_weighted_vjp(lambda x: np.concatenate([x, np.sin(x)], axis=None), parts[0], rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(), count=st.integers(1, 3), seed=seeds)
def test_stack_vjp(data, shape, count, seed):
    ndim = len(shape)
    axis = data.draw(st.integers(-ndim - 1, ndim))
    rng = np.random.default_rng(seed)
    parts = [normal(rng, shape) for _ in range(count)]

    def f(*xs):
        return np.stack([np.tanh(x) for x in xs] + [xs[0] * 2.0], axis=axis)

    assert_weighted_vjp(f, *parts, rng=rng, argnums=tuple(range(count)))


def test_astype_float64_to_float32_and_back_casts_the_cotangent():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    g = compiled_grad(lambda x: np.sum(x.astype(np.float32).astype(np.float64) * w), x)
    np.testing.assert_array_equal(g, w.astype(np.float32).astype(np.float64))
    g = compiled_grad(lambda x: np.sum(x.astype(np.float32) * w.astype(np.float32)).astype(np.float64), x)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, w.astype(np.float32).astype(np.float64))


def test_astype_float32_to_float64_gives_a_float32_gradient():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3))
    g = compiled_grad(lambda x: np.sum(np.square(x.astype(np.float64)) * w), x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, (2 * x.astype(np.float64) * w).astype(np.float32), rtol=1e-6)
    g = compiled_grad(lambda x: np.mean(x.astype(np.float64)), np.ones(4, np.float32))
    np.testing.assert_array_equal(g, np.full(4, 0.25, np.float32))


def test_astype_to_the_same_dtype_is_a_no_op():
    x = np.arange(3.0)
    g = grad(lambda x: np.sum(x.astype(np.float64) * 2.0))
    np.testing.assert_array_equal(g(x), [2.0, 2.0, 2.0])
    code = [line.split("#")[0] for line in g.source(x).splitlines()]
    assert not any("astype" in line for line in code)


def test_float32_shape_ops_backward_stays_float32():
    x = np.random.default_rng(2).normal(size=(2, 3, 4))

    def f(x):
        y = np.concatenate([x.T.reshape(-1), x[0].ravel()]) ** 2
        z = np.stack([x, np.swapaxes(x, 0, 0)], axis=-1).sum(axis=-1)
        w = np.broadcast_to(np.expand_dims(x[:, 0], 0), (5, 2, 4))
        return np.sum(y) + np.sum(z * x) + np.sum(w ** 3) + np.sum(np.squeeze(x[:1]) * 2.0)

    assert_float32_backward(f, x)


@pytest.mark.parametrize("fn", [
    lambda x: np.transpose(x, (0, 5)), lambda x: np.transpose(x, (0, 0)), lambda x: np.swapaxes(x, 0, 2),
    lambda x: np.sum(x, axis=(0, -2)), lambda x: np.sum(x, axis=2), lambda x: np.expand_dims(x, 4),
    lambda x: np.concatenate([x[0, 0], x[0, 1]]), lambda x: np.stack([x, x], axis=-4), lambda x: x.sum(axis=1.0),
])
def test_bad_axes_are_shape_errors_at_the_users_line(fn):
    with pytest.raises(ShapeError, match=r"test_primitives_shape.py:\d+"):
        grad(lambda x: np.sum(fn(x)))(np.ones((2, 3)))

"""NumPy's shape functions on traced values: copy, the splits, tile, repeat, pad (every
mode), the flips, rot90, roll, moveaxis, rollaxis, atleast_*d, the stacks, append,
diff, take, take_along_axis, select and convolve; len() and iteration. Each forward
result against eager NumPy, each VJP against finite differences on hypothesis-drawn
shapes, float32 stays float32, and the generated code reads as NumPy."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import ShapeError, TracingError, UnsupportedError, grad, jit
from helpers import PROPERTY, assert_float32_backward, assert_vjp, normal, seeds, shapes, weighted


def assert_like_numpy(fn, *args, rng, argnums=0):
    """The compiled forward value equals NumPy's (shape and dtype included), and the
    VJP of the output contracted with random weights matches finite differences."""
    expected = fn(*args)
    got = jit(fn)(*args)
    for want, have in zip(*(r if isinstance(r, (list, tuple)) else [r] for r in (expected, got))):
        assert np.shape(have) == np.shape(want) and np.result_type(have) == np.result_type(want)
        np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-12)
    assert_vjp(weighted(lambda *a: _stacked(fn(*a)), args, rng), *args, argnums=argnums)


def _stacked(result):
    """A list of pieces as one flat array, so `weighted` gives each entry its own weight."""
    if isinstance(result, (list, tuple)):
        return np.concatenate([np.ravel(r) for r in result])
    return result


def axis_of(data, ndim):
    return data.draw(st.integers(-ndim, ndim - 1))


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1), seed=seeds)
def test_splits(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    axis = axis_of(data, len(shape))
    length = shape[axis]
    sections = data.draw(st.sampled_from([d for d in range(1, length + 1) if length % d == 0]))
    points = sorted(data.draw(st.lists(st.integers(-length, length + 1), max_size=3)))
    assert_like_numpy(lambda x: np.split(np.sin(x), sections, axis=axis), x, rng=rng)
    pieces = data.draw(st.integers(1, 5))
    assert_like_numpy(lambda x: np.array_split(x, pieces, axis), x, rng=rng)
    assert_like_numpy(lambda x: np.array_split(x * x, points, axis=axis), x, rng=rng)
    assert_like_numpy(lambda x: np.hsplit(x, [1]), x, rng=rng)
    if len(shape) >= 2:
        assert_like_numpy(lambda x: np.vsplit(x, [1, 1]), x, rng=rng)
    if len(shape) >= 3:
        assert_like_numpy(lambda x: np.dsplit(x, shape[2]), x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(), seed=seeds)
def test_tile_and_repeat(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4)))
    assert_like_numpy(lambda x: np.tile(x, reps) ** 2, x, rng=rng)
    times = data.draw(st.integers(0, 3))
    assert_like_numpy(lambda x: np.tile(np.exp(x), times + 1), x, rng=rng)
    assert_like_numpy(lambda x: np.repeat(x, times) * x.sum(), x, rng=rng)
    if shape:
        axis = axis_of(data, len(shape))
        counts = data.draw(st.lists(st.integers(0, 3), min_size=shape[axis], max_size=shape[axis]))
        assert_like_numpy(lambda x: np.repeat(x, counts, axis=axis) ** 2, x, rng=rng)
        assert_like_numpy(lambda x: np.sin(x.repeat(2, axis)), x, rng=rng)
    counts = data.draw(st.lists(st.integers(0, 2), min_size=x.size, max_size=x.size))
    assert_like_numpy(lambda x: np.repeat(x, counts) ** 3, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(), seed=seeds,
       mode=st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))
def test_pad(data, shape, seed, mode):
    """Widths up to 6 on axes of up to 4 reflect and wrap more than once."""
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    widths = [tuple(data.draw(st.lists(st.integers(0, 6), min_size=2, max_size=2))) for _ in shape] or 0
    assert_like_numpy(lambda x: np.pad(x, widths, mode=mode) ** 2, x, rng=rng)
    width = data.draw(st.integers(0, 3))
    assert_like_numpy(lambda x: np.pad(np.sin(x), width, mode), x, rng=rng)
    assert_like_numpy(lambda x: np.pad(x, (1, 2), constant_values=(0.5, -1.0)) * x.sum(), x, rng=rng)
    if shape:
        assert_like_numpy(lambda x: np.pad(x, {-1: (2, 1)}, mode=mode) ** 2, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=4), seed=seeds)
def test_flips_rotations_and_axis_moves(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    ndim = len(shape)
    axis, other = axis_of(data, ndim), axis_of(data, ndim)
    assert_like_numpy(lambda x: np.flip(x) ** 2 + np.flipud(x), x, rng=rng)
    assert_like_numpy(lambda x: np.flip(np.exp(x), axis) * np.flip(x, (axis,)), x, rng=rng)
    assert_like_numpy(lambda x: np.moveaxis(x, axis, other) ** 2, x, rng=rng)
    start = data.draw(st.integers(-ndim, ndim))
    assert_like_numpy(lambda x: np.rollaxis(x, axis, start) ** 2, x, rng=rng)
    if ndim >= 2:
        k = data.draw(st.integers(-3, 5))
        axes = tuple(data.draw(st.permutations(range(ndim)))[:2])
        assert_like_numpy(lambda x: np.fliplr(x) * np.rot90(x, 2), x, rng=rng)
        assert_like_numpy(lambda x: np.sin(np.rot90(x, k, axes=axes)), x, rng=rng)
        assert_like_numpy(lambda x: np.moveaxis(x, (0, -1), (-1, 0)) ** 2, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(), seed=seeds)
def test_roll(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    shift = data.draw(st.integers(-9, 9))
    assert_like_numpy(lambda x: np.roll(x, shift) ** 2, x, rng=rng)
    if shape:
        ndim = len(shape)
        rolled = tuple(data.draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=3)))
        shifts = tuple(data.draw(st.lists(st.integers(-5, 5), min_size=len(rolled), max_size=len(rolled))))
        assert_like_numpy(lambda x: np.roll(np.sin(x), shifts, axis=rolled) * x, x, rng=rng)
        assert_like_numpy(lambda x: np.roll(x, 2, axis=rolled) ** 2, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(max_dims=4), seed=seeds)
def test_atleast_and_stacks(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_like_numpy(lambda x: np.atleast_1d(x) ** 2, x, rng=rng)
    assert_like_numpy(lambda x: np.atleast_2d(np.sin(x), x), x, rng=rng)
    assert_like_numpy(lambda x: np.atleast_3d(x) * 2.0, x, rng=rng)
    assert_like_numpy(lambda x: np.vstack([x, np.exp(x)]), x, rng=rng)
    assert_like_numpy(lambda x: np.hstack((x, x ** 2, x)), x, rng=rng)
    assert_like_numpy(lambda x: np.dstack([x, np.cos(x)]), x, rng=rng)
    assert_like_numpy(lambda x: np.append(x, x ** 2), x, rng=rng)
    assert_like_numpy(lambda x: np.hstack([np.ravel(x), [1.0, 2.0]]) ** 2, x, rng=rng)
    if len(shape) <= 2:
        assert_like_numpy(lambda x: np.column_stack([x, x ** 2, np.ones_like(x)]), x, rng=rng)
    if shape:
        axis = axis_of(data, len(shape))
        assert_like_numpy(lambda x: np.append(np.sin(x), x, axis=axis), x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1), seed=seeds)
def test_diff(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    axis = axis_of(data, len(shape))
    n = data.draw(st.integers(0, shape[axis] + 1))
    assert_like_numpy(lambda x: np.diff(x, n, axis=axis) ** 2, x, rng=rng)
    assert_like_numpy(lambda x: np.diff(np.exp(x)) ** 2, x, rng=rng)
    edge_shape = list(shape)
    edge_shape[axis] = 2
    edge = np.ones(edge_shape)
    assert_like_numpy(lambda x: np.diff(x, 2, axis=axis, prepend=0.5, append=edge) ** 2, x, rng=rng)


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1), seed=seeds)
def test_take_and_take_along_axis_accumulate_repeated_indices(data, shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    axis = axis_of(data, len(shape))
    length = shape[axis]
    picks = np.array(data.draw(st.lists(st.integers(-length, length - 1), min_size=1, max_size=6)))
    assert_like_numpy(lambda x: np.take(x, picks, axis=axis) ** 2, x, rng=rng)
    assert_like_numpy(lambda x: x.take(picks * 3, mode="wrap") ** 2, x, rng=rng)
    assert_like_numpy(lambda x: np.take(x, picks + 2, axis, mode="clip") ** 2, x, rng=rng)
    assert_like_numpy(lambda x: np.sin(np.take(x, int(picks[0]), axis=axis)), x, rng=rng)
    assert_like_numpy(lambda x, i: np.take(x, i, axis=axis) ** 2, x, picks, rng=rng)
    index_shape = tuple(data.draw(st.sampled_from([1, n])) for n in shape)
    taken = list(index_shape)
    taken[axis] = data.draw(st.integers(1, 5))
    indices = rng.integers(-length, length, size=tuple(taken))
    assert_like_numpy(lambda x, i: np.take_along_axis(x, i, axis=axis) ** 2, x, indices, rng=rng)
    assert_like_numpy(lambda x: np.take_along_axis(np.exp(x), indices, axis) * 2.0, x, rng=rng)
    flat = rng.integers(0, x.size, size=7)
    assert_like_numpy(lambda x: np.take_along_axis(x, flat, axis=None) ** 2, x, rng=rng)


@PROPERTY
@given(shapes_=st.tuples(shapes(), shapes()), seed=seeds)
def test_select(shapes_, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shapes_[0])
    y = normal(rng, shapes_[0])
    assert_like_numpy(lambda x, y: np.select([x > 0.5, y < 0], [x ** 2, x * y]), x, y, rng=rng, argnums=(0, 1))
    assert_like_numpy(lambda x: np.select([x > 0, x < -1, x < 0], [np.sin(x), 2.0, x], default=x ** 3), x, rng=rng)


@PROPERTY
@given(lengths=st.tuples(st.integers(1, 6), st.integers(1, 6)), seed=seeds,
       mode=st.sampled_from(["full", "same", "valid"]))
def test_convolve(lengths, seed, mode):
    rng = np.random.default_rng(seed)
    a, v = normal(rng, lengths[0]), normal(rng, lengths[1])
    assert_like_numpy(lambda a, v: np.convolve(a, v, mode=mode) ** 2, a, v, rng=rng, argnums=(0, 1))
    assert_like_numpy(lambda a: np.convolve(np.sin(a), [1.0, -2.0, 0.5], mode), a, rng=rng)


def test_copy_len_and_iteration():
    rng = np.random.default_rng(0)
    x = normal(rng, (3, 2))
    assert_like_numpy(lambda x: np.copy(x) * x, x, rng=rng)
    assert_like_numpy(lambda x: np.stack([row * k for k, row in enumerate(x)]) * len(x), x, rng=rng)
    assert_like_numpy(lambda x: sum(np.sin(row) for row in x.T) / len(x.T), x, rng=rng)


def test_second_order_through_take_along_axis_pad_and_convolve():
    rng = np.random.default_rng(3)
    x, w = normal(rng, (3, 4)), normal(rng, (3, 4))
    indices = np.array([[0, 3, 3], [1, 1, 0], [2, 0, 0]])

    def f(x):
        taken = np.take_along_axis(x, indices, axis=1)
        padded = np.pad(x, ((1, 2), (3, 1)), mode="symmetric")
        return np.sum(taken ** 3) + np.sum(padded ** 3) + np.sum(np.convolve(x[0], x[1], "same") ** 3)

    assert_vjp(lambda x: np.sum(grad(f)(x) * w), x)


def test_float32_in_float32_out():
    x = np.random.default_rng(1).normal(size=(3, 4))

    def f(x):
        idx = np.array([[0, 0, 2, 1]])
        parts = [
            np.tile(x, (2, 1)), np.repeat(x, [1, 2, 0], axis=0), np.pad(x, 2, mode="reflect"),
            np.pad(x, ((0, 1), (2, 0)), constant_values=1.5), np.roll(x, 1, axis=1), np.rot90(x),
            np.take_along_axis(x, idx, axis=0), np.take(x, [3, 3, 0], axis=1), np.diff(x, prepend=x[:, :1]),
            np.convolve(x[0], x[1], mode="same"), np.select([x > 0], [x], 0.5), np.column_stack(np.split(x, 2, axis=1)),
        ]
        return sum(np.sum(np.sin(p)) for p in parts)

    assert_float32_backward(f, x)
    assert jit(f)(x.astype(np.float32)).dtype == np.float32


def _code(fn, *args) -> str:
    return "\n".join(line.split("#")[0].strip() for line in grad(fn).source(*args).splitlines())


def test_generated_code_is_numpy():
    x = np.ones((3, 4))
    code = _code(lambda x: np.sum(np.pad(x[0], (2, 1), mode="edge") ** 2), x)
    assert "np.pad(x[0], ((2, 1),), mode='edge')" in code
    assert "= g_pad[2:6] + np.pad(g_pad[:2].sum(keepdims=True), ((0, 3),)) + np.pad(g_pad[6:], ((3, 0),))" in code
    code = _code(lambda x: np.sum(np.tile(x, 2) ** 2) + np.sum(np.roll(x, -1, axis=0) * x), x)
    assert "np.tile(x, 2)" in code and "np.roll(x, -1, axis=0)" in code
    assert "np.reshape(g_tile, (3, 2, 4)).sum(axis=1)" in code
    code = _code(lambda x, i: np.sum(np.take_along_axis(x, i, axis=1) ** 2), x, np.zeros((3, 2), int))
    assert "np.take_along_axis(x, i, axis=1)" in code
    assert "np.add.at(g_x, (np.arange(3)[:, None], i), g_take_along_axis)" in code
    code = _code(lambda x: np.sum(np.convolve(x[0], x[1], mode="valid") ** 2), x)
    assert "np.convolve(t1, t2, mode='valid')" in code and "np.pad(g_convolve, ((3, 3),))" in code
    assert "[::-1], mode='valid')" in code
    code = _code(lambda x: np.sum(np.diff(np.flip(x, 1)) ** 2), x)
    assert "x[:, ::-1]" in code and "[:, 1:] - " in code


@pytest.mark.parametrize("fn, error", [
    (lambda x: np.split(x, 3), ShapeError),
    (lambda x: np.pad(x, 1, mode="mean"), UnsupportedError),
    (lambda x: np.pad(x, 1, mode="reflect", reflect_type="odd"), UnsupportedError),
    (lambda x: np.pad(x, 1, constant_values=x[0, 0]), UnsupportedError),
    (lambda x: np.pad(x, -1), ShapeError),
    (lambda x: np.convolve(x, x[0]), ShapeError),
    (lambda x: np.take(x, [0.5]), UnsupportedError),
    (lambda x: np.take_along_axis(x, np.array([0, 1]), axis=0), ShapeError),
    (lambda x: np.rot90(x, axes=(1, 1)), ShapeError),
    (lambda x: np.repeat(x, [1, 2, 3], axis=0), ShapeError),
    (lambda x: np.select([x], [x]), ShapeError),
    (lambda x: np.fliplr(x[0]), ShapeError),
    (lambda x: np.tile(x, x.shape[0] * x[0, 0]), ShapeError),
])
def test_refusals_name_the_users_line(fn, error):
    with pytest.raises(error, match=r"test_numpy_shapes.py:\d+"):
        grad(lambda x: np.sum(fn(x)))(np.ones((2, 4)))

"""NumPy functions written with existing primitives: np.gradient, np.linspace with
traced ends, np.dot above 2-D, np.partition / np.argpartition, np.real_if_close;
Ellipsis and slice arguments; np.std / np.var over one element per lane. Values
against NumPy, derivatives against finite differences in both modes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad, jit, jvp
from compiler.errors import ShapeError, UnsupportedError
from helpers import PROPERTY, assert_jvp, assert_vjp, assert_weighted_vjp, broadcastable_pair, normal, seeds, shapes


def assert_same(got, want):
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert np.result_type(g) == np.result_type(w)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# --- np.gradient --------------------------------------------------------------------

long_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=5)


@st.composite
def gradient_case(draw):
    """A shape, the axis argument, edge_order, and a spacing kind per chosen axis."""
    shape = draw(long_shapes)
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    count = len(shape) if axis is None else 1
    order = draw(st.sampled_from([1, 2]) if min(shape) >= 3 else st.just(1))
    spacing = draw(st.sampled_from(["none", "one", "each", "coordinates", "even coordinates"]))
    return shape, axis, count, order, spacing


def _spacings(rng, shape, axis, kind):
    chosen = range(len(shape)) if axis is None else [axis]
    if kind == "none":
        return ()
    if kind == "one":
        return (float(rng.uniform(0.5, 2.0)),)
    if kind == "each":
        return tuple(float(rng.uniform(0.5, 2.0)) for _ in chosen)
    if kind == "coordinates":
        return tuple(np.cumsum(rng.uniform(0.5, 2.0, size=shape[d])) for d in chosen)
    return tuple(np.arange(shape[d]) * 0.5 for d in chosen)


@PROPERTY
@given(case=gradient_case(), seed=seeds)
def test_gradient_matches_numpy_and_differentiates(case, seed):
    shape, axis, count, order, kind = case
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    spacing = _spacings(rng, shape, axis, kind)
    f = lambda x: np.gradient(x, *spacing, axis=axis, edge_order=order)  # noqa: E731
    assert_same(jit(f)(x), f(x))
    stacked = (lambda x: np.stack(f(x))) if count > 1 else f
    assert_weighted_vjp(stacked, x, rng=rng)


@PROPERTY
@given(shape=long_shapes, seed=seeds, order=st.sampled_from([1, 2]))
def test_gradient_in_traced_spacing_and_coordinates(shape, seed, order):
    """A spacing passed as an argument is traced: the derivative reaches it, and
    traced coordinates take the unevenly spaced formulas."""
    rng = np.random.default_rng(seed)
    n = shape[0] if order == 1 or shape[0] >= 3 else 3
    x = normal(rng, (n,) + shape[1:])
    h = float(rng.uniform(0.5, 2.0))
    coordinates = np.cumsum(rng.uniform(0.5, 2.0, size=n))
    by_step = lambda x, h: np.gradient(x, h, axis=0, edge_order=order)  # noqa: E731
    by_coordinates = lambda x, c: np.gradient(x, c, axis=0, edge_order=order)  # noqa: E731
    assert_same(jit(by_step)(x, h), by_step(x, h))
    assert_same(jit(by_coordinates)(x, coordinates), by_coordinates(x, coordinates))
    assert_weighted_vjp(by_step, x, h, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(by_coordinates, x, coordinates, rng=rng, argnums=(0, 1))


def test_gradient_integer_input_and_refusals():
    ints = np.arange(6) ** 2
    assert_same(jit(lambda x: np.gradient(x))(ints), np.gradient(ints))
    x = np.ones((2, 4))
    for f, words in [
        (lambda x: np.gradient(x, axis=0, edge_order=2), "too short"),
        (lambda x: np.gradient(x, 1.0, 2.0, 3.0), "3 spacings for 2 axes"),
        (lambda x: np.gradient(x, edge_order=3), "edge_order"),
        (lambda x: np.gradient(x, np.arange(3.0), axis=1), "coordinates"),
    ]:
        with pytest.raises(ShapeError, match=words) as info:
            jit(f)(x)
        assert "test_numpy_breadth.py" in str(info.value)


# --- np.linspace --------------------------------------------------------------------

@PROPERTY
@given(pair=broadcastable_pair(max_dims=2), seed=seeds, num=st.integers(0, 5), endpoint=st.booleans(),
       data=st.data())
def test_linspace_with_traced_ends(pair, seed, num, endpoint, data):
    rng = np.random.default_rng(seed)
    start, stop = normal(rng, pair[0]), normal(rng, pair[1])
    ndim = len(np.broadcast_shapes(*pair)) + 1
    axis = data.draw(st.integers(-ndim, ndim - 1))
    f = lambda a, b: np.linspace(a, b, num, endpoint=endpoint, axis=axis)  # noqa: E731
    assert_same(jit(f)(start, stop), f(start, stop))
    if num:
        assert_weighted_vjp(f, start, stop, rng=rng, argnums=(0, 1))


def test_linspace_retstep_dtype_and_weak_ends():
    f = lambda a, b: np.linspace(a, b, 5, retstep=True)  # noqa: E731
    assert_same(jit(f)(0.5, 3.0), f(0.5, 3.0))
    g = lambda b: np.linspace(0.0, b, 4)  # noqa: E731
    b32 = np.array([1.0, 2.0], np.float32)
    assert_same(jit(g)(b32), g(b32))  # a Python float end does not widen float32
    h = lambda a: np.linspace(a, 10.0, 6, dtype=int)  # noqa: E731
    assert_same(jit(h)(0.5), h(0.5))
    assert_vjp(lambda a, b: np.sum(np.linspace(a, b, 7)[1:] ** 2) + np.linspace(a, b, 3, retstep=True)[1], 0.5, 2.0,
               argnums=(0, 1))


# --- np.dot above 2-D ---------------------------------------------------------------

@st.composite
def dot_shapes(draw):
    """Operands of np.dot with at least one above 2-D: a's last axis meets b's
    second-to-last (b's only one when b is 1-D)."""
    k = draw(st.integers(1, 3))
    a_batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    b_batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    a = a_batch + (k,)
    b = (k,) if draw(st.booleans()) and len(a) > 2 else b_batch + (k, draw(st.integers(1, 3)))
    if len(a) <= 2 and len(b) <= 2:
        a = (2,) + a
    return a, b


@PROPERTY
@given(pair=dot_shapes(), seed=seeds)
def test_dot_above_two_dimensions(pair, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, pair[0]), normal(rng, pair[1])
    assert_same(jit(np.dot)(a, b), np.dot(a, b))
    assert_weighted_vjp(np.dot, a, b, rng=rng, argnums=(0, 1))


def test_dot_of_matrices_is_still_matmul():
    a, b = np.ones((2, 3)), np.ones(3)
    assert "a @ b" in jit(np.dot).source(a, b)
    assert_same(jit(lambda a: np.dot(a, 2.0))(a), np.dot(a, 2.0))


# --- np.partition / np.argpartition ------------------------------------------------

@PROPERTY
@given(shape=shapes(min_dims=1), seed=seeds, data=st.data())
def test_partition_guarantees_and_gradient(shape, seed, data):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    length = x.size if axis is None else shape[axis]
    kth = data.draw(st.integers(-length, length - 1) | st.lists(st.integers(0, length - 1), min_size=1, max_size=2))
    part = jit(lambda x: np.partition(x, kth, axis=axis))(x)
    order = jit(lambda x: np.argpartition(x, kth, axis=axis))(x)
    flat = x.ravel() if axis is None else x
    picked = np.take_along_axis(flat, order, axis=-1 if axis is None else axis)
    reference = np.sort(flat, axis=-1 if axis is None else axis)
    axis_ = -1 if axis is None else axis
    for values in (part, picked):
        for k in np.ravel(kth) % length:
            at = np.take(values, [k], axis=axis_)
            np.testing.assert_array_equal(at, np.take(reference, [k], axis=axis_))
            assert np.all(np.take(values, np.arange(k), axis=axis_) <= at)
            assert np.all(np.take(values, np.arange(k + 1, length), axis=axis_) >= at)
    # a loss that NumPy's own partition gives too: weights shared by the elements
    # between two kth positions, whose order there is not specified
    kths = sorted(set((np.ravel(kth) % length).tolist()))
    groups = np.array([2 * sum(k < p for k in kths) + (p in kths) for p in range(length)])
    shape_ = [1] * (1 if axis is None else len(shape))
    shape_[axis_] = length
    w, v = (np.reshape(normal(rng, 2 * len(kths) + 1)[groups], shape_) for _ in range(2))
    assert_vjp(lambda x: np.sum(w * np.partition(x, kth, axis=axis) + v * np.partition(x, kth, axis=axis) ** 2), x)


def test_partition_refuses_kth_out_of_range():
    with pytest.raises(ShapeError, match="kth"):
        jit(lambda x: np.partition(x, 5))(np.ones(5))


# --- np.real_if_close ---------------------------------------------------------------

@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_real_if_close_of_a_real_array_is_the_identity(shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_same(jit(lambda x: np.real_if_close(x))(x), np.real_if_close(x))
    assert_weighted_vjp(lambda x: np.real_if_close(x) * x, x, rng=rng)


def test_real_if_close_of_a_complex_array_is_refused():
    with pytest.raises(UnsupportedError, match="np.real") as info:
        jit(lambda x: np.real_if_close(x * 1j))(np.ones(3))
    assert "test_numpy_breadth.py" in str(info.value)


# --- Ellipsis and slices as arguments -----------------------------------------------

def test_ellipsis_and_slice_arguments_are_static():
    f = lambda x, index: np.sum(x[index] ** 2)  # noqa: E731
    x = np.arange(12.0).reshape(3, 4)
    for index in (..., slice(1, None), (slice(None, 2), ...), (..., slice(None, None, 2))):
        expected = np.zeros_like(x)
        expected[index] = 2 * x[index]
        np.testing.assert_array_equal(grad(f)(x, index), expected)
    compiled = jit(f)
    assert compiled(x, slice(0, 2)) == f(x, slice(0, 2))
    assert compiled(x, slice(1, 3)) == f(x, slice(1, 3))  # a different slice is a different function
    entries = len(compiled.cache)
    assert compiled(x, slice(1, 3)) == f(x, slice(1, 3)) and len(compiled.cache) == entries


def test_slice_argument_with_non_int_bounds_is_refused():
    with pytest.raises(UnsupportedError, match="slice"):
        jit(lambda x, s: x[s])(np.ones(3), slice(0.5, None))


# --- np.std / np.var over one element per lane -------------------------------------

@PROPERTY
@given(shape=shapes(), seed=seeds, data=st.data(), keepdims=st.booleans(), name=st.sampled_from(["std", "var"]))
def test_std_and_var_over_one_element_have_zero_derivatives(shape, seed, data, keepdims, name):
    """Reduced over axes of length 1 they are identically 0: value 0, derivative 0 in
    both modes, no NaN."""
    shape = tuple(1 if data.draw(st.booleans()) else d for d in shape)
    ones = [d for d, n in enumerate(shape) if n == 1]
    axis = tuple(data.draw(st.lists(st.sampled_from(ones), unique=True))) if ones else ()
    fn = getattr(np, name)
    x = normal(np.random.default_rng(seed), shape)
    f = lambda x: np.sum(fn(x, axis=axis, keepdims=keepdims)) * 3.0 + np.sum(x)  # noqa: E731
    assert_same(jit(lambda x: fn(x, axis=axis, keepdims=keepdims))(x), fn(x, axis=axis, keepdims=keepdims))
    np.testing.assert_array_equal(grad(f)(x), np.ones_like(x))
    _, tangent = jvp(f, (x,), (np.ones_like(x),))
    assert tangent == x.size
    assert grad(fn)(3.5) == 0.0


def test_std_over_several_elements_is_unchanged():
    x = np.random.default_rng(0).normal(size=(3, 4))
    source = grad(lambda x: np.sum(np.std(x, axis=0))).source(x)
    assert "np.sqrt" in source
    assert_vjp(lambda x: np.sum(np.std(x, axis=0)), x)


# --- np.array / np.asarray of lists holding traced values ----------------------------------

def test_np_array_of_lists_and_tuples_of_traced_values():
    """autograd's users write `np.array([x0, x1])` constantly: lists and tuples (nested)
    of traced values, Python numbers and arrays are stacked, promoted as NumPy does."""
    def f(x, y):
        m = np.array([[x[0] * y, 2.0], (np.sin(x[1]), x[2])])
        v = np.asarray((x[0], 1), dtype=np.float64)
        return np.sum(m ** 2) + np.sum(v * 3.0) + np.sum(np.array([x, x * 2], ndmin=3))

    x = np.array([0.5, 1.0, -2.0])
    np.testing.assert_allclose(jit(f)(x, 3.0), f(x, 3.0), rtol=1e-6)
    assert jit(lambda x: np.asarray((x[0], 1), dtype=np.float32))(x).dtype == np.float32
    assert jit(lambda x: np.array([x[0], 1], ndmin=3))(x).shape == np.array([x[0], 1], ndmin=3).shape
    x32 = x.astype(np.float32)
    assert jit(lambda x: np.array([x[0], 2.0]))(x32).dtype == np.array([x32[0], 2.0]).dtype
    assert_vjp(lambda x: f(x, 3.0), x, rtol=1e-5, atol=1e-6)
    assert_jvp(lambda x: f(x, 3.0), x)


def test_np_array_is_numpys_own_outside_traces_and_after_errors():
    original = np.array
    with pytest.raises(ShapeError, match="different shapes"):
        jit(lambda x: np.array([x, x[:2]]))(np.ones(3))
    assert np.array is original and np.asarray.__module__ == "numpy"

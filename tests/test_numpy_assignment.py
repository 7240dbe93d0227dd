"""Assignment into traced arrays (`x[i] = v`, `x[i] += v`, masks) and traced array
creation (np.zeros_like(x), np.zeros(shape, like=x)): gradients against finite
differences on hypothesis-drawn shapes and indices, NumPy's forward values
(repeated indices: the last write wins), float32, the generated source, and the
refusals: writes a view would see, data-dependent mask shapes, traced values
written into NumPy arrays, np.array of lists of traced values."""
import re

import numpy as np
from numpy import array
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import ShapeError, TracingError, UnsupportedError, grad, jit
from error_checks import checks_for
from helpers import PROPERTY, assert_float32_backward, assert_vjp, compiled_grad, normal, seeds, shapes, weighted
from runtime.check import numerical_grad

line_of, check = checks_for(__file__)


def _broadcastable_to(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """A shape that broadcasts to `shape`: some axes 1, some leading axes dropped."""
    kept = shape[rng.integers(0, len(shape) + 1):]
    return tuple(1 if rng.random() < 0.3 else d for d in kept)


def _assert_matches_numpy(f, *args) -> None:
    np.testing.assert_allclose(jit(f)(*args), f(*args), rtol=1e-12)


# --- gradients ----------------------------------------------------------------------------

@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3), seed=seeds)
def test_basic_index_assignment_vjp(data, shape, seed):
    index = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    v = normal(rng, _broadcastable_to(np.empty(shape)[index].shape, rng))

    def f(x, v):
        y = np.sin(x)
        y[index] = v * 2.0
        return y

    _assert_matches_numpy(f, x, v)
    assert_vjp(weighted(f, (x, v), rng), x, v, argnums=(0, 1))


@PROPERTY
@given(data=st.data(), shape=shapes(min_dims=1, max_dims=3), seed=seeds)
def test_augmented_assignment_with_repeated_integer_indices_vjp(data, shape, seed):
    """Repeats are likely: NumPy keeps the last write, so earlier writes get no gradient."""
    result = data.draw(shapes(min_dims=1, max_dims=2))
    index = data.draw(hnp.integer_array_indices(shape, result_shape=st.just(result)))
    op = data.draw(st.sampled_from(["+", "-", "*", "/"]))
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    v = 1.5 + np.abs(normal(rng, np.empty(shape)[index].shape))

    def f(x, v):
        y = np.cos(x)
        if op == "+":
            y[index] += v
        elif op == "-":
            y[index] -= v ** 2
        elif op == "*":
            y[index] *= v
        else:
            y[index] /= v
        return y

    _assert_matches_numpy(f, x, v)
    assert_vjp(weighted(f, (x, v), rng), x, v, argnums=(0, 1))


@PROPERTY
@given(shape=shapes(min_dims=2, max_dims=3), seed=seeds)
def test_integer_arrays_mixed_with_slices_and_traced_indices_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    rows = rng.integers(-shape[0], shape[0], size=4)  # repeats likely
    v = normal(rng, (4,) + shape[2:])

    def f(x, v, rows):
        y = x * 1.5
        y[rows, -1] = np.tanh(v)
        y[rows[::-1], :1] += 1.0
        return y

    _assert_matches_numpy(f, x, v, rows)
    assert_vjp(weighted(f, (x, v, rows), rng), x, v, rows, argnums=(0, 1))


def test_last_write_wins_and_only_it_gets_a_gradient():
    x, v = np.arange(4.0), np.array([10.0, 20.0, 30.0])

    def f(x, v, i):
        y = x * 1.0
        y[i] = v
        return np.sum(y * np.array([1.0, 2.0, 3.0, 4.0]))

    for i in (np.array([0, 2, 0]), [0, 2, 0]):
        g_x, g_v = compiled_grad(f, x, v, i, argnums=(0, 1))
        np.testing.assert_array_equal(g_x, [0.0, 2.0, 0.0, 4.0])
        np.testing.assert_array_equal(g_v, [0.0, 3.0, 1.0])


@PROPERTY
@given(shape=shapes(min_dims=1, max_dims=3), seed=seeds)
def test_mask_assignment_is_a_where_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x, s = normal(rng, shape), normal(rng, shape[1:])
    row_mask = rng.random(shape[:1]) < 0.5

    def f(x, s):
        y = np.exp(x)
        y[x > 0.3] = 0.5        # a traced mask of x's shape, one value
        y[row_mask] = s * 3.0   # a constant mask of the leading axis, one row
        return y

    _assert_matches_numpy(f, x, s)
    assert_vjp(weighted(f, (x, s), rng), x, s, argnums=(0, 1))


def test_constant_mask_with_one_value_per_selected_element():
    x = np.array([1.0, -2.0, 3.0, -4.0])
    mask = x < 0

    def f(x, v):
        y = x * 2.0
        y[mask] = v ** 2
        return np.sum(y * np.arange(1.0, 5.0))

    v = np.array([5.0, 6.0])
    _assert_matches_numpy(f, x, v)
    assert_vjp(f, x, v, argnums=(0, 1))


@PROPERTY
@given(shape=shapes(min_dims=1, max_dims=3), seed=seeds)
def test_arrays_created_from_traced_values_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    s = float(rng.normal())

    def f(x, s):
        out = np.empty_like(x)
        out[...] = np.zeros_like(x) + np.ones_like(x) * x + np.full_like(x, 2.0)
        out[0] = np.sin(x[-1])
        table = np.zeros((3,) + x.shape, like=x)
        table[1] = x * s
        table[2] += np.full(x.shape, s, like=x) + np.ones(x.shape[-1:], like=x)
        return out * table

    _assert_matches_numpy(f, x, s)
    assert_vjp(weighted(f, (x, s), rng), x, s, argnums=(0, 1))


def test_created_arrays_take_numpys_dtypes():
    x = np.ones(3, dtype=np.float32)
    assert jit(lambda x: np.zeros_like(x))(x).dtype == np.float32
    assert jit(lambda x: np.zeros(2, like=x))(x).dtype == np.float64
    assert jit(lambda x: np.full(2, 1, like=x))(x).dtype == np.int64
    assert jit(lambda x: np.ones_like(x, dtype=np.int32, shape=(2, 2)))(x).shape == (2, 2)


def test_float32_assignment_backward_stays_float32():
    x = np.random.default_rng(1).normal(size=(4, 3))
    v = np.random.default_rng(2).normal(size=(3,))

    def f(x, v):
        y = x * x
        y[[0, 2, 0], 1:] = 0.5
        y[1] += v
        y[y > 1.0] = 1.0
        return np.sum(y)

    assert_float32_backward(f, x, v, argnums=(0, 1))


# --- NumPy's semantics --------------------------------------------------------------------

def test_names_bound_to_the_array_see_the_write_and_arguments_stay_unchanged():
    def zero_first(a):
        a[0] = 0.0

    def f(x):
        alias = x
        zero_first(x)
        x[1:] *= 3.0
        return np.sum(alias * np.arange(1.0, 4.0))

    x = np.array([1.0, 2.0, 3.0])
    g = compiled_grad(f, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g, [0.0, 6.0, 9.0])
    _assert_matches_numpy(f, x.copy())


def test_a_view_used_only_as_the_value_is_fine():
    def f(x):
        y = np.sin(x)
        y[:] = y[::-1]
        y[1:] += y[:-1]
        return y

    x = np.arange(4.0)
    _assert_matches_numpy(f, x)
    assert_vjp(weighted(f, (x,), np.random.default_rng(0)), x)


def test_generated_source_copies_then_writes():
    def f(x, v):
        y = np.sin(x)
        y[1:3] = v
        y[x < 0.0] = 0.0
        return np.sum(y ** 2)

    source = grad(f, argnums=(0, 1)).source(np.ones(4), np.ones(2))
    assert "y = np.sin(x)" in source and ".copy()" in source, source
    assert "[1:3] = v" in source, source
    assert "x < 0.0" in source and re.search(r"np\.where\(\w+, 0\.0, y_1\)", source), source
    assert "[1:3] = 0.0" in source, source  # the cotangent of the overwritten positions


def test_generated_source_of_a_traced_index_keeps_the_last_write():
    def f(x, i, v):
        y = np.zeros_like(x)
        y[i] = v
        return np.sum(y * x)

    source = grad(f, argnums=(0, 2)).source(np.ones(4), np.array([1, 1]), np.ones(2))
    assert "np.zeros((4,), dtype=np.float64)" in source, source
    assert "[i] = v" in source and "[i] = np.arange(2)" in source, source
    assert "np.where(" in source, source


# --- refusals -----------------------------------------------------------------------------

def test_assigning_while_a_view_is_in_use():
    def f(x):
        y = x[0]
        x[0] = 5.0  # <- view
        return y

    with pytest.raises(UnsupportedError) as excinfo:
        jit(f)(np.ones(3))
    check(excinfo, UnsupportedError, "view", "`y` is a view of `x`", "Make `y` a copy", ".copy()")


def test_assigning_into_a_view_of_an_array_in_use():
    def f(x):
        rows = [x.T]
        column = rows[0][:, 1]
        column[0] = 0.0  # <- into-view
        return np.sum(x)

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones((2, 3)))
    check(excinfo, UnsupportedError, "into-view", "`column` is a view of `x`", "change `x` too", "Make `column` a copy")


def test_traced_mask_with_an_array_of_values():
    """As many values as the mask selects, a number decided per call."""
    def f(x, v):
        x = x * 1.0
        x[x > 0] = v * x[x > 0]
        return np.sum(x * x)

    x, v = np.array([1.0, -2.0, 3.0]), np.array([2.0, 0.5])
    g_x, g_v = grad(f, argnums=(0, 1))(x, v)
    np.testing.assert_allclose(g_x, numerical_grad(lambda x: f(x, v), x), rtol=1e-7)
    np.testing.assert_allclose(g_v, numerical_grad(lambda v: f(x, v), v), rtol=1e-7)
    with pytest.raises(ShapeError):
        grad(f)(np.ones(3), v)  # three elements selected, two values


def test_augmented_assignment_through_a_traced_mask():
    def f(x):
        y = x * 1.0
        y[y > 0] += 1.0
        return np.sum(y * x)

    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(grad(f)(x), numerical_grad(f, x), rtol=1e-7)


def test_assigning_into_a_0d_value():
    def f(x):
        s = np.sum(x)
        s[()] = 1.0  # <- zero-d
        return s

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, UnsupportedError, "zero-d", "0-d", "`s = v`")


def test_assigning_a_value_of_the_wrong_shape():
    def f(x):
        x[1:3] = np.ones(3)  # <- shape
        return np.sum(x)

    with pytest.raises(ShapeError) as excinfo:
        grad(f)(np.ones(4))
    check(excinfo, ShapeError, "shape", "(3,)", "(2,)")


def test_writing_a_traced_value_into_a_numpy_array():
    def f(x):
        y = np.zeros(4)
        y[1:3] = x  # <- into-numpy
        return np.sum(y)

    with pytest.raises(TracingError) as excinfo:
        grad(f)(np.ones(2))
    check(excinfo, TracingError, "into-numpy", "NumPy array `y`", "`y = np.zeros((4,), like=x)`")


def test_np_array_of_nested_lists_of_traced_values():
    def f(x):
        m = np.array([[x[0], 1.0], [x[1], x[2]]])
        return np.sum(m * np.array([[1.0, 2.0], [3.0, 4.0]]))

    np.testing.assert_array_equal(compiled_grad(f, np.ones(3)), [1.0, 3.0, 4.0])


def test_np_array_of_nested_lists_bound_by_name_is_refused_with_the_stack_spelling():
    def f(x):
        m = array([[x[0], 1.0], [x[1], x[2]]])  # <- nested
        return np.sum(m)

    with pytest.raises(TracingError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, TracingError, "nested", "`np.stack([np.stack([x[0], 1.0]), np.stack([x[1], x[2]])])`")


def test_the_suggested_stack_spelling_works():
    x = np.array([1.0, 2.0, 3.0])
    g = compiled_grad(lambda x: np.sum(np.stack([np.stack([x[0], 1.0]), np.stack([x[1], x[2]])]) ** 2), x)
    np.testing.assert_array_equal(g, 2 * x)


def test_np_asarray_of_a_traced_array():
    def f(x):
        a = np.asarray(x)  # <- asarray
        return np.sum(a)

    with pytest.raises(TracingError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, TracingError, "asarray", "needs no np.asarray()", "write `x` instead")

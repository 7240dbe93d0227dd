"""Selections whose size the data decides: `x[mask]` (read, `=` and `+=`),
`np.nonzero`, `np.flatnonzero`, `np.argwhere`, `np.where(c)`, `np.compress`,
`np.extract` and `np.unique` (`return_index`, `return_inverse`, `return_counts`).
The number of elements selected is a decision of the trace (a guard), so each count
compiles one path; values against eager NumPy, gradients against finite
differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import grad, jit, jvp
from helpers import PROPERTY, seeds
from runtime.check import numerical_grad


def values(rng: np.random.Generator, shape) -> np.ndarray:
    """Values a margin away from 0, so that finite differences never cross a mask's edge."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)


SELECTIONS = {
    "mask read": lambda x: np.sum(x[x > 0] ** 2),
    "mask over rows": lambda x: np.sum(np.sin(x[np.sum(x, axis=1) > 0])),
    "mask write": lambda x: np.sum(_masked_write(x) ** 2),
    "mask add": lambda x: np.sum(_masked_add(x) * x),
    "nonzero": lambda x: np.sum(x[np.nonzero(x > 0)] * x[np.nonzero(x > 0)]),
    "flatnonzero": lambda x: np.sum(np.ravel(x)[np.flatnonzero(x < 0)] ** 3),
    "where one argument": lambda x: np.sum(np.exp(x[np.where(x > 0.5)])),
    "argwhere": lambda x: np.sum(np.argwhere(x > 0)) * np.sum(x),
    "compress": lambda x: np.sum(np.compress(x[0] > 0, x, axis=x.ndim - 1) ** 2),
    "extract": lambda x: np.sum(np.extract(x > 0, x) * 2.0),
}


def _masked_write(x):
    y = x * 1.0
    y[y > 0] = y[y > 0] * 3.0
    return y


def _masked_add(x):
    y = x * 1.0
    y[y < 0] += 2.0 * y[y < 0]
    return y


@pytest.mark.parametrize("name", sorted(SELECTIONS))
@PROPERTY
@given(seed=seeds, rows=st.integers(1, 3), cols=st.integers(2, 4))
def test_selections_of_a_data_dependent_size(name, seed, rows, cols):
    f = SELECTIONS[name]
    x = values(np.random.default_rng(seed), (rows, cols))
    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad(f)(x), numerical_grad(f, x), rtol=1e-6, atol=1e-8)
    t = values(np.random.default_rng(seed + 1), x.shape)
    assert jvp(f, (x,), (t,))[1] == pytest.approx(np.sum(numerical_grad(f, x) * t), rel=1e-6, abs=1e-8)


def test_each_count_compiles_one_path():
    f = grad(lambda x: np.sum(x[x > 0] ** 2))
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(30):
        x = values(rng, 6)
        counts.add(int(np.sum(x > 0)))
        np.testing.assert_allclose(f(x), 2 * x * (x > 0))
    assert f.trace_count == len(counts)


def test_per_class_sums_by_unique_and_nonzero():
    def per_class(w, labels):
        total = 0.0
        classes, counts = np.unique(labels, return_counts=True)
        for c, n in zip(classes, counts):
            idx = np.nonzero(labels == c)[0]
            total = total + np.sum(w[idx]) ** 2 / n
        return total

    rng = np.random.default_rng(3)
    for labels in (np.array([0, 2, 1, 2, 0, 2]), np.array([1, 1, 3, 3, 3, 0])):
        w = rng.normal(size=6)
        np.testing.assert_allclose(grad(per_class)(w, labels), numerical_grad(lambda w: per_class(w, labels), w),
                                   rtol=1e-6, atol=1e-8)


def test_unique_values_index_inverse_and_counts_match_numpy():
    x = np.array([[2.0, 1.0, 2.0], [3.0, 1.0, 1.0]])
    got = jit(lambda x: np.unique(x, return_index=True, return_inverse=True, return_counts=True))(x)
    for a, b in zip(got, np.unique(x, return_index=True, return_inverse=True, return_counts=True)):
        np.testing.assert_array_equal(a, b)
    # each distinct value is read at its first occurrence: the gradient goes there
    np.testing.assert_array_equal(grad(lambda x: np.sum(np.unique(x) * np.array([1.0, 2.0, 3.0])))(x),
                                  [[2.0, 1.0, 0.0], [3.0, 0.0, 0.0]])

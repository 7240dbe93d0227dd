"""Integer indices computed inside the traced function (np.floor(...).astype(int),
np.mod, np.clip, `+ 1`, np.round, `//`, comparisons) into computed float arrays: the
gather, its VJP (a scatter-add that accumulates repeated indices) and JVP (the same
gather of the tangent), and assignments at such indices. Values against eager NumPy,
derivatives against centered finite differences in both modes; the index values
themselves carry no derivative.

Float data that feeds floor/round/`//` is kept a distance away from every step, so
finite differences never cross one.
"""
import inspect
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compiler import TracingError, grad, jacfwd, jit, jvp
from helpers import PROPERTY, assert_vjp, seeds


# --- the semi-Lagrangian advection of autograd's fluid simulation ---------------------

def advect(f, vx, vy):
    rows, cols = f.shape
    cell_ys, cell_xs = np.meshgrid(np.arange(rows), np.arange(cols))
    center_xs = (cell_xs - vx).ravel()
    center_ys = (cell_ys - vy).ravel()
    left_ix = np.floor(center_xs).astype(int)
    top_ix = np.floor(center_ys).astype(int)
    rw = center_xs - left_ix
    bw = center_ys - top_ix
    left_ix = np.mod(left_ix, rows)
    right_ix = np.mod(left_ix + 1, rows)
    top_ix = np.mod(top_ix, cols)
    bot_ix = np.mod(top_ix + 1, cols)
    flat_f = (1 - rw) * ((1 - bw) * f[left_ix, top_ix] + bw * f[left_ix, bot_ix]) \
        + rw * ((1 - bw) * f[right_ix, top_ix] + bw * f[right_ix, bot_ix])
    return np.reshape(flat_f, (rows, cols))


GRID = 6  # the advection's meshgrid pairs rows with columns: the grid is square
TARGET = np.random.default_rng(7).normal(size=(GRID, GRID))


def simulate(vx, vy, smoke, steps=3):
    for t in range(steps):
        vx = advect(vx, vx, vy)
        vy = advect(vy, vx, vy)
        smoke = advect(smoke, vx, vy)
    return np.sum((smoke - TARGET) ** 2)


def velocities(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Velocities `shift + u`, u in [0.25, 0.75]: every interpolation of them keeps
    its fractional part there, so floor() stays a step away at every time step; the
    shifts make the cell indices leave the grid on both sides before np.mod."""
    vx = 1.0 + rng.uniform(0.25, 0.75, size=(GRID, GRID))
    vy = -2.0 + rng.uniform(0.25, 0.75, size=(GRID, GRID))
    return vx, vy


def test_advection_value_and_gradients_in_both_modes():
    rng = np.random.default_rng(0)
    vx, vy = velocities(rng)
    smoke = rng.normal(size=(GRID, GRID))
    np.testing.assert_allclose(jit(simulate)(vx, vy, smoke), simulate(vx, vy, smoke), rtol=1e-12)
    assert_vjp(simulate, vx, vy, smoke, argnums=(0, 1, 2))


def test_a_closure_array_indexed_with_traced_indices_is_traced():
    """NumPy's own indexing of a NumPy array (here the closure's `smoke`, passed on as
    `f`) cannot take a traced index: the trace restarts with `smoke` traced, read
    when the compiled code runs (compiler/captures.py)."""
    rng = np.random.default_rng(1)
    vx, vy = velocities(rng)
    smoke = rng.normal(size=(GRID, GRID))
    loss = lambda vx, vy: simulate(vx, vy, smoke, steps=2)  # noqa: E731
    np.testing.assert_allclose(jit(loss)(vx, vy), loss(vx, vy), rtol=1e-12)
    assert_vjp(loss, vx, vy, argnums=(0, 1))
    smoke[...] = 0.5  # changed in place: the next call reads it
    np.testing.assert_allclose(jit(loss)(vx, vy), loss(vx, vy), rtol=1e-12)


TABLE = np.cos(np.arange(5.0))  # a NumPy array the function reads


def lookup(x):
    i = np.mod(np.floor(x * 3).astype(int), 5)
    return np.sum(TABLE[i] * x)


def lookup_local(x):
    table = np.cos(np.arange(5.0))  # made by the function: a NumPy array, not a traced one
    i = np.mod(np.floor(x * 3).astype(int), 5)
    return np.sum(table[i] * x)


def lookup_traced(x):
    i = np.mod(np.floor(x * 3).astype(int), 5)
    table = np.zeros(TABLE.shape, like=i) + TABLE
    return np.sum(table[i] * x)


def test_a_global_array_indexed_with_traced_indices_is_traced_and_guarded():
    global TABLE
    x = np.array([0.1, 1.2, -0.7, 2.1, 0.45, 1.25])  # x * 3 a step away from integers
    np.testing.assert_allclose(jit(lookup)(x), lookup(x), rtol=1e-12)
    assert_vjp(lookup, x)
    saved = TABLE
    try:
        TABLE = np.sin(np.arange(5.0))  # rebound: traced again
        np.testing.assert_allclose(jit(lookup)(x), lookup(x), rtol=1e-12)
    finally:
        TABLE = saved


def test_an_array_the_function_makes_itself_is_refused_with_advice():
    x = np.array([0.1, 1.2, -0.7])
    with pytest.raises(TracingError) as excinfo:
        jit(lookup_local)(x)
    lines, start = inspect.getsourcelines(lookup_local)
    line = start + next(k for k, text in enumerate(lines) if "table[i]" in text)
    message = str(excinfo.value)
    assert f"{Path(__file__).name}:{line}" in message
    assert "a concrete index into the NumPy array `table`" in message
    assert "`table = np.zeros(table.shape, like=i) + table`" in message


def test_the_advised_rewrite_of_a_numpy_array_traces():
    x = np.array([0.1, 1.2, -0.7, 2.1, 0.45, 1.25])
    np.testing.assert_allclose(jit(lookup_traced)(x), lookup(x), rtol=1e-12)
    assert_vjp(lookup_traced, x)


# --- a fuzz of index arithmetic feeding gathers and assignments -----------------------

# Index data: integers plus a fraction in [0.15, 0.35], a step away from every
# integer and half-integer (the steps of floor, round, trunc and `// 0.5`).
RAW: dict[str, Callable] = {
    "floor": lambda d: np.floor(d).astype(int),
    "round": lambda d: np.round(d).astype(int),
    "trunc": lambda d: d.astype(int),
    "float floordiv": lambda d: (d // 0.5).astype(int),
    "int floordiv": lambda d: np.floor(d).astype(int) // 2,
    "comparison": lambda d: (d > 0).astype(int),
}
SHIFTS: dict[str, Callable] = {"none": lambda i: i, "+ 1": lambda i: i + 1, "- 1": lambda i: i - 1}
# into range for an axis of length n; the negative ones index from the end, as NumPy does
RANGES: dict[str, Callable] = {
    "np.mod": lambda i, n: np.mod(i, n),
    "%": lambda i, n: i % n,
    "clip": lambda i, n: np.clip(i, 0, n - 1),
    "clip to negatives": lambda i, n: np.clip(i, -n, n - 1),
    "negative": lambda i, n: np.mod(i, n) - n,
}


def _assign_rows(s, i, j, w):
    y = s * 1.0
    y[i] = w[:, None]
    return y


def _add_pairs(s, i, j, w):
    y = s * 1.0
    y[i, j] += w
    return y


def _assign_columns(s, i, j, w):
    y = np.sin(s)
    y[:, j] = w
    return y


def _add_1d(s, i, j, w):
    y = s[0] * 1.0
    y[j] += w
    return y


# (computed 2-d source, i into its rows, j into its columns, w a weight like j) -> a gather or an assignment
GATHERS: dict[str, Callable] = {
    "rows": lambda s, i, j, w: s[i],
    "columns": lambda s, i, j, w: s[:, j],
    "pairs": lambda s, i, j, w: s[i, j],
    "outer": lambda s, i, j, w: s[i[:, None], j[None, :]],
    "int and array": lambda s, i, j, w: s[-1, j],
    "array and slice": lambda s, i, j, w: s[i, 1:],
    "chained": lambda s, i, j, w: s[i][:, j],
    "ellipsis and none": lambda s, i, j, w: s[None, ..., j],
    "index of an index": lambda s, i, j, w: s[i[j % i.shape[0]]],
    "1-d": lambda s, i, j, w: s[0][j],
    "1-d, 2-d index": lambda s, i, j, w: s[1][np.stack([j, j[::-1]])],
    "assign rows": _assign_rows,
    "add pairs": _add_pairs,
    "assign columns": _assign_columns,
    "add 1-d": _add_1d,
}


def index_data(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    return rng.integers(-2 * n, 2 * n, size=k) + rng.uniform(0.15, 0.35, size=k)


@PROPERTY
@given(
    rows=st.integers(2, 4), cols=st.integers(2, 4), k=st.integers(1, 7), seed=seeds,
    gather=st.sampled_from(sorted(GATHERS)),
    pipelines=st.tuples(*[st.sampled_from(sorted(table)) for table in (RAW, SHIFTS, RANGES)] * 2),
)
def test_computed_indices_into_computed_arrays(rows, cols, k, seed, gather, pipelines):
    """The gather (or assignment) of a computed source at indices computed from float
    data: its value, and its gradient and tangent for the source and the data (whose
    only derivative flows through its fractional part `w`, never the indices)."""
    rng = np.random.default_rng(seed)

    def index(d, n, raw, shift, into):
        return RANGES[into](SHIFTS[shift](RAW[raw](d)), n)

    def f(a, d1, d2):
        source = np.sin(a) * 2.0 + a * a
        i, j = index(d1, rows, *pipelines[:3]), index(d2, cols, *pipelines[3:])
        w = (d2 - np.floor(d2)) * 3.0
        return GATHERS[gather](source, i, j, w)

    a = rng.normal(size=(rows, cols))
    d1, d2 = index_data(rng, k, rows), index_data(rng, k, cols)
    np.testing.assert_allclose(jit(f)(a, d1, d2), f(a, d1, d2), rtol=1e-12)
    weights = rng.normal(size=np.shape(f(a, d1, d2)))
    assert_vjp(lambda a, d1, d2: np.sum(np.sin(f(a, d1, d2)) * weights), a, d1, d2, argnums=(0, 1, 2))


def test_repeated_indices_accumulate():
    """The advection's pattern with many repeats: every position gathered several
    times gets the sum of its cotangents."""
    x = np.linspace(-1.0, 2.0, 12).reshape(3, 4)
    d = np.array([0.2, 0.3, 1.2, 0.25, 0.2, 2.3, 1.15, 0.3])

    def f(x, d):
        i = np.floor(d).astype(int)
        return np.sum((x * x)[i, np.mod(i + 1, 4)] * np.arange(8.0))

    expected = np.zeros_like(x)
    np.add.at(expected, (np.floor(d).astype(int), np.mod(np.floor(d).astype(int) + 1, 4)), np.arange(8.0))
    np.testing.assert_allclose(grad(f)(x, d), 2 * x * expected, rtol=1e-12)
    assert_vjp(f, x, d, argnums=(0, 1))


def test_assignment_with_constant_and_computed_index_arrays():
    """Which write lands last is found at run time as soon as one index array is
    computed."""
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    d = np.array([1.2, 0.3, 1.25, 3.3])

    def f(x, d):
        y = np.sin(x)
        y[np.array([0, 2, 0, 0]), np.floor(d).astype(int)] = d * d
        return np.sum(np.cos(y))

    np.testing.assert_allclose(jit(f)(x, d), f(x, d), rtol=1e-12)
    assert_vjp(f, x, d, argnums=(0, 1))


def test_a_captured_index_array_changed_in_place_between_calls():
    """A global or closure index array is read live: repeats it gains in place after
    compiling must still leave the gradient to the last write only."""
    rows = np.array([0, 1, 2])

    def f(x, v):
        y = x * 1.0
        y[rows] = v
        return np.sum(np.sin(y))

    x, v = np.linspace(-1.0, 1.0, 8).reshape(4, 2), np.array([[0.3, -0.2], [0.5, 0.1], [-0.4, 0.9]])
    assert_vjp(f, x, v, argnums=(0, 1))
    rows[:] = [1, 1, 2]
    assert_vjp(f, x, v, argnums=(0, 1))


def test_a_list_of_traced_indices():
    x = np.array([0.5, 1.3, 1.7, 2.2, 2.6, 3.1])

    def f(x):
        i = np.floor(x[1]).astype(int)
        return np.sum(np.exp(x)[[i, -i, 2, np.mod(i + 4, 6)]] ** 2)

    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12)
    assert_vjp(f, x)


def test_jacfwd_of_a_computed_gather():
    x = np.array([0.3, 1.2, 2.2, 0.35, 3.25])
    d = np.array([3.2, -1.3, 0.15, 7.3])

    def f(x):
        return np.sin(x)[np.mod(np.floor(d * x[0] / 0.3).astype(int), 5)] * x[1]

    eps = 1e-6
    numeric = np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(5)], axis=-1)
    np.testing.assert_allclose(jacfwd(f)(x), numeric, rtol=1e-6, atol=1e-8)


def gather_past_the_end(x):
    return np.sum(x[np.floor(x * 4).astype(int)] ** 2)


@pytest.mark.parametrize("mode", ["value", "gradient", "tangent"])
def test_out_of_bounds_indices_raise_at_run_time(mode):
    """As in NumPy: an index past either end raises IndexError, never clips, in
    every compiled program (the gradient's scatter-add checks them too)."""
    inside, past = np.array([0.1, 0.3, -0.1]), np.array([0.1, 0.9, 0.3])
    run = {
        "value": lambda x: jit(gather_past_the_end)(x),
        "gradient": lambda x: grad(gather_past_the_end)(x),
        "tangent": lambda x: jvp(gather_past_the_end, (x,), (np.ones_like(x),)),
    }[mode]
    run(inside)  # -1 wraps to the last element, as in NumPy
    with pytest.raises(IndexError):
        gather_past_the_end(past)
    with pytest.raises(IndexError):
        run(past)

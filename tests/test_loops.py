"""Loops stay loops in generated code (compiler/rolling.py): a Python loop, its
adjoint and JAX-style scans print as `for` loops that compute the same bits as the
unrolled statements."""
import ast
import importlib.util
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler.rolling as rolling
from compiler import compile_step, grad, jvp, scan, fori_loop, value_and_grad
from compiler.rolling import Unit, print_units
from runtime import optim
from runtime.check import numerical_grad

from control_flow_functions import newton_sqrt


def rnn_loss(Wh, Wx, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(h @ Wh + xs[t] @ Wx)
    return np.sum(h ** 2)


def _rnn_inputs(steps: int, hidden: int = 16):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(hidden, hidden)) * 0.3, rng.normal(size=(4, hidden)) * 0.3,
            rng.normal(size=(steps, 4)), np.zeros(hidden))


@pytest.fixture
def unrolled(monkeypatch):
    """Compiles with rolling off: every iteration printed."""
    def off():
        monkeypatch.setattr(rolling, "MIN_ITERATIONS", 10 ** 9)
    return off


def test_rnn_over_1000_steps_is_a_forward_loop_and_a_reversed_backward_loop(unrolled):
    args = _rnn_inputs(1000)
    g = grad(rnn_loss, argnums=(0, 1))
    gWh, gWx = g(*args)
    source = g.source(*args)
    assert len(source.splitlines()) < 400, source
    assert "for i in range(1000):" in source and "hs.append(h)" in source
    assert "for i in range(995, 0, -1):" in source and "hs[i - 1]" in source  # backward: counting down
    assert re.search(r"        g_Wh_\d+ \+= np.outer", source)  # and accumulates the weight's gradient in place
    unrolled()
    reference = grad(lambda *a: rnn_loss(*a), argnums=(0, 1))(*args)
    assert np.array_equal(gWh, reference[0]) and np.array_equal(gWx, reference[1])  # the same bits
    # against centered differences along random directions
    rng = np.random.default_rng(1)
    for _ in range(3):
        dWh, dWx = rng.normal(size=args[0].shape), rng.normal(size=args[1].shape)
        eps = 1e-6
        plus = rnn_loss(args[0] + eps * dWh, args[1] + eps * dWx, *args[2:])
        minus = rnn_loss(args[0] - eps * dWh, args[1] - eps * dWx, *args[2:])
        np.testing.assert_allclose(np.sum(gWh * dWh) + np.sum(gWx * dWx), (plus - minus) / (2 * eps), rtol=1e-6)


def test_rnn_gradient_matches_finite_differences_entrywise():
    args = _rnn_inputs(12, hidden=3)
    got = grad(rnn_loss, argnums=(0, 1, 2, 3))(*args)
    want = numerical_grad(rnn_loss, *args, argnums=(0, 1, 2, 3))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9)
    assert "for i in range(" in grad(rnn_loss, argnums=(0, 1, 2, 3)).source(*args)


def test_forward_mode_through_a_loop_is_a_loop():
    args = _rnn_inputs(20, hidden=4)
    tangents = tuple(np.ones_like(a) for a in args)
    value, tangent = jvp(rnn_loss, args, tangents)
    eps = 1e-6
    shifted = [a + eps * t for a, t in zip(args, tangents)]
    back = [a - eps * t for a, t in zip(args, tangents)]
    np.testing.assert_allclose(tangent, (rnn_loss(*shifted) - rnn_loss(*back)) / (2 * eps), rtol=1e-6)
    assert np.isclose(value, rnn_loss(*args))


def test_scan_and_fori_loop_print_as_loops():
    xs = np.linspace(-1.0, 1.0, 24).reshape(8, 3)

    def cumulative(w, xs):
        def step(carry, x):
            carry = np.tanh(carry * w + x)
            return carry, carry * 2.0
        last, ys = scan(step, np.zeros(3), xs)
        return np.sum(ys) + np.sum(last)

    def repeated(w, xs):
        return np.sum(fori_loop(0, 10, lambda i, v: np.sin(v) * w + i + xs[i % 8], np.ones(3)))

    for f in (cumulative, repeated):
        w = np.array([0.5, -0.3, 0.8])
        g = grad(f, argnums=(0, 1))
        got = g(w, xs)
        for k, want in enumerate(numerical_grad(f, w, xs, argnums=(0, 1))):
            np.testing.assert_allclose(got[k], want, rtol=1e-6, atol=1e-7)
        assert "for i in range(" in g.source(w, xs)


def test_newton_while_loop_gradient_and_source():
    a = 2.0
    value, slope = value_and_grad(newton_sqrt)(a)
    assert np.isclose(value, np.sqrt(a)) and np.isclose(slope, 0.5 / np.sqrt(a))


# ----------------------------------------------------------------- the printer alone


def _units(source: str) -> list[Unit]:
    return [Unit([stmt]) for stmt in ast.parse(source).body]


def _run(lines: list[str], **inputs):
    namespace = dict(inputs, np=np)
    exec("def f():\n" + "\n".join(lines), namespace)
    return namespace["f"]()


def _rolled_and_unrolled(source: str, **inputs):
    names = iter(f"n{k}" for k in range(1000))
    rolled = print_units(_units(source), lambda hint: f"{hint}_{next(names)}" if hint != "i" else "i")
    plain = print_units(_units(source), lambda hint: hint, roll=False)
    assert any(line.strip().startswith("for ") for line in rolled), rolled
    assert _run(rolled, **inputs) == _run(plain, **inputs), "\n".join(rolled)
    return rolled


def test_a_carry_read_after_its_name_is_bound_again_is_copied_first():
    # each iteration reads the previous p after binding the new one: p, q swap roles
    lines = ["p1 = q0 + 1", "q1 = p0 * 2"]
    for k in range(2, 8):
        lines += [f"p{k} = q{k - 1} + 1", f"q{k} = p{k - 1} * 2"]
    rolled = _rolled_and_unrolled("\n".join(lines) + "\nreturn (p7, q7, p3, q2)", p0=3, q0=5)
    assert any("prev_" in line for line in rolled)


def test_values_of_earlier_iterations_are_read_from_lists_and_the_last_by_name():
    lines = [f"y{k} = xs[{2 * k + 1}] * 3" for k in range(6)]
    lines += [f"z{k} = z{k - 1} + y{5 - k + 1}" if k else "z0 = y5" for k in range(6)]
    rolled = _rolled_and_unrolled("\n".join(lines) + "\nreturn (z5, y0, y5, y2)", xs=list(range(20)))
    assert any("2 * i + 1" in line for line in rolled)


def test_augmented_accumulators_and_deletes():
    lines = ["acc = 0"]
    for k in range(6):
        lines += [f"t{k} = xs[-1 - {k}] * 2", f"acc += t{k}", f"del t{k}"]
    _rolled_and_unrolled("\n".join(lines) + "\nreturn acc", xs=list(range(10)))


def test_a_pattern_that_breaks_ends_the_run():
    lines = [f"v{k} = v{k - 1} * 2" if k else "v0 = a" for k in range(9)]
    lines[6] = "v6 = v5 * 3"  # iteration 6 differs: two loops, with that statement between
    rolled = _rolled_and_unrolled("\n".join(lines) + "\nreturn (v8, v3)", a=1)
    assert "    v6 = v1 * 3" in rolled and "    for i in range(5):" in rolled  # the run ends before the odd one


def test_fewer_than_four_repeats_stay_unrolled():
    lines = ["v1 = a * 2", "v2 = v1 * 2", "v3 = v2 * 2", "return v3"]
    printed = print_units(_units("\n".join(lines)), lambda hint: hint)
    assert not any("for " in line for line in printed)


DATA = np.linspace(-1.0, 1.0, 60).reshape(20, 3)


def test_a_loop_over_a_global_arrays_rows_reads_them_stacked():
    """`DATA[t]` with a static t is a constant per iteration: the loop reads them from
    one array the module binds, and the per-row constants are gone."""
    def loss(w):
        h = np.zeros(3)
        for t in range(DATA.shape[0]):
            h = np.tanh(h * w + DATA[t])
        return np.sum(h)

    w = np.array([0.5, -0.3, 0.8])
    g = grad(loss)
    np.testing.assert_allclose(g(w), numerical_grad(loss, w), rtol=1e-6, atol=1e-9)
    source = g.source(w)
    assert re.search(r"\w+s\[i\]", source) and "for i in range(20):" in source, source
    assert source.count("bound at compile time") <= 3, source


def test_a_training_step_over_a_loop_updates_in_place_and_saves(tmp_path):
    """compile_step of an RNN: the loops carry the in-place update's gradient; the
    saved module (stacked constants included) computes the same gradient."""
    rows = np.random.default_rng(3).normal(size=(30, 4))

    def loss(p, xs):
        h = np.zeros(8)
        for t in range(xs.shape[0]):
            h = np.tanh(h @ p["Wh"] + xs[t] @ p["Wx"] + rows[t] @ p["Wd"])
        return np.sum(h ** 2)

    rng = np.random.default_rng(0)
    params = {"Wh": rng.normal(size=(8, 8)) * 0.3, "Wx": rng.normal(size=(4, 8)) * 0.3,
              "Wd": rng.normal(size=(4, 8)) * 0.1}
    xs = rng.normal(size=(30, 4))
    before = {k: v.copy() for k, v in params.items()}
    g = grad(loss)
    want = g(before, xs)
    step = compile_step(loss, optim.SGD(lr=0.1))
    assert np.isclose(step(params, xs), loss(before, xs))
    for k in params:
        np.testing.assert_allclose(params[k], before[k] - 0.1 * want[k], rtol=1e-12, atol=1e-15)
    assert "for i in range(30):" in step.source(params, xs)
    path = tmp_path / "rnn_grad.py"
    g.save(str(path), before, xs)
    spec = importlib.util.spec_from_file_location("rnn_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = module.loss_grad(*[before[k] for k in ("Wh", "Wx", "Wd")], xs)
    for k, got in zip(("Wh", "Wx", "Wd"), saved):
        np.testing.assert_array_equal(got, want[k])


def test_a_run_that_cannot_print_as_a_loop_leaves_the_others_rolled():
    """Each iteration reads a different module-level name the printer cannot stack
    (here `gather` stacks nothing): that run stays unrolled, the next one is a loop."""
    lines = [f"a{k} = p{k} * 2" for k in range(1, 7)] + [f"v{k} = v{k - 1} * 3" for k in range(1, 8)]
    inputs = {f"p{k}": k for k in range(1, 7)}
    rolled = _rolled_and_unrolled("\n".join(lines) + "\nreturn (a6, a2, v7)", v0=1, **inputs)
    assert sum(line.strip().startswith("for ") for line in rolled) == 1
    assert any("a3 = p3 * 2" in line for line in rolled)


@st.composite
def unrolled_programs(draw):
    """Straight-line code as a tracer records a loop: each iteration the same
    statements (drawn once), reading values of the same iteration, of the previous one
    (a carry, seeded from an input), a loop-invariant input, `xs[a + b*i]`, with an
    accumulator (`acc += ...`) and `del`s; sometimes one iteration differs. Then code
    that reads chosen iterations, and a loop that reads the first one's values last
    first."""
    count = draw(st.integers(4, 8))
    period = draw(st.integers(1, 3))
    start, step = draw(st.integers(0, 3)), draw(st.sampled_from([1, 2]))
    template = []
    for j in range(period):
        kinds = ["carry", "invariant", "index", "number"] + (["same"] * 2 if j else [])
        reads = [(kind, draw(st.integers(0, max(j - 1, 0) if kind == "same" else period - 1)))
                 for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=3))]
        template.append((reads, draw(st.sampled_from(["+", "*", "-"]))))
    odd = draw(st.integers(-1, count - 1))  # an iteration whose first statement differs (-1: none)
    accumulate, delete, row = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    lines, names = (["acc = 0"] if accumulate else []), {}
    for i in range(count):
        if row:  # a row of an argument, read again by later code rather than kept in a list
            lines.append(f"r{i} = xs[{2 * start + 1 + step * i}]")
        for j, (reads, op) in enumerate(template):
            operands = []
            for kind, k in reads:
                if kind == "same":
                    operands.append(names[(i, k)])
                elif kind == "carry":
                    operands.append(names[(i - 1, k)] if i else f"seed{k}")
                elif kind == "index":
                    operands.append(f"r{i}" if row else f"xs[{start + step * i}]")
                elif kind == "number":  # a number the loop computed in Python: one per iteration
                    operands.append(repr([0.5 * i, (i * i) % 5][k % 2]))
                else:
                    operands.append("c")
            names[(i, j)] = f"v{j}_{i}"
            tail = " + 1" if (i, j) == (odd, 0) else ""
            lines.append(f"v{j}_{i} = ({f' {op} '.join(operands)}{tail}) % 1000003")
        if accumulate:
            lines.append(f"acc += {names[(i, period - 1)]}")
        if delete and i >= 2 and period > 1:
            lines.append(f"del v0_{i - 2}")
    alive = [key for key in names if not (delete and period > 1 and key[1] == 0 and key[0] < count - 2)]
    later = [f"w0 = {names[(count - 1, period - 1)]} * 2"]
    later += [f"w{i} = w{i - 1} + {names[(count - 1 - i, period - 1)]} * 2" + (f" + r{count - 1 - i}" if row else "")
              for i in range(1, count)]
    picks = [names[draw(st.sampled_from(alive))] for _ in range(3)]
    result = ", ".join(picks + [f"w{count - 1}"] + (["acc"] if accumulate else []))
    return "\n".join(lines + later + [f"return ({result},)"]), period


@settings(max_examples=300, deadline=None, derandomize=True)
@given(unrolled_programs())
def test_rolled_code_computes_what_the_unrolled_code_computes(program):
    source, period = program
    names = iter(range(10 ** 6))
    fresh = lambda hint: hint if hint == "i" else f"{hint}_{next(names)}"  # noqa: E731
    inputs = dict(c=7, xs=list(range(100, 140)), **{f"seed{k}": 11 + k for k in range(period)})
    tables: dict = {}

    def tabulate(numbers):
        tables[f"numbers{len(tables)}"] = numbers
        return f"numbers{len(tables) - 1}"

    rolled = print_units(_units(source), fresh, tabulate=tabulate)
    inputs.update(tables)
    plain = print_units(_units(source), lambda hint: hint, roll=False)
    assert _run(rolled, **inputs) == _run(plain, **inputs), "\n".join(rolled)


def test_a_number_the_loop_computes_in_python_is_read_from_a_table(tmp_path):
    """`0.1 * t` is a Python float per iteration: the loop reads it from a tuple of
    Python numbers the module binds (weak scalars still), and a saved module too."""
    def loss(w):
        h = np.zeros(3, dtype=np.float32)
        for t in range(12):
            h = np.tanh(h * w + 0.1 * t)
        return np.sum(h ** 2)

    w = np.array([0.5, -0.3, 0.8], dtype=np.float32)
    g = grad(loss)
    got = g(w)
    assert got.dtype == np.float32  # the numbers stayed weak: no float64 promotion
    np.testing.assert_allclose(got, numerical_grad(loss, w.astype(np.float64)), rtol=2e-3, atol=1e-4)
    source = g.source(w)
    assert re.search(r"numbers\[i\]", source) and "Python numbers, one per iteration" in source, source
    path = tmp_path / "with_numbers.py"
    g.save(str(path), w)
    spec = importlib.util.spec_from_file_location("with_numbers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_array_equal(module.loss_grad(w), got)


def test_a_step_whose_iterations_compute_into_kept_arrays_keeps_one_row_per_iteration():
    """A large RNN step: each iteration's state goes into an array the module keeps,
    so the loop computes into rows of one kept array (`out=ws7[i]`), the backward
    loop releases list entries it is done with, and three steps match grad's."""
    def loss(p, xs):
        h = np.zeros((16, 32))
        for t in range(xs.shape[0]):
            h = np.tanh(h @ p["Wh"] + xs[t] @ p["Wx"])
        return np.sum(h ** 2)

    rng = np.random.default_rng(0)
    params = {"Wh": rng.normal(size=(32, 32)) * 0.1, "Wx": rng.normal(size=(8, 32)) * 0.1}
    xs = rng.normal(size=(12, 16, 8))
    step = compile_step(loss, optim.SGD(lr=0.01))
    want = {k: v.copy() for k, v in params.items()}
    for _ in range(3):
        g = grad(loss)(want, xs)
        expected = loss(want, xs)
        want = {k: want[k] - 0.01 * g[k] for k in want}
        assert np.isclose(step(params, xs), expected, rtol=1e-13)
        for k in params:
            np.testing.assert_allclose(params[k], want[k], rtol=1e-12, atol=1e-15)
    source = step.source(params, xs)
    assert re.search(r"out=ws\d+\[i\]", source) and re.search(r"^ws\d+ = np.empty\(\(12, 16, 32\)", source, re.M)
    assert source.count("for i in range(") == 2, source


def test_a_loop_inside_a_loop_computes_its_gradient():
    """A double sum over pairs (a kernel written with two loops): one level prints as a
    loop; the value and gradient are right."""
    def pairwise(x):
        total = 0.0
        for i in range(6):
            for j in range(6):
                total = total + np.exp(-(x[i] - x[j]) ** 2)
        return total

    x = np.linspace(-1.0, 1.0, 6) ** 3
    value, gradient = value_and_grad(pairwise)(x)
    assert value == pairwise(x)
    np.testing.assert_allclose(gradient, numerical_grad(pairwise, x), rtol=1e-6, atol=1e-8)
    assert "for i in range(" in value_and_grad(pairwise).source(x)

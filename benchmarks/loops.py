"""Loops in generated code: an RNN's gradient printed as loops against the same
gradient printed unrolled, and against a careful hand-written NumPy backward pass.

The program is the issue's RNN, `h = np.tanh(h @ Wh + xs[t] @ Wx)` over T steps with
16 hidden units (and a batch of 64 at 128 hidden units, where each step's arrays are
large enough for the memory plan to keep them between calls), loss `np.sum(h ** 2)`.
For each it prints the compile time of `grad` (a fresh function, the first call),
the lines of generated source, and the time per call of the compiled gradient with
loops, of the same gradient with rolling off (every iteration printed) and of
`hand_grad` below, measured round-robin in one process (each sees the same machine
load), as medians and ratios to the unrolled code. Targets (the control-flow issue):
1,000 steps of the small RNN compile in under 3 s to under 400 lines, and the loops
run within 1.2x of the unrolled code. A benchmark, not a test: exit code 0 whatever
the timings. Run: .venv/bin/python benchmarks/loops.py
"""
from __future__ import annotations

import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's compiler
import compiler.rolling as rolling  # noqa: E402
from compiler import grad  # noqa: E402

ROUNDS = 15


def rnn_loss(Wh, Wx, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(h @ Wh + xs[t] @ Wx)
    return np.sum(h ** 2)


def hand_grad(Wh, Wx, xs, h0):
    """The gradient written by hand: forward keeping the states, backward through time."""
    hs = [h0]
    for t in range(xs.shape[0]):
        hs.append(np.tanh(hs[-1] @ Wh + xs[t] @ Wx))
    g_h = 2 * hs[-1]
    g_Wh, g_Wx = np.zeros_like(Wh), np.zeros_like(Wx)
    for t in reversed(range(xs.shape[0])):
        g_a = g_h * (1 - hs[t + 1] ** 2)
        g_Wh += np.outer(hs[t], g_a) if g_a.ndim == 1 else hs[t].T @ g_a
        g_Wx += np.outer(xs[t], g_a) if g_a.ndim == 1 else xs[t].T @ g_a
        g_h = g_a @ Wh.T
    return g_Wh, g_Wx


def inputs(steps: int, hidden: int, batch: int | None):
    rng = np.random.default_rng(0)
    shape = (batch, hidden) if batch else (hidden,)
    xs = rng.normal(size=(steps, batch, 4) if batch else (steps, 4))
    return rng.normal(size=(hidden, hidden)) * 0.3 / np.sqrt(hidden / 16), rng.normal(size=(4, hidden)) * 0.3, xs, np.zeros(shape)


def compiled(roll: bool, args: tuple):
    saved = rolling.MIN_ITERATIONS
    rolling.MIN_ITERATIONS = saved if roll else 10 ** 9
    try:
        g = grad(lambda *a: rnn_loss(*a), argnums=(0, 1))  # a fresh function: a fresh cache
        start = time.perf_counter()
        g(*args)
        seconds = time.perf_counter() - start
        lines = len(g.source(*args).splitlines())
    finally:
        rolling.MIN_ITERATIONS = saved
    return g, seconds, lines


def main() -> None:
    print(f"RNN gradient, loops against unrolled code (python {sys.version.split()[0]}, numpy {np.__version__})")
    print(f"{'config':>26}  {'compile s':>9} {'lines':>6}   {'per call ms':>11}  {'/ unrolled':>10}  {'/ hand':>7}")
    verdicts = []
    for steps, hidden, batch in ((1000, 16, None), (200, 128, 64)):
        args = inputs(steps, hidden, batch)
        loops, loop_compile, loop_lines = compiled(True, args)
        flat, flat_compile, flat_lines = compiled(False, args)
        assert all(np.array_equal(a, b) for a, b in zip(loops(*args), flat(*args)))  # the same bits
        times = {"loops": [], "unrolled": [], "hand": []}
        fns = {"loops": loops, "unrolled": flat, "hand": hand_grad}
        for r in range(ROUNDS):
            names = list(times)
            for name in names[r % 3:] + names[:r % 3]:
                start = time.perf_counter()
                fns[name](*args)
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t) for name, t in times.items()}
        label = f"T={steps} hidden={hidden}" + (f" batch={batch}" if batch else "")
        for name, seconds, lines in (("loops", loop_compile, loop_lines), ("unrolled", flat_compile, flat_lines)):
            print(f"{label + ' ' + name:>26}  {seconds:9.2f} {lines:6d}   {med[name] * 1e3:11.2f}  "
                  f"{med[name] / med['unrolled']:10.2f}  {med[name] / med['hand']:7.2f}")
        print(f"{label + ' hand':>26}  {'':9} {'':6}   {med['hand'] * 1e3:11.2f}  {med['hand'] / med['unrolled']:10.2f}")
        if steps == 1000:
            verdicts += [(loop_compile < 3.0, f"1,000 steps compile in under 3 s ({loop_compile:.2f} s)"),
                         (loop_lines < 400, f"to under 400 lines ({loop_lines})")]
        verdicts.append((med["loops"] <= 1.2 * med["unrolled"],
                         f"{label}: loops within 1.2x of unrolled ({med['loops'] / med['unrolled']:.2f}x)"))
    for ok, text in verdicts:
        print(("PASS: " if ok else "FAIL: ") + text)


if __name__ == "__main__":
    main()

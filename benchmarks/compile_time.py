"""Compile time of `grad` against graph size: it must grow linearly.

The program is an unrolled chain, `x = np.sin(x) * 1.01` repeated, then `np.sum(x)`.
As in the tracker's measurements, an "N-op" program runs the loop body N times
(`for i in range(N)`), which records 2N forward primitives (sin, multiply) and about
as many again in the backward pass.
For each size this prints the time of the first `grad` call (trace + reverse +
optimize + generate, everything a cache miss costs) and a per-phase breakdown, timed
by wrapping the phase functions `compiler.api` calls. Then the ratio t(10k)/t(1k) and
PASS/FAIL against the targets: 10,000 ops compile in at most 10x the 1,000-op time,
and in under 5 s.

Run: .venv/bin/python benchmarks/compile_time.py [SIZE ...]
A benchmark, not a test: the exit code is 0 whatever the timings.
"""
from __future__ import annotations

import functools
import gc
import sys
import time
from collections import defaultdict

import numpy as np

import compiler.api as api
from compiler import grad

SIZES = (1_000, 10_000, 30_000)
PHASES = {"trace": "trace", "reverse": "reverse", "optimize": "optimize", "codegen": "generate"}
RATIO_TARGET = 10.0
SECONDS_TARGET = 5.0


def chain(n_ops: int):
    """sum(x) after n_ops rounds of `x = sin(x) * 1.01`, as a fresh function (a
    fresh compile cache)."""

    def f(x):
        for _ in range(n_ops):
            x = np.sin(x) * 1.01
        return np.sum(x)

    return f


class PhaseTimer:
    """Wraps the phase functions compiler.api calls, summing wall time per phase."""

    def __init__(self):
        self.times: dict[str, float] = defaultdict(float)
        self.saved: dict[str, object] = {}

    def __enter__(self) -> "PhaseTimer":
        for phase, attr in PHASES.items():
            original = getattr(api, attr)
            self.saved[attr] = original
            setattr(api, attr, self._timed(phase, original))
        return self

    def _timed(self, phase: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[phase] += time.perf_counter() - start

        return wrapper

    def __exit__(self, *exc) -> None:
        for attr, original in self.saved.items():
            setattr(api, attr, original)


def compile_once(n_ops: int) -> tuple[float, dict[str, float]]:
    """Seconds for the first grad call of an n_ops chain, and seconds per phase."""
    g = grad(chain(n_ops))
    x = np.linspace(0.1, 1.0, 4)
    gc.collect()
    with PhaseTimer() as timer:
        start = time.perf_counter()
        g(x)
        total = time.perf_counter() - start
    phases = dict(timer.times)
    phases["other"] = total - sum(timer.times.values())
    return total, phases


def main(argv: list[str]) -> int:
    sizes = tuple(int(a) for a in argv) or SIZES
    compile_once(200)  # warm imports and caches outside the measurement
    results: dict[int, float] = {}
    print(f"grad compile time of an unrolled chain (python {sys.version.split()[0]}, numpy {np.__version__})")
    print(f"{'ops':>8} {'total s':>9}  " + "  ".join(f"{p:>9}" for p in (*PHASES, "other")))
    for n in sizes:
        try:
            total, phases = compile_once(n)
        except RecursionError as err:
            print(f"{n:>8}  FAIL: RecursionError: {err}")
            continue
        results[n] = total
        cols = "  ".join(f"{phases.get(p, 0.0):9.3f}" for p in (*PHASES, "other"))
        print(f"{n:>8} {total:9.3f}  {cols}   ({total / n * 1e6:.0f} us/op)")
    if 1_000 in results and 10_000 in results:
        ratio = results[10_000] / results[1_000]
        print(f"t(10k)/t(1k) = {ratio:.2f}  (linear: 10)")
        print(f"{'PASS' if ratio <= RATIO_TARGET else 'FAIL'}: 10,000 ops in <= {RATIO_TARGET:g}x the 1,000-op time "
              f"({ratio:.2f}x)")
        print(f"{'PASS' if results[10_000] < SECONDS_TARGET else 'FAIL'}: 10,000 ops in under {SECONDS_TARGET:g} s "
              f"({results[10_000]:.2f} s)")
    else:
        print("(ratio and targets need sizes 1000 and 10000)")
    for n in sizes:
        if n not in results:
            print(f"FAIL: {n} ops did not compile")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

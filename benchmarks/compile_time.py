"""Compile time of `grad` against graph size: it must grow linearly.

The program is an unrolled chain, `x = np.sin(x) * 1.001 + 0.1` repeated, then
`np.sum(x)`. An "N-iteration" program runs the loop body N times, which records 3N
forward primitives (sin, multiply, add) and about as many again in the backward pass.
For each size this prints the time of the first `grad` call (trace + reverse +
optimize + generate + the first run: everything a cache miss costs) and a per-phase
breakdown, timed by wrapping the phase functions where the compile paths look them up
(`compiler.api`, `compiler.lowering`) ("other" is the rest of the call: signature,
validation, gradient naming, the first run of the generated function, and any
garbage collection that lands there). Then the two targets, PASS or FAIL: 10,000
iterations (30,000 forward primitives) compile in under 5 s, and in at most 10x the
time of 1,000 iterations (3,000 primitives). The targets are judged on wall-clock
time; the CPU-time column tells whether other load on the machine skewed it.

Run: .venv/bin/python benchmarks/compile_time.py [ITERATIONS ...]   (default 1000 10000)
A benchmark, not a test: the exit code is 0 whatever the timings.
tests/test_compile_time.py checks the same properties by counting work instead.
"""
from __future__ import annotations

import functools
import gc
import importlib
import pathlib
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's compiler
from compiler import grad  # noqa: E402

SIZES = (1_000, 10_000)
# phase -> the function name the compile paths call it by
PHASES = {"trace": "trace", "reverse": "reverse", "optimize": "optimize", "codegen": "generate"}
# modules whose global names the compile paths call the phases through
PHASE_MODULES = ("compiler.api", "compiler.lowering", "compiler.step")
RATIO_TARGET = 10.0
SECONDS_TARGET = 5.0


def chain(n_ops: int):
    """sum(x) after n_ops rounds of `x = sin(x) * 1.001 + 0.1`, as a fresh function
    (a fresh compile cache)."""

    def f(x):
        for _ in range(n_ops):
            x = np.sin(x) * 1.001 + 0.1
        return np.sum(x)

    return f


class PhaseTimer:
    """Wraps the phase functions in the modules that call them, summing wall and CPU
    time per phase (the outermost call only, so nesting is not counted twice)."""

    def __init__(self):
        self.times: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)
        self.saved: list[tuple[object, str, object]] = []

    def __enter__(self) -> "PhaseTimer":
        for module_name in PHASE_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for phase, attr in PHASES.items():
                original = getattr(module, attr, None)
                if callable(original):
                    self.saved.append((module, attr, original))
                    setattr(module, attr, self._timed(phase, original))
        return self

    def _timed(self, phase: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if self.depth[phase]:
                return fn(*args, **kwargs)
            self.depth[phase] += 1
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[phase] += time.perf_counter() - start
                self.cpu[phase] += time.process_time() - cpu
                self.depth[phase] -= 1

        return wrapper

    def __exit__(self, *exc) -> None:
        for module, attr, original in reversed(self.saved):
            setattr(module, attr, original)


def compile_once(n_ops: int) -> tuple[float, float, dict[str, float]]:
    """Wall seconds and CPU seconds for the first grad call of an n_ops chain, and
    wall seconds per phase."""
    g = grad(chain(n_ops))
    x = np.linspace(0.1, 1.0, 4)
    gc.collect()
    with PhaseTimer() as timer:
        start, cpu = time.perf_counter(), time.process_time()
        g(x)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    phases = dict(timer.times)
    phases["other"] = total - sum(timer.times.values())
    return total, cpu, phases


def main(argv: list[str]) -> int:
    sizes = tuple(int(a) for a in argv) or SIZES
    compile_once(200)  # warm imports and caches outside the measurement
    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    print(f"grad compile time of an unrolled chain (python {sys.version.split()[0]}, numpy {np.__version__})")
    print("wall-clock seconds; 'cpu s' is this process's CPU time, steadier on a loaded machine")
    print(f"{'iters':>8} {'prims':>7} {'total s':>9} {'cpu s':>9}  " + "  ".join(f"{p:>9}" for p in (*PHASES, "other")))
    for n in sizes:
        try:
            total, cpu_s, phases = compile_once(n)
        except RecursionError as err:
            print(f"{n:>8} {3 * n:>7}  FAIL: RecursionError: {err}")
            continue
        except Exception as err:  # a benchmark reports, it does not crash
            print(f"{n:>8} {3 * n:>7}  FAIL: {type(err).__name__}: {str(err)[:200]}")
            continue
        wall[n], cpu[n] = total, cpu_s
        cols = "  ".join(f"{phases.get(p, 0.0):9.3f}" for p in (*PHASES, "other"))
        print(f"{n:>8} {3 * n:>7} {total:9.3f} {cpu_s:9.3f}  {cols}   ({total / (3 * n) * 1e6:.0f} us/primitive)")
    if 1_000 in wall and 10_000 in wall:
        ratio = wall[10_000] / wall[1_000]
        print(f"t(10k)/t(1k) = {ratio:.2f} wall, {cpu[10_000] / cpu[1_000]:.2f} cpu  (linear: 10)")
        print(f"{'PASS' if ratio <= RATIO_TARGET else 'FAIL'}: 30,000 primitives in <= {RATIO_TARGET:g}x the time "
              f"of 3,000 ({ratio:.2f}x)")
        print(f"{'PASS' if wall[10_000] < SECONDS_TARGET else 'FAIL'}: 30,000 primitives in under "
              f"{SECONDS_TARGET:g} s ({wall[10_000]:.2f} s)")
        if any(wall[n] > 1.2 * cpu[n] for n in wall):
            print("note: wall time exceeds CPU time by over 20%: the machine was busy; rerun for steadier figures")
    else:
        print("(the ratio and the targets need sizes 1000 and 10000)")
    for n in sizes:
        if n not in wall:
            print(f"FAIL: {n} iterations did not compile")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

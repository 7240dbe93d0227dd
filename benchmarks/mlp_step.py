"""One MLP training step: adjoint's compiled step against careful hand-written NumPy.

The model is an MLP with ReLU hidden layers, the mean softmax cross-entropy of integer
labels (`runtime.nn.softmax_cross_entropy`) and plain SGD (`optim.SGD(lr=...)`), in
three sizes and two dtypes:

    A  4-32-32-3        batch 32     (Python overhead dominates)
    B  784-256-256-10   batch 128    (mixed)
    C  784-1024-1024-10 batch 1024   (matrix products dominate)

Implementations, all in this one process and timed round-robin (the starting one
rotates each round, so each sees the same machine load), after a warm-up:

    compiled   compiler.compile_step(loss_fn, optim.SGD(lr))  called as step(params, x, y)
    numpy      `hand_step` below: NumPy written carefully by hand (in-place work)
    jax        jax.jit of value_and_grad plus the update      (when jax is installed)
    torch      PyTorch eager on the CPU                       (when torch is installed)
    autograd   HIPS autograd                                  (when autograd is installed)
    gemm floor the step's matrix products alone, into preallocated outputs

Printed per config and dtype, with 1 and with 2 BLAS threads: the median time per step
and its ratio to `numpy`; minor page faults per step over the timed rounds; and, each
implementation in a fresh subprocess (malloc's state, and so the faults, depend on the
process's history): the array memory a step holds at its peak (tracemalloc's count of
NumPy data: the arrays the first call kept plus the most the next steps allocate at
once), the peak resident memory over steps after the first, the same over the first
call (compile included), and the page faults of a few more steps; the compile time
(first call minus a steady call); and the BLAS in use. Then the tracker's targets with
PASS/FAIL (the process does not fail on a FAIL); the memory target compares array
memory, which counts what the step itself holds and none of the Python objects that
compiling leaves in the process (about 0.5 MiB, whatever the sizes).

Run: make bench-mlp   (or: python benchmarks/mlp_step.py [--quick])
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from compiler import compile_step
from runtime import nn, optim

LR = 1e-3
CONFIGS: dict[str, tuple[list[int], int]] = {
    "A": ([4, 32, 32, 3], 32),
    "B": ([784, 256, 256, 10], 128),
    "C": ([784, 1024, 1024, 10], 1024),
}
DTYPES = (np.float64, np.float32)
OPTIONAL = ("jax", "torch", "autograd")  # never dependencies of the project
MEMORY_STEPS = 4  # steps each memory subprocess runs (the first one compiles)
FOREIGN_ARRAYS = ("jax", "torch")  # their arrays are not NumPy's: tracemalloc does not see them


def loss_fn(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)


# --- the problem ------------------------------------------------------------------------

@dataclasses.dataclass
class Problem:
    config: str
    sizes: list[int]
    batch: int
    dtype: type
    params: dict[str, np.ndarray]
    x: np.ndarray
    y: np.ndarray

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    def fresh_params(self) -> dict[str, np.ndarray]:
        """A private copy, so that no implementation sees another's updates."""
        return {k: v.copy() for k, v in self.params.items()}


def make_problem(config: str, dtype: type, seed: int = 0) -> Problem:
    """He-normal weights, zero biases, standard-normal inputs, uniform labels. Drawn
    directly in `dtype` (no float64 temporaries), so that the memory measurements'
    baseline holds no freed peak."""
    sizes, batch = CONFIGS[config]
    rng = np.random.default_rng(seed)
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        w = rng.standard_normal((fan_in, fan_out), dtype=dtype)
        w *= np.sqrt(2.0 / fan_in)
        params[f"W{i}"], params[f"b{i}"] = w, np.zeros(fan_out, dtype=dtype)
    x = rng.standard_normal((batch, sizes[0]), dtype=dtype)
    y = rng.integers(0, sizes[-1], batch)
    return Problem(config, sizes, batch, dtype, params, x, y)


# --- implementations: setup(problem, threads) -> a callable running one step -------------

def setup_compiled(p: Problem, threads: int) -> Callable[[], Any]:
    params, x, y = p.fresh_params(), p.x, p.y
    step = compile_step(loss_fn, optim.SGD(lr=LR))
    return lambda: step(params, x, y)


def hand_step(Ws: list, bs: list, x: np.ndarray, y: np.ndarray, rows: np.ndarray, lr: float):
    """The step as a careful NumPy programmer writes it: every elementwise operation in
    place, one max / exp / sum / log for the softmax cross-entropy, whose gradient
    reuses the exponentials; the ReLU mask is taken from the activations (a > 0 exactly
    where z > 0). Returns the loss; updates `Ws` and `bs` in place."""
    acts = [x]
    for W, b in zip(Ws[:-1], bs[:-1]):
        h = acts[-1] @ W
        h += b
        np.maximum(h, 0, out=h)
        acts.append(h)
    z = acts[-1] @ Ws[-1]
    z += bs[-1]
    n = len(y)
    z -= z.max(axis=1, keepdims=True)
    picked = z[rows, y]  # the labels' shifted logits (a copy), before exp overwrites z
    e = np.exp(z, out=z)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s).sum() - picked.sum()) / n
    # d loss / d logits = (softmax - onehot) / n = e / (n s) - onehot / n
    s *= n
    e /= s
    e[rows, y] -= 1.0 / n
    g = e
    for i in reversed(range(len(Ws))):
        a = acts[i]
        gW = a.T @ g
        gb = g.sum(axis=0)
        if i:
            g_prev = g @ Ws[i].T  # before Ws[i] is updated
            g_prev *= a > 0
        gW *= lr
        Ws[i] -= gW
        gb *= lr
        bs[i] -= gb
        if i:
            g = g_prev
    return loss


def setup_hand(p: Problem, threads: int) -> Callable[[], Any]:
    params = p.fresh_params()
    Ws = [params[f"W{i}"] for i in range(1, p.depth + 1)]
    bs = [params[f"b{i}"] for i in range(1, p.depth + 1)]
    x, y, rows = p.x, p.y, np.arange(p.batch)
    return lambda: hand_step(Ws, bs, x, y, rows, LR)


def setup_gemm_floor(p: Problem, threads: int) -> Callable[[], Any]:
    """The step's matrix products alone (forward z_i = a_{i-1} W_i; backward
    gW_i = a_{i-1}^T g_i and g_{i-1} = g_i W_i^T for i > 1), each into a preallocated
    output: the time no implementation of the step can beat."""
    rng = np.random.default_rng(1)
    Ws = [p.params[f"W{i}"].copy() for i in range(1, p.depth + 1)]
    acts = [p.x] + [rng.standard_normal((p.batch, n), dtype=p.dtype) for n in p.sizes[1:-1]]
    gs = [rng.standard_normal((p.batch, n), dtype=p.dtype) for n in p.sizes[1:]]
    zs = [np.empty((p.batch, n), p.dtype) for n in p.sizes[1:]]
    gWs = [np.empty_like(W) for W in Ws]
    gas = [np.empty((p.batch, n), p.dtype) for n in p.sizes[1:-1]]

    def run() -> None:
        for a, W, z in zip(acts, Ws, zs):
            np.matmul(a, W, out=z)
        for i in reversed(range(len(Ws))):
            np.matmul(acts[i].T, gs[i], out=gWs[i])
            if i:
                np.matmul(gs[i], Ws[i].T, out=gas[i - 1])
    return run


def setup_jax(p: Problem, threads: int) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # for float64; float32 stays float32
    n = p.batch

    def loss(params, x, y):
        h = x
        for i in range(1, p.depth + 1):
            z = h @ params[f"W{i}"] + params[f"b{i}"]
            h = jax.nn.relu(z)
        return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(n), y])

    def sgd(params, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda w, g: w - LR * g, params, grads), value

    step = jax.jit(sgd, donate_argnums=0)
    state = {k: jnp.asarray(v) for k, v in p.fresh_params().items()}
    x, y = jnp.asarray(p.x), jnp.asarray(p.y)

    def run():
        nonlocal state
        state, value = step(state, x, y)
        return jax.block_until_ready(value)
    return run


def setup_torch(p: Problem, threads: int) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    params = [torch.tensor(p.params[f"{k}{i}"], requires_grad=True)
              for i in range(1, p.depth + 1) for k in "Wb"]
    x, y = torch.from_numpy(p.x), torch.from_numpy(p.y)

    def run():
        for w in params:
            w.grad = None
        h = x
        for i in range(0, len(params), 2):
            z = torch.addmm(params[i + 1], h, params[i])
            h = torch.relu(z)
        loss = F.cross_entropy(z, y)
        loss.backward()
        with torch.no_grad():
            torch._foreach_add_(params, [w.grad for w in params], alpha=-LR)
        return loss
    return run


def setup_autograd(p: Problem, threads: int) -> Callable[[], Any]:
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    rows = np.arange(p.batch)

    def loss(params, x, y):
        h = x
        for i in range(1, p.depth + 1):
            z = anp.dot(h, params[f"W{i}"]) + params[f"b{i}"]
            h = anp.maximum(z, 0)
        return anp.mean(logsumexp(z, axis=1) - z[rows, y])

    value_and_grad = autograd.value_and_grad(loss)
    params, x, y = p.fresh_params(), p.x, p.y

    def run():
        value, grads = value_and_grad(params, x, y)
        for k, g in grads.items():
            params[k] -= LR * g
        return value
    return run


IMPLEMENTATIONS: dict[str, Callable[[Problem, int], Callable[[], Any]]] = {
    "compiled": setup_compiled,
    "numpy": setup_hand,
    "jax": setup_jax,
    "torch": setup_torch,
    "autograd": setup_autograd,
}
STEPS = ("compiled", "numpy", "jax", "torch", "autograd")  # implementations of the step
FAULTS_OF = ("compiled", "numpy")  # whose page faults are reported


def available(name: str) -> bool:
    """Whether an implementation can run, found without importing it (importing
    jax or torch here would raise the memory floor of every later subprocess)."""
    return name not in OPTIONAL or importlib.util.find_spec(name) is not None


# --- timing ------------------------------------------------------------------------

def minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclasses.dataclass
class Timing:
    first_s: float  # the first call (compiles where there is compiling)
    per_call_s: list[float]  # one entry per round
    faults: int = 0  # minor page faults over the timed rounds
    calls: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.per_call_s)

    @property
    def faults_per_call(self) -> float:
        return self.faults / self.calls


def time_round_robin(runs: dict[str, Callable[[], Any]], rounds: int, batch_s: float,
                     warmup: int = 3) -> dict[str, Timing]:
    """Time each callable's first call, warm each up, choose per callable a number of
    calls that lasts about `batch_s`, then run `rounds` rounds, each timing every
    callable once in a rotating order. Page faults are counted around each batch."""
    timings: dict[str, Timing] = {}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        timings[name] = Timing(time.perf_counter() - start, [])
    numbers = {}
    for name, run in runs.items():
        for _ in range(warmup):
            run()
        start = time.perf_counter()
        run()
        numbers[name] = max(1, min(10_000, round(batch_s / (time.perf_counter() - start))))
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run, number, timing = runs[name], numbers[name], timings[name]
            faults = minflt()
            start = time.perf_counter()
            for _ in range(number):
                run()
            elapsed = time.perf_counter() - start
            timing.faults += minflt() - faults
            timing.calls += number
            timing.per_call_s.append(elapsed / number)
    return timings


def call_path_overhead(p: Problem, rounds: int, number: int) -> tuple[float, float]:
    """Median time of `step(params, x, y)` and of the generated function it calls,
    `compiled.generated.fn(*leaves)`, timed alternately. The difference is what the
    call path (flattening, the cache lookup, rebuilding the result) costs."""
    params = p.fresh_params()
    step = compile_step(loss_fn, optim.SGD(lr=LR))
    step(params, p.x, p.y)
    compiled, leaves, _ = step._entry(step._arguments(params, (p.x, p.y)), {})
    fn = compiled.generated.fn
    timings = time_round_robin({"step": lambda: step(params, p.x, p.y), "generated": lambda: fn(*leaves)},
                               rounds, batch_s=number * 1e-5)
    return timings["step"].median, timings["generated"].median


# --- peak memory, one subprocess per measurement -------------------------------------------

def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of resident memory to the current RSS
    (Linux: `5` to /proc/self/clear_refs), so that temporaries freed during imports and
    setup do not hide the step's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_kib(field: str) -> int | None:
    """A /proc/self/status field in KiB (VmRSS: resident now, VmHWM: its high-water mark)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _high_water_kib() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(impl: str, config: str, dtype: str, threads: int) -> None:
    """In a fresh process: set up, run one product on BLAS (so its buffers exist before
    the baseline), note the resident memory, then

    - the first call (a compiled step compiles in it): its high-water mark over the
      baseline is `first_mib`;
    - reset the high-water mark, run MEMORY_STEPS steps: the high-water mark over the
      same baseline is `peak_mib`, the step's own peak. It counts everything the first
      call left behind (a compiled step's kept arrays, its graph and module) and every
      temporary of the steps, but not the garbage compiling made and freed;
    - MEMORY_STEPS more steps, counting page faults.

    The fresh process's page faults complement the in-process count: glibc's malloc
    returns blocks over its mmap threshold (128 KiB at first) to the kernel on free,
    and raises that threshold when such a block is freed, so whether an array of a
    given size faults again each step depends on what the process allocated before."""
    with threadpool_limits(limits=threads):
        p = make_problem(config, np.dtype(dtype).type)
        run = IMPLEMENTATIONS[impl](p, threads)
        a = p.x[:, :min(64, p.sizes[0])]
        a.T @ a
        _reset_peak_rss()
        base = _status_kib("VmRSS") or _high_water_kib()
        run()
        first = _high_water_kib()
        _reset_peak_rss()
        for _ in range(MEMORY_STEPS):
            run()
        peak = _high_water_kib()
        faults = minflt()
        for _ in range(MEMORY_STEPS):
            run()
        faults = (minflt() - faults) / MEMORY_STEPS
    print(json.dumps({"peak_mib": (peak - base) / 1024, "first_mib": (first - base) / 1024, "faults": faults,
                      "arrays_mib": array_memory(impl, config, dtype, threads)}))


def array_memory(impl: str, config: str, dtype: str, threads: int) -> float:
    """MiB of array data a step holds at its peak, counted by tracemalloc (NumPy
    reports its data buffers in their own domain): the arrays the first call left
    behind (a compiled step's kept arrays) plus the most the next steps allocate at
    once. A count, not a measurement: no allocator or page-cache noise, and none of
    the Python objects compiling leaves."""
    with threadpool_limits(limits=threads):
        p = make_problem(config, np.dtype(dtype).type)
        run = IMPLEMENTATIONS[impl](p, threads)
        only_arrays = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]
        tracemalloc.start()
        before = tracemalloc.take_snapshot().filter_traces(only_arrays)
        run()
        kept = sum(stat.size_diff for stat in
                   tracemalloc.take_snapshot().filter_traces(only_arrays).compare_to(before, "filename"))
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(MEMORY_STEPS):
            run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return (kept + peak - start) / 2**20


def measure_memory(impl: str, config: str, dtype: type, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", impl, config,
           np.dtype(dtype).name, str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["exit %d" % out.returncode]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- reporting ------------------------------------------------------------------------

@dataclasses.dataclass
class Targets:
    lines: list[tuple[str, bool | None, str]] = dataclasses.field(default_factory=list)

    def check(self, what: str, value: float | None, limit: float, fmt: str) -> None:
        if value is None:
            self.lines.append((what, None, "not measured"))
        else:
            self.lines.append((what, value <= limit, f"{fmt.format(value)} (target <= {fmt.format(limit)})"))

    def print(self) -> None:
        print("\nTargets (tracker item 5):")
        for what, ok, detail in self.lines:
            verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
            print(f"  {verdict}  {what}: {detail}")
        failed = sum(ok is False for _, ok, _ in self.lines)
        print(f"  {len(self.lines) - failed} of {len(self.lines)} pass" + (f", {failed} FAIL" if failed else ""))


def fmt_time(s: float) -> str:
    return f"{s * 1e6:9.1f} us" if s < 1e-3 else f"{s * 1e3:9.2f} ms"


def describe_blas() -> str:
    parts = []
    for lib in threadpool_info():
        parts.append(f"{lib.get('internal_api')} {lib.get('version')} "
                     f"kernel={lib.get('architecture', '-')} threads={lib.get('num_threads')} "
                     f"({os.path.basename(lib.get('filepath', ''))})")
    return "; ".join(parts) or "no BLAS found by threadpoolctl"


def describe_blas_with(threads: int) -> str:
    with threadpool_limits(limits=threads):
        return describe_blas()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_header(args: argparse.Namespace) -> None:
    print(f"MLP training step benchmark{' (--quick)' if args.quick else ''}")
    print(f"  Python {platform.python_version()}, NumPy {np.__version__}, {cpu_name()}, {os.cpu_count()} CPUs")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"  {var}={os.environ.get(var, '(unset)')}")
    print(f"  BLAS: {describe_blas()}")
    print("  faults/step: minor page faults over the timed rounds in this process; array MiB, peak MiB,")
    print("  first-call MiB and fresh faults/step: a fresh subprocess per implementation. array: the array data")
    print("  a step holds at its peak (tracemalloc: kept arrays + the steps' temporaries); peak: resident memory")
    print("  over steps after the first (everything the first call kept); first call: compile included")
    for name in OPTIONAL:
        if not available(name):
            print(f"  note: {name} is not installed; its column is skipped (pip install {name} to include it)")
    if available("jax"):
        print("  note: jax runs on XLA's own thread pool, which threadpool_limits does not limit")


def print_block(p: Problem, threads: int, timings: dict[str, Timing], memory: dict) -> None:
    hand = timings["numpy"].median
    print(f"\n{p.config} {'-'.join(map(str, p.sizes))} batch {p.batch}, {np.dtype(p.dtype).name}, "
          f"{threads} BLAS thread{'s' if threads > 1 else ''}")
    print(f"  {'':<11}{'time/step':>12} {'x numpy':>8} {'faults/step':>12} {'array MiB':>10} {'peak MiB':>9} "
          f"{'first-call MiB':>15} {'fresh faults/step':>18}")
    for name, t in timings.items():
        ratio = f"{t.median / hand:8.3f}"
        faults = f"{t.faults_per_call:12.2f}" if name in FAULTS_OF else " " * 12
        mem = memory.get(name)
        if mem is None:
            peak = f"{'-':>10} {'-':>9} {'-':>15} {'-':>18}"
        elif "error" in mem:
            peak = f"{'error':>10}"
        else:
            arrays = f"{mem['arrays_mib']:10.2f}" if name not in FOREIGN_ARRAYS else f"{'n/a':>10}"
            peak = f"{arrays} {mem['peak_mib']:9.1f} {mem['first_mib']:15.1f} {mem['faults']:18.1f}"
        print(f"  {name:<11}{fmt_time(t.median):>12} {ratio} {faults} {peak}")
    compiled, floor = timings["compiled"], timings["gemm floor"]
    print(f"  compiled / gemm floor: {compiled.median / floor.median:.3f}   "
          f"compile time (first call - steady): {(compiled.first_s - compiled.median) * 1e3:.1f} ms"
          + (f"   jax jit: {(timings['jax'].first_s - timings['jax'].median) * 1e3:.0f} ms" if "jax" in timings else ""))
    for name, mem in memory.items():
        if "error" in mem:
            print(f"  peak memory of {name} failed: {mem['error']}")


# --- the run ------------------------------------------------------------------------

def check_agreement(p: Problem) -> None:
    """The hand-written step must compute what the compiled one does: same loss, same
    updated parameters after one step from the same start."""
    a, b = p.fresh_params(), p.fresh_params()
    loss_c = compile_step(loss_fn, optim.SGD(lr=LR))(a, p.x, p.y)
    Ws, bs = [b[f"W{i}"] for i in range(1, p.depth + 1)], [b[f"b{i}"] for i in range(1, p.depth + 1)]
    loss_h = hand_step(Ws, bs, p.x, p.y, np.arange(p.batch), LR)
    tol = 1e-4 if p.dtype == np.float32 else 1e-10
    same = np.isclose(loss_c, loss_h, rtol=tol) and all(np.allclose(a[k], b[k], rtol=tol, atol=tol) for k in a)
    if not same:
        print(f"  WARNING: hand-written step disagrees with the compiled one at {p.config} "
              f"{np.dtype(p.dtype).name} (loss {loss_c} vs {loss_h})")


def run_block(p: Problem, threads: int, impls: list[str], rounds: int, batch_s: float) -> dict[str, Timing]:
    with threadpool_limits(limits=threads):
        check_agreement(p)
        runs = {name: IMPLEMENTATIONS[name](p, threads) for name in impls}
        runs["gemm floor"] = setup_gemm_floor(p, threads)
        return time_round_robin(runs, rounds, batch_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds, float64 only, 1 BLAS thread, memory of compiled/numpy only")
    parser.add_argument("--memory-child", nargs=4, metavar=("IMPL", "CONFIG", "DTYPE", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        impl, config, dtype, threads = args.memory_child
        memory_child(impl, config, dtype, int(threads))
        return
    warnings.filterwarnings("ignore", message=".*[Dd]onat.*")

    started = time.perf_counter()
    dtypes = DTYPES[:1] if args.quick else DTYPES
    thread_counts = (1,) if args.quick else (1, 2)
    rounds, batch_s = (5, 0.02) if args.quick else (21, 0.05)  # full: medians of 21 rounds
    impls = [name for name in STEPS if available(name)]
    memory_impls = ["compiled", "numpy"] if args.quick else impls
    print_header(args)

    # Memory first, while this process is still small (see memory_child).
    memory = {(t, c, d, i): measure_memory(i, c, d, t)
              for t in thread_counts for c in CONFIGS for d in dtypes for i in memory_impls}

    targets = Targets()
    results = {}
    overhead = None
    for threads in thread_counts:
        for dtype in dtypes:
            for config in CONFIGS:
                p = make_problem(config, dtype)
                timings = run_block(p, threads, impls, rounds, batch_s)
                results[threads, config, dtype] = timings
                print_block(p, threads, timings, {i: memory[threads, config, dtype, i] for i in memory_impls})
                if config == "A" and overhead is None and threads == 1 and dtype == np.float64:
                    with threadpool_limits(limits=threads):
                        overhead = call_path_overhead(p, rounds=2 * rounds, number=2000)
                    print(f"  call path: step(params, x, y) {overhead[0] * 1e6:.2f} us, generated fn "
                          f"{overhead[1] * 1e6:.2f} us, overhead {(overhead[0] - overhead[1]) * 1e6:.2f} us")
        print(f"\n  BLAS with {threads} thread(s): {describe_blas_with(threads)}")

    collect_targets(targets, results, memory, memory_impls, overhead)
    targets.print()
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")


def collect_targets(targets: Targets, results: dict, memory: dict, memory_impls: list[str],
                    overhead: tuple[float, float] | None) -> None:
    for (threads, config, dtype), t in results.items():
        where = f"{config} {np.dtype(dtype).name} {threads}T"
        ratio = t["compiled"].median / t["numpy"].median
        targets.check(f"time vs careful NumPy, {where}", ratio, 1.0, "{:.3f}x")
        if config == "B":
            targets.check(f"time vs careful NumPy at B, {where}", ratio, 0.97, "{:.3f}x")
        if config in ("B", "C"):
            limit = 1.08 if config == "B" else 1.02
            targets.check(f"time vs GEMM floor, {where}", t["compiled"].median / t["gemm floor"].median,
                          limit, "{:.3f}x")
        targets.check(f"steady-state page faults per step, {where}", t["compiled"].faults_per_call, 0.0, "{:.2f}")
        if config == "B":
            compile_ms = (t["compiled"].first_s - t["compiled"].median) * 1e3
            targets.check(f"compile time of the B step, {where}", compile_ms, 30.0, "{:.1f} ms")
        mem_c, mem_h = memory.get((threads, config, dtype, "compiled")), memory.get((threads, config, dtype, "numpy"))
        if mem_c and mem_h and "error" not in mem_c and "error" not in mem_h:
            targets.check(f"peak array memory vs careful NumPy (MiB over), {where}",
                          mem_c["arrays_mib"] - mem_h["arrays_mib"], 0.0, "{:+.2f}")
    targets.check("call path over the generated function, A float64 1T",
                  None if overhead is None else (overhead[0] - overhead[1]) * 1e6, 5.0, "{:.2f} us")


if __name__ == "__main__":
    main()

"""The lecture's cost argument on this implementation: forward mode costs a pass per
input, reverse mode a pass per output.

1. The Jacobian of f(x) = tanh(A @ sin(x)), f: R^n -> R^m, by `jacfwd` and by
   `jacrev`, for a wide function (n >> m) and a tall one (n << m). Forward mode
   should win when n << m and lose when n >> m; `jacobian` picks the cheaper mode
   from the sizes. `jacfwd` pushes the n basis directions through one batched
   tangent pass (arrays with a leading axis of n), `jacrev` runs m cotangent passes
   in one program, so the measured ratio is smaller than the ratio of arithmetic
   (n / m) where the batch makes forward mode's work a few large array operations.
2. A Hessian-vector product `hvp(loss, (w,), (v,))` (forward over reverse, one
   tangent pass through the gradient) against forming the Hessian with `hessian`
   and multiplying, and against one `grad` call for scale.

Every variant runs in the same process, interleaved round-robin after a warm-up;
times are medians of the rounds. Compile times (the first call) are printed apart.

Run: .venv/bin/python benchmarks/jacobian.py [--rounds N]
A benchmark, not a test: the exit code is 0 whatever the timings.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from typing import Callable

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout's compiler
from compiler import grad, hessian, hvp, jacfwd, jacobian, jacrev  # noqa: E402

WIDE, TALL = (1024, 4), (4, 256)  # (n inputs, m outputs)
HVP_SIZE = 512


def mapping(n: int, m: int, rng: np.random.Generator) -> Callable:
    """f: R^n -> R^m, a dense layer with a smooth nonlinearity on both sides."""
    A = rng.normal(size=(m, n)) / np.sqrt(n)

    def f(x):
        return np.tanh(A @ np.sin(x))

    return f


def timed(call: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - start) / inner


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each case, measured round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name].append(timed(call, inner))
    return {name: statistics.median(times) for name, times in samples.items()}


def first_call(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def jacobian_table(rounds: int) -> None:
    rng = np.random.default_rng(0)
    print(f"{'f: R^n -> R^m':>16} {'mode':>8} {'compile s':>10} {'per call us':>12} {'fwd / rev':>10}")
    for n, m in (WIDE, TALL):
        f = mapping(n, m, rng)
        x = rng.normal(size=n)
        transforms = {"jacfwd": jacfwd(f), "jacrev": jacrev(f), "jacobian": jacobian(f)}
        compile_s = {name: first_call(lambda t=t: t(x)) for name, t in transforms.items()}
        reference = transforms["jacrev"](x)
        for t in transforms.values():
            np.testing.assert_allclose(t(x), reference, rtol=1e-10, atol=1e-12)
        times = interleaved({name: (lambda t=t: t(x)) for name, t in transforms.items()}, rounds, inner=20)
        ratio = times["jacfwd"] / times["jacrev"]
        for name in transforms:
            print(f"{f'n={n}, m={m}':>16} {name:>8} {compile_s[name]:>10.2f} {times[name] * 1e6:>12.1f} "
                  f"{ratio if name == 'jacfwd' else float('nan'):>10.2f}")
        cheaper = "jacfwd" if times["jacfwd"] < times["jacrev"] else "jacrev"
        expected = "jacfwd" if n <= m else "jacrev"
        verdict = "PASS" if cheaper == expected else "FAIL"
        print(f"  {verdict}: the cheaper mode is {cheaper}; the lecture predicts {expected} "
              f"(n {'<=' if n <= m else '>'} m); jacobian picked {expected}")


def hvp_table(rounds: int) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, HVP_SIZE)) / np.sqrt(HVP_SIZE)

    def loss(w):
        return np.sum(np.log1p(np.exp(X @ w))) + 0.5 * np.sum(w ** 2)

    w, v = rng.normal(size=HVP_SIZE), rng.normal(size=HVP_SIZE)
    gradient, full = grad(loss), hessian(loss)
    cases = {
        "grad": lambda: gradient(w),
        "hvp": lambda: hvp(loss, (w,), (v,)),
        "hessian @ v": lambda: full(w) @ v,
    }
    compile_s = {name: first_call(call) for name, call in cases.items()}
    np.testing.assert_allclose(cases["hvp"](), cases["hessian @ v"](), rtol=1e-8, atol=1e-10)
    times = interleaved(cases, rounds, inner=20)
    print(f"\nloss: R^{HVP_SIZE} -> R (logistic, 64 rows)")
    print(f"{'variant':>12} {'compile s':>10} {'per call us':>12} {'/ grad':>8}")
    for name in cases:
        print(f"{name:>12} {compile_s[name]:>10.2f} {times[name] * 1e6:>12.1f} {times[name] / times['grad']:>8.2f}")
    verdict = "PASS" if times["hvp"] < times["hessian @ v"] else "FAIL"
    print(f"  {verdict}: hvp is {times['hessian @ v'] / times['hvp']:.1f}x faster than forming the Hessian "
          f"(a tangent pass batched over {HVP_SIZE} directions) and multiplying")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"numpy {np.__version__}; medians of {args.rounds} interleaved rounds\n")
    jacobian_table(args.rounds)
    hvp_table(args.rounds)


if __name__ == "__main__":
    main()

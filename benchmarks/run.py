"""Speed of compiled code against hand-written NumPy, measured in the same run.

Prints ratios (compiled / hand-written; 1.00 means as fast as writing it by hand):
  - one MLP training step (forward, backward, SGD-momentum update), 64-128-64-10 on a
    batch of 64 and 784-512-256-10 on a batch of 128;
  - the lecture's quiz value_and_grad on scalars (pure Python-call overhead);
plus the compile time of each, once with BLAS's default threads and once with one
thread. On these shared 2-core machines, small products suffer from BLAS thread
wake-ups that swamp the differences being measured; the one-thread figures are the
steadier comparison. Run: make bench
"""
from __future__ import annotations

import pathlib
import sys
import time
import timeit

import numpy as np

from compiler import compile_step, value_and_grad
from runtime import nn, optim

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
from quiz import f as quiz  # noqa: E402  (the lecture's quiz, as the example writes it)


def loss_fn(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)


def hand_step(p, v, x, y, lr=0.1, mu=0.9):
    """The same step written by hand in NumPy."""
    h1 = x @ p["W1"] + p["b1"]
    a1 = np.maximum(h1, 0)
    h2 = a1 @ p["W2"] + p["b2"]
    a2 = np.maximum(h2, 0)
    z = a2 @ p["W3"] + p["b3"]
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    n = len(y)
    loss = np.mean(lse[:, 0] - z[np.arange(n), y])
    g = np.exp(z - lse)
    g[np.arange(n), y] -= 1
    g /= n
    grads = {"W3": a2.T @ g, "b3": g.sum(0)}
    g = (g @ p["W3"].T) * (h2 > 0)
    grads["W2"], grads["b2"] = a1.T @ g, g.sum(0)
    g = (g @ p["W2"].T) * (h1 > 0)
    grads["W1"], grads["b1"] = x.T @ g, g.sum(0)
    for k in p:
        v[k] *= mu
        v[k] += grads[k]
        p[k] -= lr * v[k]
    return loss


def best_pair(compiled, hand, number: int, repeat: int = 7) -> tuple[float, float]:
    """Best time per call of each, measured alternately so both see the same load."""
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for fn, out in zip((compiled, hand), times):
            out.append(timeit.timeit(fn, number=number) / number)
    return min(times[0]), min(times[1])


def bench_mlp(sizes, batch: int, number: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)
    params = nn.init_mlp(sizes, rng=rng)
    hand_params = {k: v.copy() for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    step = compile_step(loss_fn, optimizer=optim.SGD(lr=0.1, momentum=0.9))
    start = time.perf_counter()
    step(params, x, y)
    compile_s = time.perf_counter() - start
    compiled, hand = best_pair(lambda: step(params, x, y), lambda: hand_step(hand_params, velocity, x, y), number)
    label = "-".join(map(str, sizes))
    print(f"mlp {label:>16} batch {batch:>3}: compiled {compiled * 1e6:9.1f} us  "
          f"hand-written {hand * 1e6:9.1f} us  ratio {compiled / hand:5.2f}  (compile {compile_s * 1e3:.0f} ms)")


def quiz_by_hand(x, z):
    a = x * z
    b = np.log(x)
    c = np.sin(b)
    d = np.exp(a)
    e = a / b
    f = c / a
    g_c = 1.0 / a
    g_b = g_c * np.cos(b) - e / b
    g_a = d + 1.0 / b - f / a
    return d + e + f, (g_a * z + g_b / x, g_a * x)


def bench_quiz() -> None:
    fg = value_and_grad(quiz, argnums=(0, 1))
    start = time.perf_counter()
    fg(2.0, 3.0)
    compile_s = time.perf_counter() - start
    x, z = np.float64(2.0), np.float64(3.0)
    compiled, hand = best_pair(lambda: fg(2.0, 3.0), lambda: quiz_by_hand(x, z), 20000)
    print(f"quiz value_and_grad (scalars):   compiled {compiled * 1e6:9.1f} us  "
          f"hand-written {hand * 1e6:9.1f} us  ratio {compiled / hand:5.2f}  (compile {compile_s * 1e3:.0f} ms)")


def main() -> None:
    bench_mlp([64, 128, 64, 10], 64, 1000)
    bench_mlp([784, 512, 256, 10], 128, 50)
    bench_quiz()


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    for threads in (None, 1):
        print(f"BLAS threads: {'default' if threads is None else threads}")
        with threadpool_limits(limits=threads):
            main()

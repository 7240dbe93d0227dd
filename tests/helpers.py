"""Shared checks for the primitive test suites (tests/test_primitives_*.py).

`assert_vjp` is the workhorse: it compiles `grad(f, argnums)`, validates the
optimized graph, checks each gradient's shape and dtype against its argument, and
compares the values with centered finite differences in float64. `weighted` turns
an array-valued function into a scalar one with random output weights, so every
entry of a VJP is exercised with a different cotangent.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad, jvp
from compiler.validation import validate
from runtime.check import check_grad

# Small shapes and few examples keep the whole primitive suite fast; derandomized
# so a tolerance failure reproduces on every run instead of flaking.
PROPERTY = settings(
    max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# central differences with eps=1e-6 on O(1) float64 values are good to ~1e-8 absolute
RTOL, ATOL = 1e-6, 1e-7

seeds = st.integers(0, 2**32 - 1)


def shapes(min_dims: int = 0, max_dims: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4)


def broadcastable_pair(min_dims: int = 0, max_dims: int = 3) -> st.SearchStrategy[tuple]:
    """Two shapes that broadcast together, with size-1 and missing dimensions."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4
    ).map(lambda bs: bs.input_shapes)


def normal(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.normal(size=shape).astype(dtype)


def positive(rng: np.random.Generator, shape, low: float = 0.5, high: float = 2.0, dtype=np.float64) -> np.ndarray:
    return rng.uniform(low, high, size=shape).astype(dtype)


def nonzero(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Values at least 0.3 away from 0 (for abs, sign, division)."""
    return (rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 2.0, size=shape)).astype(dtype)


def weighted(fn: Callable[..., Any], args: Sequence[Any], rng: np.random.Generator) -> Callable[..., Any]:
    """`lambda *a: np.sum(fn(*a) * W)` with fixed random weights W shaped like the output."""
    weights = rng.normal(size=np.shape(fn(*args)))

    def scalar(*a):
        return np.sum(fn(*a) * weights)

    return scalar


def _as_tuple(argnums, value):
    return (value,) if isinstance(argnums, int) else tuple(value)


def compiled_grad(f: Callable[..., Any], *args: Any, argnums=0) -> Any:
    """`grad(f, argnums)(*args)` after checking the compiled graph is well formed and
    each gradient is a fresh array with its argument's shape and dtype."""
    gf = grad(f, argnums=argnums)
    result = gf(*args)
    validate(gf.ir(*args))
    positions = _as_tuple(argnums, argnums)
    for pos, g in zip(positions, _as_tuple(argnums, result)):
        arg = args[pos]
        assert np.shape(g) == np.shape(arg), f"gradient of arg {pos} has shape {np.shape(g)}, not {np.shape(arg)}"
        assert np.result_type(g) == np.result_type(arg), f"gradient of arg {pos} is {np.result_type(g)}, not {np.result_type(arg)}"
        for other in args:
            if isinstance(other, np.ndarray) and isinstance(g, np.ndarray):
                assert not np.shares_memory(g, other), f"gradient of arg {pos} aliases an argument"
    return result


def assert_vjp(f: Callable[..., Any], *args: Any, argnums=0, rtol: float = RTOL, atol: float = ATOL) -> None:
    """The compiled gradient of the scalar `f` equals centered finite differences,
    and so does its forward-mode derivative (`assert_jvp`)."""
    analytic = compiled_grad(f, *args, argnums=argnums)
    result = check_grad(f, *args, argnums=argnums, grad=lambda *a: analytic, rtol=rtol, atol=atol)
    assert result.ok, str(result)
    assert_jvp(f, *args, argnums=argnums, gradient=analytic, rtol=rtol, atol=atol)


def _tangent_like(value: Any, rng: np.random.Generator, random: bool) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return rng.normal(size=value.shape).astype(value.dtype) if random else np.zeros_like(value)
    if isinstance(value, float):
        return float(rng.normal()) if random else 0.0
    return value


def assert_jvp(f: Callable[..., Any], *args: Any, argnums=0, gradient: Any = None,
               rtol: float = RTOL, atol: float = ATOL, eps: float = 1e-6) -> None:
    """Forward mode on the scalar `f`: `jvp` along a random direction of the `argnums`
    arguments equals the centered finite difference along it, and (given the
    gradient) the inner product of the gradient with that direction."""
    rng = np.random.default_rng(len(args))
    positions = _as_tuple(argnums, argnums)
    tangents = tuple(_tangent_like(a, rng, k in positions) for k, a in enumerate(args))
    value, derivative = jvp(f, args, tangents)
    np.testing.assert_allclose(value, f(*args), rtol=1e-12, atol=1e-12)

    def along(step: float) -> float:
        moved = [a + step * t if k in positions else a for k, (a, t) in enumerate(zip(args, tangents))]
        moved = [np.asarray(m, dtype=np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else m for m, a in zip(moved, args)]
        return float(f(*moved))

    numeric = (along(eps) - along(-eps)) / (2 * eps)
    np.testing.assert_allclose(derivative, numeric, rtol=rtol * 10, atol=atol * 10, err_msg="jvp vs finite differences")
    if gradient is not None:
        inner = sum(float(np.sum(g * tangents[k])) for k, g in zip(positions, _as_tuple(argnums, gradient)))
        np.testing.assert_allclose(derivative, inner, rtol=1e-8, atol=1e-9, err_msg="jvp vs <grad, v>")


def assert_weighted_vjp(fn: Callable[..., Any], *args: Any, rng: np.random.Generator, argnums=0) -> None:
    """`assert_vjp` of `fn`'s output contracted with random weights."""
    assert_vjp(weighted(fn, args, rng), *args, argnums=argnums)


def float_nodes(f: Callable[..., Any], *args: Any, argnums=0) -> set[np.dtype]:
    """The dtypes of every array-valued float node in the compiled gradient graph
    (Python-scalar constants excluded: they never upcast)."""
    graph = grad(f, argnums=argnums).ir(*args)
    return {n.dtype for n in graph.nodes() if n.dtype.kind == "f" and not n.aval.weak}


def assert_float32_backward(f: Callable[..., Any], *args: Any, argnums=0) -> None:
    """float32 arguments give float32 gradients, computed in float32 throughout,
    and agree with the float64 gradient."""
    args32 = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float64 else a for a in args)
    g32 = compiled_grad(f, *args32, argnums=argnums)
    assert float_nodes(f, *args32, argnums=argnums) == {np.dtype(np.float32)}, grad(f, argnums=argnums).source(*args32)
    g64 = grad(f, argnums=argnums)(*args)
    for a, b in zip(_as_tuple(argnums, g32), _as_tuple(argnums, g64)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


# --- well-conditioned linear-algebra inputs (tests/test_*linalg.py) -----------------

def spd(rng: np.random.Generator, batch: tuple, n: int) -> np.ndarray:
    """Well-conditioned symmetric positive definite matrices B B^T + n I."""
    b = rng.normal(size=batch + (n, n))
    return b @ np.swapaxes(b, -1, -2) + n * np.eye(n)


def distinct_spectrum(rng: np.random.Generator, batch: tuple, n: int) -> np.ndarray:
    """Symmetric matrices with eigenvalues 1, 2, ..., n (well separated)."""
    q, _ = np.linalg.qr(rng.normal(size=batch + (n, n)))
    return (q * np.arange(1.0, n + 1)) @ np.swapaxes(q, -1, -2)


@st.composite
def matmul_shapes(draw: Any) -> tuple:
    """Operand shapes NumPy's matmul accepts: 1-D or matrices with broadcast batch dims."""
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, min_side=1, max_side=3)).input_shapes
    a = (k,) if draw(st.booleans()) else batch_a + (m, k)
    b = (k,) if draw(st.booleans()) else batch_b + (k, n)
    return a, b

"""Gradient checking by centered finite differences (the lecture's equation 1):

    dJ/dθ_i ≈ (J(θ + ε d_i) - J(θ - ε d_i)) / 2ε,   d_i the i-th one-hot vector.

`numerical_grad` computes it for any arguments (floats, arrays or pytrees of them);
`check_grad` compares it with an analytic gradient. This module never imports the
compiler: the compiler registers its `grad` through `use_gradient`, and `check_grad`
uses it only when no `grad=` is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from runtime.tree import flatten, leaf_paths, unflatten

Argnums = int | tuple[int, ...]
GradientProvider = Callable[[Callable[..., Any], Argnums], Callable[..., Any]]

_provider: GradientProvider | None = None


def use_gradient(provider: GradientProvider | None) -> None:
    """Register `provider(f, argnums) -> gradient function` as the default analytic
    gradient of `check_grad` (None unregisters it)."""
    global _provider
    _provider = provider


def numerical_grad(f: Callable[..., Any], *args: Any, argnums: Argnums = 0,
                   eps: float = 1e-6) -> Any:
    """Centered finite-difference gradient of the scalar `f(*args)`, in float64.

    Returns what `grad(f, argnums)(*args)` would: for an int `argnums` a gradient with
    the structure of that argument, for a tuple a tuple of them. The caller's arrays
    are never touched: perturbations are made on float64 copies.
    """
    indices = _argnum_tuple(argnums, len(args))
    grads = tuple(_numerical_grad_one(f, args, i, eps) for i in indices)
    return grads[0] if isinstance(argnums, int) else grads


def _numerical_grad_one(f: Callable[..., Any], args: tuple, argnum: int, eps: float) -> Any:
    leaves, treedef = flatten(args[argnum])
    work = [np.array(leaf, dtype=np.float64) for leaf in leaves]
    call_args = list(args)
    call_args[argnum] = unflatten(treedef, work)

    def value() -> float:
        out = f(*call_args)
        if np.size(out) != 1:
            raise ValueError(f"f must return a scalar, got shape {np.shape(out)}")
        return float(np.reshape(out, ()))

    grads = []
    for leaf, x in zip(leaves, work):
        g = np.empty_like(x)
        for idx in np.ndindex(x.shape):
            saved = x[idx]
            x[idx] = saved + eps
            up = value()
            x[idx] = saved - eps
            down = value()
            x[idx] = saved
            g[idx] = (up - down) / (2 * eps)
        grads.append(g if isinstance(leaf, np.ndarray) else g[()])
    return unflatten(treedef, grads)


def _argnum_tuple(argnums: Argnums, nargs: int) -> tuple[int, ...]:
    indices = (argnums,) if isinstance(argnums, int) else argnums
    if not isinstance(indices, tuple) or not all(isinstance(i, int) for i in indices):
        raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
    for i in indices:
        if not -nargs <= i < nargs:
            raise ValueError(f"argnums {i} is out of range for {nargs} positional arguments")
    return tuple(i % nargs for i in indices)


@dataclass
class GradCheck:
    """The outcome of `check_grad`.

    `max_rel_error` is the largest |a - n| / (|n| + atol / rtol) over all coordinates
    (a analytic, n numeric): the relative error, floored for tiny gradients, so that
    `ok` ⇔ `max_rel_error <= rtol` ⇔ np.allclose(a, n, rtol, atol) everywhere.
    `worst` names the coordinate where it occurs, e.g. "arg 0 ['W1'][2, 1]".
    A GradCheck is truthy exactly when `ok`, so `assert check_grad(...)` works.
    """

    ok: bool
    max_rel_error: float
    worst: str
    analytic: float
    numeric: float
    rtol: float
    atol: float

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        return (f"gradient check {verdict}: max relative error {self.max_rel_error:.3g} "
                f"(rtol={self.rtol:g}, atol={self.atol:g}) at {self.worst}: "
                f"analytic {self.analytic!r}, numeric {self.numeric!r}")


def check_grad(f: Callable[..., Any], *args: Any, argnums: Argnums = 0, eps: float = 1e-6,
               grad: Callable[..., Any] | None = None, rtol: float = 1e-5,
               atol: float = 1e-7) -> GradCheck:
    """Compare the analytic gradient `grad(*args)` with `numerical_grad`.

    `grad` returns gradients structured as JAX's `grad(f, argnums)` would. When it is
    None, the provider registered with `use_gradient` builds it from `f`.
    """
    if rtol <= 0:
        raise ValueError(f"rtol must be positive, got {rtol}")
    if grad is None:
        if _provider is None:
            raise TypeError("check_grad has no analytic gradient: pass grad=... (a function "
                            "of the same arguments returning the gradient), or import "
                            "compiler, which registers its grad via use_gradient")
        grad = _provider(f, argnums)
    indices = _argnum_tuple(argnums, len(args))
    analytic = grad(*args)
    if isinstance(argnums, int):
        analytic = (analytic,)
    elif not isinstance(analytic, (tuple, list)) or len(analytic) != len(indices):
        raise ValueError(f"grad must return a tuple of {len(indices)} gradients for "
                         f"argnums={argnums!r}, got {type(analytic).__name__}")
    numeric = numerical_grad(f, *args, argnums=indices, eps=eps)
    worst = [w for argnum, a, n in zip(indices, analytic, numeric)
             for w in _worst_per_leaf(argnum, a, n, floor=atol / rtol)]
    if not worst:
        return GradCheck(True, 0.0, "nothing to compare", float("nan"), float("nan"),
                         rtol, atol)
    rel, where, a, n = max(worst, key=lambda w: np.inf if np.isnan(w[0]) else w[0])
    return GradCheck(rel <= rtol, rel, where, a, n, rtol, atol)


def _worst_per_leaf(argnum: int, analytic: Any, numeric: Any,
                    floor: float) -> list[tuple[float, str, float, float]]:
    """(relative error, where, analytic, numeric) at the worst coordinate of each leaf."""
    a_leaves, _ = flatten(analytic)
    n_leaves, _ = flatten(numeric)
    if len(a_leaves) != len(n_leaves):
        raise ValueError(f"grad returned {len(a_leaves)} leaves for arg {argnum}, "
                         f"which has {len(n_leaves)}")
    worst = []
    for path, a, n in zip(leaf_paths(numeric), a_leaves, n_leaves):
        a = np.asarray(a, dtype=np.float64)
        n = np.asarray(n, dtype=np.float64)
        if a.shape != n.shape:
            raise ValueError(f"grad returned shape {a.shape} for arg {argnum}"
                             f"{_path_str(path)}, whose shape is {n.shape}")
        if a.size:
            rel = np.abs(a - n) / (np.abs(n) + floor)
            idx = np.unravel_index(np.argmax(rel), rel.shape)  # a nan counts as largest
            worst.append((float(rel[idx]), _where(argnum, path, idx), float(a[idx]),
                          float(n[idx])))
    return worst


def assert_grad_close(f: Callable[..., Any], *args: Any, argnums: Argnums = 0,
                      eps: float = 1e-6, grad: Callable[..., Any] | None = None,
                      rtol: float = 1e-5, atol: float = 1e-7) -> None:
    """`check_grad`, raising AssertionError with its report when the check fails."""
    result = check_grad(f, *args, argnums=argnums, eps=eps, grad=grad, rtol=rtol, atol=atol)
    if not result.ok:
        raise AssertionError(str(result))


def _path_str(path: tuple) -> str:
    return "".join(f"[{key!r}]" for key in path)


def _where(argnum: int, path: tuple, idx: tuple) -> str:
    index = f"[{', '.join(str(int(i)) for i in idx)}]" if idx else ""
    return f"arg {argnum} {_path_str(path)}{index}".rstrip()


# --- check_grads: both modes, any order, random directions -----------------------

Derivatives = tuple[Callable[..., Any], Callable[..., Any]]  # (jvp, vjp) as in compiler
_derivatives: Derivatives | None = None


def use_derivatives(jvp: Callable[..., Any] | None, vjp: Callable[..., Any] | None) -> None:
    """Register forward- and reverse-mode providers for `check_grads`:
    `jvp(f, primals, tangents) -> (out, tangent)`, `vjp(f, *primals) -> (out, pullback)`."""
    global _derivatives
    _derivatives = None if jvp is None or vjp is None else (jvp, vjp)


def _random_like(tree_value: Any, rng: np.random.Generator) -> Any:
    leaves, treedef = flatten(tree_value)
    return unflatten(treedef, [_random_leaf(leaf, rng) for leaf in leaves])


def _random_leaf(leaf: Any, rng: np.random.Generator) -> Any:
    if isinstance(leaf, np.ndarray):
        return rng.normal(size=leaf.shape).astype(leaf.dtype if leaf.dtype.kind == "f" else np.float64)
    return float(rng.normal())


def _inner(a: Any, b: Any) -> float:
    return float(sum(np.sum(np.asarray(x, dtype=np.float64) * np.asarray(y, dtype=np.float64))
                     for x, y in zip(flatten(a)[0], flatten(b)[0])))


def _shifted(args: tuple, direction: tuple, step: float) -> tuple:
    leaves, treedef = flatten(args)
    moved = [np.asarray(x, dtype=np.float64) + step * np.asarray(d, dtype=np.float64) if isinstance(x, np.ndarray)
             else x + step * d for x, d in zip(leaves, flatten(direction)[0])]
    return unflatten(treedef, moved)


def check_grads(f: Callable[..., Any], args: tuple, order: int = 2, modes: tuple[str, ...] = ("fwd", "rev"),
                eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-6, seed: int = 0) -> None:
    """Check `f`'s derivatives at `args` against centered finite differences, in
    forward mode ("fwd", by `jvp`) and reverse mode ("rev", by `vjp`), up to `order`,
    as autograd's and JAX's `check_grads` do: along random directions v (inputs) and
    u (outputs), ⟨u, J v⟩ from each mode must match the finite difference of ⟨u, f⟩
    along v. Order k checks the derivative functions themselves at order k - 1.
    Raises AssertionError with the mode, order and both numbers on a mismatch.
    `args` is a tuple of float arrays and floats (pytrees of them allowed)."""
    if _derivatives is None:
        raise TypeError("check_grads needs derivative providers: import compiler, which registers its jvp and vjp")
    jvp, vjp = _derivatives
    rng = np.random.default_rng(seed)
    args = tuple(args)
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"modes must be 'fwd' and/or 'rev', got {mode!r}")
    _check_order(f, args, order, modes, jvp, vjp, rng, eps, rtol, atol)


def _check_order(f, args, order, modes, jvp, vjp, rng, eps, rtol, atol) -> None:
    v = _random_like(args, rng)
    out = f(*args)
    u = _random_like(out, rng)
    numeric = (_inner(u, f(*_shifted(args, v, eps))) - _inner(u, f(*_shifted(args, v, -eps)))) / (2 * eps)
    if "fwd" in modes:
        _compare(_inner(u, jvp(f, args, v)[1]), numeric, "forward (jvp)", order, rtol, atol)
    if "rev" in modes:
        _compare(_inner(vjp(f, *args)[1](u), v), numeric, "reverse (vjp)", order, rtol, atol)
    if order > 1:
        if "fwd" in modes:
            _check_order(lambda *a: jvp(f, a, v)[1], args, order - 1, modes, jvp, vjp, rng, eps, rtol, atol)
        if "rev" in modes:
            _check_order(lambda *a: vjp(f, *a)[1](u), args, order - 1, modes, jvp, vjp, rng, eps, rtol, atol)


def _compare(analytic: float, numeric: float, mode: str, order: int, rtol: float, atol: float) -> None:
    if not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
        raise AssertionError(f"{mode} derivative check failed at order {order} from the top: "
                             f"analytic {analytic!r}, finite differences {numeric!r} (rtol={rtol:g}, atol={atol:g})")

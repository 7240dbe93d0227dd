"""Optimizers with a pure functional core.

`update(params, grads, state, hyper) -> (new_params, new_state)` uses only NumPy
operations on the leaves, so the compiler can trace it into the same generated
function as the gradient. `apply` runs it eagerly and writes the results back into
the existing arrays.

Hyperparameters (learning rate, momentum, betas, weight decay) are read through
`hyperparams(step)`, never baked in: a compiled training step takes them as run-time
inputs, so changing `opt.lr` or giving a schedule (`SGD(lr=lambda step: ...)`, a
function of the step count) takes effect on the next call without recompiling.
What changes the program itself (Nesterov or not, weight decay or none) is
`structure()`. Values are Python floats: under NEP 50 a Python float does not upcast
a float32 array, whereas a NumPy float64 scalar would.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np

from runtime.tree import flatten, tree_map

Tree = Any  # a pytree of arrays (see runtime.tree)
Hyper = Union[float, Callable[[int], float]]  # a value, or a schedule of the step count


def _value(hyper: Hyper, step: int) -> float:
    return float(hyper(step)) if callable(hyper) else float(hyper)


def _hyper(value: Hyper) -> Hyper:
    return value if callable(value) else float(value)


class Optimizer:
    """Base class: subclasses name their `HYPERPARAMS` and define `init` and a pure
    `update`."""

    HYPERPARAMS: tuple[str, ...] = ()
    changes = 0  # attribute assignments so far: what a compiled step read stays valid while it holds

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, "changes", self.changes + 1)

    def init(self, params: Tree) -> Tree:
        raise NotImplementedError

    def update(self, params: Tree, grads: Tree, state: Tree, hyper: dict[str, Any] | None = None) -> tuple[Tree, Tree]:
        raise NotImplementedError

    def hyperparams(self, step: int = 0) -> dict[str, float]:
        """The hyperparameters' values for step number `step` (schedules evaluated)."""
        values = {}
        for name in self.HYPERPARAMS:  # _value inlined: a compiled step asks every call
            hyper = getattr(self, name)
            values[name] = float(hyper(step)) if callable(hyper) else float(hyper)
        return values

    def structure(self) -> tuple:
        """Static facts that shape the update's program (part of a compiled step's key)."""
        return ()

    def apply(self, params: Tree, grads: Tree, state: Tree, step: int = 0) -> None:
        """One eager step that overwrites `params` and `state` leaves in place
        (`param[...] = new`); the leaves must be NumPy arrays."""
        new_params, new_state = self.update(params, grads, state, self.hyperparams(step))
        old_leaves, old_def = flatten((params, state))
        new_leaves, new_def = flatten((new_params, new_state))
        if old_def != new_def:
            raise ValueError("update changed the structure of params or state")
        for old, new in zip(old_leaves, new_leaves):
            old[...] = new


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's conventions:
    g += weight_decay * p;  v = momentum * v + g;  p -= lr * (g + momentum * v if
    nesterov else v), and p -= lr * g without momentum. The velocity exists when
    momentum is non-zero at `init`; its value may change later, even to 0."""

    HYPERPARAMS = ("lr", "momentum", "weight_decay")

    def __init__(self, lr: Hyper, momentum: Hyper = 0.0, nesterov: bool = False,
                 weight_decay: Hyper = 0.0) -> None:
        if nesterov and not callable(momentum) and momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.lr = _hyper(lr)
        self.momentum = _hyper(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = _hyper(weight_decay)

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")

    def structure(self) -> tuple:
        return ("nesterov" if self.nesterov else "plain", callable(self.weight_decay) or self.weight_decay != 0)

    def init(self, params: Tree) -> Tree:
        """{} without momentum, else {"velocity": zeros shaped like params}."""
        if not callable(self.momentum) and not self.momentum:
            return {}
        return {"velocity": tree_map(np.zeros_like, params)}

    def update(self, params: Tree, grads: Tree, state: Tree, hyper: dict[str, Any] | None = None) -> tuple[Tree, Tree]:
        hyper = self.hyperparams() if hyper is None else hyper
        lr, mu, wd = hyper["lr"], hyper["momentum"], hyper["weight_decay"]
        if self.structure()[1]:
            grads = tree_map(lambda g, p: g + wd * p, grads, params)
        # `d_p` (PyTorch's name) is the gradient after weight decay; generated code
        # names those values after it.
        if "velocity" not in state:
            return tree_map(lambda p, d_p: p - lr * d_p, params, grads), {}
        velocity = tree_map(lambda v, d_p: mu * v + d_p, state["velocity"], grads)
        if self.nesterov:
            step = tree_map(lambda d_p, v: d_p + mu * v, grads, velocity)
        else:
            step = velocity
        new_params = tree_map(lambda p, s: p - lr * s, params, step)
        return new_params, {"velocity": velocity}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction:
    t += 1;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2;
    p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)."""

    HYPERPARAMS = ("lr", "b1", "b2", "eps")

    def __init__(self, lr: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999,
                 eps: Hyper = 1e-8) -> None:
        self.lr = _hyper(lr)
        self.b1 = _hyper(b1)
        self.b2 = _hyper(b2)
        self.eps = _hyper(eps)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, b1={self.b1}, b2={self.b2}, eps={self.eps})"

    def init(self, params: Tree) -> Tree:
        """{"m": zeros, "v": zeros, "t": 0-d step count}. `t` is an array, not a Python
        int, so compiled code takes it as an input instead of baking it in; its dtype
        is the parameters' (common) float dtype so float32 training stays float32."""
        leaves, _ = flatten(params)
        dtype = np.result_type(*leaves)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"Adam needs floating-point parameters, got dtype {dtype}")
        return {"m": tree_map(np.zeros_like, params),
                "v": tree_map(np.zeros_like, params),
                "t": np.zeros((), dtype=dtype)}

    def update(self, params: Tree, grads: Tree, state: Tree, hyper: dict[str, Any] | None = None) -> tuple[Tree, Tree]:
        hyper = self.hyperparams() if hyper is None else hyper
        lr, b1, b2, eps = hyper["lr"], hyper["b1"], hyper["b2"], hyper["eps"]
        t = state["t"] + 1
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g ** 2, state["v"], grads)
        m_correction = 1 - b1 ** t
        v_correction = 1 - b2 ** t
        new_params = tree_map(
            lambda p, m, v: p - lr * (m / m_correction) / (np.sqrt(v / v_correction) + eps),
            params, m, v)
        return new_params, {"m": m, "v": v, "t": t}

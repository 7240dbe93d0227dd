"""Optimizers with a pure functional core.

`update(params, grads, state) -> (new_params, new_state)` uses only NumPy operations on
the leaves, so the compiler can trace it into the same generated function as the
gradient. `apply` runs it eagerly and writes the results back into the existing arrays.

Hyperparameters are stored as Python floats: under NEP 50 a Python float does not
upcast a float32 array, whereas a NumPy float64 scalar would. For the same reason
Adam's step count is a 0-d array of the parameters' own dtype.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from runtime.tree import flatten, tree_map

Tree = Any  # a pytree of arrays (see runtime.tree)


class Optimizer:
    """Base class: subclasses define `init` and a pure `update`."""

    def init(self, params: Tree) -> Tree:
        raise NotImplementedError

    def update(self, params: Tree, grads: Tree, state: Tree) -> tuple[Tree, Tree]:
        raise NotImplementedError

    def apply(self, params: Tree, grads: Tree, state: Tree) -> None:
        """One eager step that overwrites `params` and `state` leaves in place
        (`param[...] = new`); the leaves must be NumPy arrays."""
        new_params, new_state = self.update(params, grads, state)
        old_leaves, old_def = flatten((params, state))
        new_leaves, new_def = flatten((new_params, new_state))
        if old_def != new_def:
            raise ValueError("update changed the structure of params or state")
        for old, new in zip(old_leaves, new_leaves):
            old[...] = new


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's conventions:
    g += weight_decay * p;  v = momentum * v + g;  p -= lr * (g + momentum * v if
    nesterov else v), and p -= lr * g without momentum."""

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")

    def init(self, params: Tree) -> Tree:
        """{} without momentum, else {"velocity": zeros shaped like params}."""
        if not self.momentum:
            return {}
        return {"velocity": tree_map(np.zeros_like, params)}

    def update(self, params: Tree, grads: Tree, state: Tree) -> tuple[Tree, Tree]:
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        if wd:
            grads = tree_map(lambda g, p: g + wd * p, grads, params)
        # `d_p` (PyTorch's name) is the gradient after weight decay; generated code
        # names those values after it.
        if not mu:
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

    def __init__(self, lr: float, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr = float(lr)
        self.b1 = float(b1)
        self.b2 = float(b2)
        self.eps = float(eps)

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

    def update(self, params: Tree, grads: Tree, state: Tree) -> tuple[Tree, Tree]:
        lr, b1, b2, eps = self.lr, self.b1, self.b2, self.eps
        t = state["t"] + 1
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * g ** 2, state["v"], grads)
        m_correction = 1 - b1 ** t
        v_correction = 1 - b2 ** t
        new_params = tree_map(
            lambda p, m, v: p - lr * (m / m_correction) / (np.sqrt(v / v_correction) + eps),
            params, m, v)
        return new_params, {"m": m, "v": v, "t": t}

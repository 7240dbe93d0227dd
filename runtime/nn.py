"""Neural-network building blocks in plain NumPy: activations, losses, initializers.

Everything here runs eagerly on arrays and is traced like user code. Functions marked
`@fused` reach the compiler as one primitive named `runtime.nn.<name>` with its own
stable gradient, and generated code calls them back with the keyword arguments shown in
their signatures. The fused protocol dispatches on positional arguments only, so array
arguments are always passed positionally, here as in generated code.

Losses are means over the batch (the first axis) of a per-example loss that sums over
any remaining axes; for 1-D inputs that is the plain mean of the elementwise loss.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from runtime.fused import fused, named

Array = Any  # a NumPy array, or a tracer standing in for one


# --- activations -------------------------------------------------------------------

@fused
def sigmoid(x: Array) -> Array:
    """`sigmoid(x)` = 1 / (1 + exp(-x)), written as exp(-log(1 + exp(-x))) so that no
    exp overflows for large |x| (very negative x underflows to 0, which is exact)."""
    return np.exp(-np.logaddexp(0, -x))


def tanh(x: Array) -> Array:
    return np.tanh(x)


@fused
def relu(x: Array) -> Array:
    """max(x, 0); its gradient is 1 where x > 0 and 0 elsewhere (as in PyTorch/JAX)."""
    return np.maximum(x, 0)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """x for x > 0, alpha * (exp(x) - 1) otherwise; exp only ever sees x <= 0."""
    return np.where(x > 0, x, alpha * np.expm1(np.where(x > 0, 0, x)))


@fused
def logsumexp(x: Array, axis: int | tuple[int, ...] | None = None,
              keepdims: bool = False) -> Array:
    """`logsumexp(x, axis=None, keepdims=False)`: log(sum(exp(x), axis)) computed as
    m + log(sum(exp(x - m))) with m the maximum along `axis`, so exp never overflows.
    A non-finite maximum (a row of -inf, or an inf) is not subtracted, which keeps
    such rows at -inf / inf instead of nan."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


@fused
def log_softmax(x: Array, axis: int = -1) -> Array:
    """`log_softmax(x, axis=-1)`: x - logsumexp(x, axis, keepdims=True)."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: Array, axis: int = -1) -> Array:
    """exp(log_softmax(x)): the lecture's exp(b_k) / sum_l exp(b_l), without overflow."""
    return np.exp(log_softmax(x, axis=axis))


# --- losses ---------------------------------------------------------------------

def binary_cross_entropy(p: Array, y: Array) -> Array:
    """Mean over the batch of -(y log p + (1 - y) log(1 - p)), the lecture's binary
    cross-entropy on probabilities `p`. Prefer `binary_cross_entropy_with_logits`,
    which does not lose precision when p saturates at 0 or 1."""
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) / p.shape[0]


@fused
def binary_cross_entropy_with_logits(z: Array, y: Array) -> Array:
    """`binary_cross_entropy_with_logits(z, y)`: binary cross-entropy of sigmoid(z),
    mean over the batch. Uses -(y log s(z) + (1 - y) log(1 - s(z))) = log(1 + e^z) - y z,
    with log(1 + e^z) = logaddexp(0, z) to stay finite for any z."""
    return np.sum(np.logaddexp(0, z) - y * z) / z.shape[0]


def quadratic(yhat: Array, y: Array) -> Array:
    """The lecture's quadratic loss: mean over the batch (axis 0) of the sum over the
    remaining axes of 0.5 * (yhat - y)**2. For 1-D inputs: mean(0.5 * (yhat - y)**2).
    The gradient with respect to `yhat` is (yhat - y) / batch_size."""
    return np.sum(0.5 * (yhat - y) ** 2) / yhat.shape[0]


@fused
def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """`softmax_cross_entropy(logits, labels)`: mean over the N rows of
    -sum_k labels[n, k] * log_softmax(logits)[n, k].

    `logits` has shape (N, K). `labels` is either integer class indices of shape (N,)
    or one-hot / probability rows of shape (N, K); both give the same loss for the
    same classes.
    """
    logp = log_softmax(logits, axis=-1)
    n = logits.shape[0]
    if labels.ndim == 1:
        return -np.sum(logp[np.arange(n), labels]) / n
    return -np.sum(labels * logp) / n


# --- initializers and a multilayer perceptron ---------------------------------------

def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int,
                   dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int,
              dtype: np.dtype | type = np.float64) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan_in), suited to ReLU layers."""
    scale = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * scale).astype(dtype)


_INITIALIZERS = {"he": he_normal, "glorot": glorot_uniform}


def init_mlp(sizes: list[int] | tuple[int, ...], rng: np.random.Generator,
             init: str = "he", dtype: np.dtype | type = np.float64) -> dict[str, np.ndarray]:
    """Parameters {"W1", "b1", "W2", "b2", ...} for layer widths `sizes`:
    W_i has shape (sizes[i-1], sizes[i]) and b_i is zeros of shape (sizes[i],)."""
    if init not in _INITIALIZERS:
        raise ValueError(f"init must be one of {sorted(_INITIALIZERS)}, got {init!r}")
    if len(sizes) < 2:
        raise ValueError(f"init_mlp needs at least an input and an output size, got {sizes}")
    weights = _INITIALIZERS[init]
    params: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = weights(rng, fan_in, fan_out, dtype=dtype)
        params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
    return params


def mlp(params: dict[str, Array], x: Array,
        activation: Callable[[Array], Array] = relu) -> Array:
    """Hidden layers h = activation(h @ W_i + b_i); returns the last layer's
    pre-activation (the logits). The depth is the number of "W<i>" keys."""
    depth = sum(1 for key in params if key.startswith("W"))
    h = x
    for i in range(1, depth + 1):
        z = h @ params[f"W{i}"] + params[f"b{i}"]
        named(z, f"z{i}" if i < depth else "logits")  # names for generated code
        if i < depth:
            h = activation(z)
            named(h, f"a{i}")
    return z

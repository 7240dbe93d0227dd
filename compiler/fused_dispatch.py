"""How calls of `runtime.fused` functions on traced values become one primitive each.

`runtime.fused` hands a call whose arguments include a tracer to
`Tracer.__adjoint_fused__`, which looks the function up here: a binder checks the
arguments in NumPy's terms and binds the primitive (compiler.primitives.nn holds the
primitives themselves). A function without a binder is traced through its NumPy body.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from compiler.errors import ShapeError, at_user_line
from compiler.numpy_dispatch import as_tracer, axes
from compiler.tracing import PROTOCOLS, Tracer, bind

FUSED: dict[str, Callable] = {}


def fused_rule(name: str) -> Callable[[Callable], Callable]:
    """Register how a `runtime.fused` function binds: `binder(*args, **kwargs)`."""

    def register(binder: Callable) -> Callable:
        FUSED[name] = binder
        return binder

    return register


def apply_fused(name: str, impl: Callable, args: tuple, kwargs: dict) -> Any:
    binder = FUSED.get(name)
    return binder(*args, **kwargs) if binder is not None else impl(*args, **kwargs)


PROTOCOLS.fused = apply_fused

fused_rule("runtime.nn.sigmoid")(lambda x: bind("runtime.nn.sigmoid", x))
fused_rule("runtime.nn.relu")(lambda x: bind("runtime.nn.relu", x))


@fused_rule("runtime.nn.logsumexp")
def _bind_logsumexp(x, axis=None, keepdims=False):
    x = as_tracer(x)
    return bind("runtime.nn.logsumexp", x, axis=axes(axis, x.ndim), keepdims=bool(keepdims))


@fused_rule("runtime.nn.log_softmax")
def _bind_log_softmax(x, axis=-1):
    x = as_tracer(x)
    return bind("runtime.nn.log_softmax", x, axis=axes(axis, x.ndim)[0])


@fused_rule("runtime.nn.softmax_cross_entropy")
def _bind_softmax_cross_entropy(logits, labels):
    logits = as_tracer(logits)
    if logits.ndim != 2:
        raise at_user_line(ShapeError, f"softmax_cross_entropy needs (N, K) logits, got shape {logits.shape}")
    n, k = logits.shape
    sparse = np.ndim(labels) == 1
    kind = labels.dtype.kind if isinstance(labels, Tracer) else np.asarray(labels).dtype.kind
    expected = (n,) if sparse else (n, k)
    if tuple(np.shape(labels)) != expected or (sparse and kind not in "iu"):
        raise at_user_line(
            ShapeError, f"softmax_cross_entropy: labels must be integer classes of shape {(n,)} "
            f"or one-hot rows of shape {(n, k)}, got {np.shape(labels)} ({'int' if kind in 'iu' else 'float'})"
        )
    lse = bind("runtime.nn.logsumexp", logits, axis=(1,), keepdims=True)
    lse.graph.node(lse.id).name = "lse"  # the row-wise log-sum-exp the gradient reuses
    return bind("softmax_cross_entropy", logits, lse, labels, n=n, sparse=sparse)


@fused_rule("runtime.nn.binary_cross_entropy_with_logits")
def _bind_bce(z, y):
    z = as_tracer(z)
    try:
        np.broadcast_shapes(z.shape, np.shape(y))
    except ValueError:
        raise at_user_line(ShapeError, f"binary_cross_entropy_with_logits: shapes {z.shape} and {np.shape(y)} do not broadcast") from None
    return bind("runtime.nn.binary_cross_entropy_with_logits", z, y, n=z.shape[0] if z.ndim else 1)

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
from compiler.ir import Aval
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


def softmax_parts(x: Tracer, axis: tuple[int, ...], guard: bool = True) -> tuple[Tracer, Tracer, Tracer]:
    """(shift, exps, sums) along `axis` (kept): the maximum m (held constant), exp(x - m)
    and their sums, which logsumexp (m + log(sums)), log_softmax and softmax
    cross-entropy are built from, so that a gradient reuses the exponentials. With
    `guard`, a non-finite maximum is not subtracted (runtime.nn.logsumexp's rule)."""
    shift = _named(bind("softmax_shift", x, axis=axis, guard=guard), "shift")
    exps = _named(np.exp(x - shift), "exps")
    return shift, exps, _named(np.sum(exps, axis=axis, keepdims=True), "sums")


def _named(t: Tracer, name: str) -> Tracer:
    t.graph.node(t.id).name = name
    return t


@fused_rule("runtime.nn.logsumexp")
def _bind_logsumexp(x, axis=None, keepdims=False):
    x = as_tracer(x)
    kept = axes(axis, x.ndim)
    shift, _, sums = softmax_parts(x, kept)
    out = np.log(sums) + shift
    return out if keepdims else np.squeeze(out, axis=kept)


@fused_rule("runtime.nn.log_softmax")
def _bind_log_softmax(x, axis=-1):
    x = as_tracer(x)
    shift, _, sums = softmax_parts(x, axes(axis, x.ndim))
    return x - shift - np.log(sums)


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
    # no guard: a non-finite logit makes the loss non-finite either way (nan here, as
    # in PyTorch and JAX; runtime.nn gives inf for a +inf logit off the label) and
    # its row's gradient nan either way
    operands = [logits, *softmax_parts(logits, (1,), guard=False), labels]
    if sparse:  # the row numbers, made once when the module loads
        graph = logits.graph
        operands.append(Tracer(graph, graph.add_const(np.arange(n), Aval((n,), np.dtype(np.int_)),
                                                      recipe=f"np.arange({n})", name="rows")))
    return bind("softmax_cross_entropy", *operands, n=n, sparse=sparse)


@fused_rule("runtime.nn.binary_cross_entropy_with_logits")
def _bind_bce(z, y):
    z = as_tracer(z)
    try:
        np.broadcast_shapes(z.shape, np.shape(y))
    except ValueError:
        raise at_user_line(ShapeError, f"binary_cross_entropy_with_logits: shapes {z.shape} and {np.shape(y)} do not broadcast") from None
    return bind("runtime.nn.binary_cross_entropy_with_logits", z, y, n=z.shape[0] if z.ndim else 1)

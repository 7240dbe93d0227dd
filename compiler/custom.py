"""User-defined derivative rules, in JAX's shape: `custom_vjp`, `custom_jvp`, and
`stop_gradient`.

A decorated function called on plain NumPy values just runs. Called on traced
values, its body is traced as usual (so the generated code computes the value
with the user's own NumPy), and the result passes through a `custom_rule` node
whose derivatives are the user's rule, itself traced into IR when a transform
applies it. Reverse mode through a `custom_jvp` function transposes the user's
JVP rule (the gradient of `<jvp(x, t), g>` in `t`, compiled like any gradient);
forward mode through a `custom_vjp` function differentiates the traced body, as
JAX's `custom_vjp` has no forward rule.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np

from compiler.api import GradTransform
from compiler.errors import GradError, definition_site
from compiler.primitives.custom import Rules
from compiler.tracing import Tracer, bind
from runtime import tree


def stop_gradient(x: Any) -> Any:
    """`x` itself, with a zero derivative in every mode and at every order: values
    that should be treated as constants (targets, running statistics).
    Pytrees of arrays work leaf by leaf; untraced values pass through."""
    leaves, treedef = tree.flatten(x)
    return tree.unflatten(treedef, [bind("stop_gradient", v) if isinstance(v, Tracer) else v for v in leaves])


def _traced(args: tuple) -> bool:
    return any(isinstance(leaf, Tracer) for leaf in tree.flatten(args)[0])


def _single_output(y: Any, fun: Callable, what: str) -> Tracer:
    if not isinstance(y, Tracer):
        raise GradError(f"{definition_site(fun)}: the {what} of {fun.__name__} must return one array computed from "
                        f"its inputs, got {type(y).__name__}; custom rules support functions with one array result")
    return y


def _shape(value: Any) -> tuple:
    """The shape of a value, read from a tracer's abstract value (a tracer of the
    trace that called the rule may belong to a graph no longer traced)."""
    return tuple(value.aval.shape) if isinstance(value, Tracer) else np.shape(value)


def _cotangents(result: Any, args: tuple, rule: Callable) -> list:
    """The per-leaf cotangents a VJP rule returned, checked against the arguments."""
    name = getattr(rule, "__name__", "the rule")
    if not isinstance(result, (tuple, list)) or len(result) != len(args):
        raise GradError(f"{definition_site(rule)}: {name} must return a tuple with one cotangent per argument "
                        f"({len(args)}), got {type(result).__name__}"
                        f"{' of ' + str(len(result)) if isinstance(result, (tuple, list)) else ''}")
    cts = []
    for k, (ct, arg) in enumerate(zip(result, args)):
        arg_leaves = tree.flatten(arg)[0]
        ct_leaves = [None] * len(arg_leaves) if ct is None else tree.flatten(ct)[0]
        if len(ct_leaves) != len(arg_leaves):
            raise GradError(f"{definition_site(rule)}: {name}'s cotangent {k} does not have the structure of argument {k}")
        for c, a in zip(ct_leaves, arg_leaves):
            if c is not None and _shape(c) != _shape(a):
                raise GradError(f"{definition_site(rule)}: {name}'s cotangent {k} has shape {_shape(c)}, but argument "
                                f"{k} has shape {_shape(a)}; return one cotangent shaped like each argument")
            cts.append(c)
    return cts


class custom_vjp:
    """A function with its own reverse-mode rule.

    >>> @custom_vjp
    ... def safe_log(x): return np.log(x)
    >>> safe_log.defvjp(lambda x: (np.log(x), x), lambda x, g: (g / np.maximum(x, 1e-12),))

    `fwd(*args)` returns `(value, residuals)`; `bwd(residuals, g)` returns a tuple
    with one cotangent per argument (None for zero). Both are traced: write NumPy.
    """

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd: Optional[Callable] = None
        self.bwd: Optional[Callable] = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> "custom_vjp":
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args: Any) -> Any:
        if not _traced(args):
            return self.fun(*args)
        if self.fwd is None or self.bwd is None:
            raise GradError(f"{definition_site(self.fun)}: {self.fun.__name__} is a custom_vjp without rules; "
                            "call .defvjp(fwd, bwd) before using it")
        pair = self.fwd(*args)
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise GradError(f"{definition_site(self.fwd)}: {self.fwd.__name__} must return (value, residuals), "
                            f"got {type(pair).__name__}")
        y = _single_output(pair[0], self.fwd, "forward rule")
        leaves, arg_def = tree.flatten(args)
        traced = [k for k, leaf in enumerate(leaves) if isinstance(leaf, Tracer)]
        res_leaves, res_def = tree.flatten(pair[1])
        res_traced = [k for k, leaf in enumerate(res_leaves) if isinstance(leaf, Tracer)]
        bwd = self.bwd

        def vjp(g: Tracer, *operands: Tracer) -> tuple:
            inputs, residual = operands[: len(traced)], operands[len(traced):]
            res = list(res_leaves)
            for k, r in zip(res_traced, residual):
                res[k] = r
            cts = _cotangents(bwd(tree.unflatten(res_def, res), g), args, bwd)
            return tuple(cts[k] for k in traced) + (None,) * len(residual)

        rules = Rules(self.fun.__name__, vjp, lambda tangents, y, *operands: tangents[0])
        return bind("custom_rule", y, *(leaves[k] for k in traced), *(res_leaves[k] for k in res_traced), rules=rules)


class custom_jvp:
    """A function with its own forward-mode rule.

    >>> @custom_jvp
    ... def softplus(x): return np.logaddexp(0.0, x)
    >>> softplus.defjvp(lambda primals, tangents: (softplus(*primals), tangents[0] / (1 + np.exp(-primals[0]))))

    `rule(primals, tangents)` returns `(value, tangent)` and must be linear in the
    tangents. Reverse mode uses the rule too, transposed.
    """

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.rule: Optional[Callable] = None

    def defjvp(self, rule: Callable) -> Callable:
        self.rule = rule
        return rule

    def _tangent(self, args: tuple, tangents: tuple) -> Tracer:
        result = self.rule(args, tangents)
        if not isinstance(result, tuple) or len(result) != 2:
            raise GradError(f"{definition_site(self.rule)}: {self.rule.__name__} must return (value, tangent), "
                            f"got {type(result).__name__}")
        t = result[1]
        if _shape(t) != _shape(result[0]):
            raise GradError(f"{definition_site(self.rule)}: {self.rule.__name__} returned a tangent of shape "
                            f"{_shape(t)} for a value of shape {_shape(result[0])}; they must match")
        return t

    def __call__(self, *args: Any) -> Any:
        if not _traced(args):
            return self.fun(*args)
        if self.rule is None:
            raise GradError(f"{definition_site(self.fun)}: {self.fun.__name__} is a custom_jvp without a rule; "
                            "call .defjvp(rule) before using it")
        y = _single_output(self.fun(*args), self.fun, "body")
        leaves, arg_def = tree.flatten(args)
        traced = [k for k, leaf in enumerate(leaves) if isinstance(leaf, Tracer)]

        def with_leaves(values: list, fill: Callable[[Any], Any]) -> tuple:
            """The arguments' structure with `values` at the traced leaves, the
            other leaves through `fill`."""
            given = dict(zip(traced, values))
            return tree.unflatten(arg_def, [given[k] if k in given else fill(leaf) for k, leaf in enumerate(leaves)])

        def zero(leaf: Any) -> Any:
            return np.zeros_like(leaf) if isinstance(leaf, (np.ndarray, Tracer)) else 0.0

        def jvp(tangents: tuple, y: Tracer, *inputs: Tracer) -> Any:
            ts = [t if t is not None else np.zeros_like(x) for t, x in zip(tangents[1:], inputs)]
            return self._tangent(with_leaves(list(inputs), lambda v: v), with_leaves(ts, zero))

        def contraction(inputs: tuple, tangents: tuple, g: Any) -> Any:
            return np.sum(self._tangent(with_leaves(list(inputs), lambda v: v), with_leaves(list(tangents), zero)) * g)

        contraction.__name__ = f"{self.fun.__name__}_transposed_jvp"

        def vjp(g: Tracer, *inputs: Tracer) -> tuple:
            # made when reverse mode applies it, outside the transform memo: the
            # contraction closes over this trace's values, which the memo would keep alive
            transpose = GradTransform(contraction, 1, False, False)
            return tuple(transpose(tuple(inputs), tuple(np.zeros_like(x) for x in inputs), g))

        rules = Rules(self.fun.__name__, vjp, jvp)
        return bind("custom_rule", y, *(leaves[k] for k in traced), rules=rules)

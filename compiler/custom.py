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

A body that cannot be traced (it needs concrete values: `np.asarray`, C code, an
ODE solver, a simulator) becomes a call of the user's function when the generated
code runs (a `host_call` node, like JAX's `pure_callback`), and so do its rules:
the generated backward pass calls `fwd` and `bwd` on the run's values. The
result's shape and dtype are learnt by running the function once on stand-in
values (ones shaped like the traced arguments) when it is compiled; the function
must be pure. Forward mode through such a `custom_vjp`, and reverse mode through
such a `custom_jvp` (whose rule would need transposing), are refused.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Optional

import numpy as np

from compiler.api import GradTransform
from compiler.errors import GradError, TracingError, UnsupportedError, definition_site
from compiler.ir import Aval
from compiler.primitives.custom import HostFunction, Rules
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
        self._tracing_fwd = threading.local()

    def defvjp(self, fwd: Callable, bwd: Callable) -> "custom_vjp":
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args: Any) -> Any:
        if not _traced(args):
            return self.fun(*args)
        if self.fwd is None or self.bwd is None:
            raise GradError(f"{definition_site(self.fun)}: {self.fun.__name__} is a custom_vjp without rules; "
                            "call .defvjp(fwd, bwd) before using it")
        if getattr(self._tracing_fwd, "active", False):
            return self.fun(*args)  # `fwd` calling the function itself, as JAX's examples do
        self._tracing_fwd.active = True
        try:
            pair = self.fwd(*args)
        except (TracingError, UnsupportedError):  # the forward rule leaves NumPy: run it when the code runs
            return self._host_call(args)
        finally:
            self._tracing_fwd.active = False
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
            residual = operands[len(traced):]
            res = list(res_leaves)
            for k, r in zip(res_traced, residual):
                res[k] = r
            cts = _cotangents(bwd(tree.unflatten(res_def, res), g), args, bwd)
            return tuple(cts[k] for k in traced) + (None,) * len(residual)

        rules = Rules(self.fun.__name__, vjp, lambda tangents, y, *operands: tangents[0])
        return bind("custom_rule", y, *(leaves[k] for k in traced), *(res_leaves[k] for k in res_traced), rules=rules)

    def _host_call(self, args: tuple) -> Tracer:
        """The call, and its VJP, as calls of the user's functions at run time."""
        opaque = _Opaque(args)
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        name = fun.__name__

        def cotangents(*values: Any) -> np.ndarray:
            """bwd's cotangents of the traced float arguments, raveled into one array."""
            concrete = opaque.arguments(values[:-1])
            residuals = fwd(*concrete)[1]
            flat = tree.flatten(concrete)[0]
            cts = _cotangents(bwd(residuals, values[-1]), concrete, bwd)
            return opaque.pack([cts[k] for k in opaque.floats], [flat[k] for k in opaque.floats])

        def vjp(g: Tracer, out: Tracer, *operands: Tracer) -> tuple:
            backward = HostFunction(f"{name}_vjp", _named(cotangents, bwd), opaque.packed_aval(),
                                    why="differentiating a custom_vjp rule whose functions run as Python code "
                                        "(second order) needs their bodies traced")
            return opaque.unpack(bind("host_call", *operands, g, call=backward))

        forward = HostFunction(name, *opaque.caller(fun), vjp=vjp,
                               why=f"{definition_site(fun)}: forward mode through the custom_vjp {name}, whose body runs as Python "
                                   "code, needs a custom_jvp rule")
        return _named_result(bind("host_call", *opaque.operands, call=forward), name)


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
        try:
            y = _single_output(self.fun(*args), self.fun, "body")
        except (TracingError, UnsupportedError):  # the body leaves NumPy: run it when the code runs
            return self._host_call(args)
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

    def _host_call(self, args: tuple) -> Tracer:
        """The call, and its JVP, as calls of the user's functions at run time."""
        opaque = _Opaque(args)
        fun, rule = self.fun, self.rule
        name = fun.__name__
        value, out = opaque.caller(fun)

        def tangent(*values: Any) -> np.ndarray:
            half = len(values) // 2
            primals, tangents = opaque.arguments(values[:half]), opaque.arguments(values[half:])
            return _checked(np.asarray(rule(primals, tangents)[1]), out, rule)

        def jvp(tangents: tuple, *operands: Tracer) -> Tracer:
            ts = [np.zeros_like(x) if t is None else t for t, x in zip(tangents, operands)]
            call = HostFunction(f"{name}_jvp", _named(tangent, rule), out,
                                why="differentiating a custom_jvp rule whose functions run as Python code "
                                    "(second order) needs their bodies traced")
            return bind("host_call", *operands, *ts, call=call)

        forward = HostFunction(name, value, out, jvp=jvp,
                               why=f"{definition_site(fun)}: reverse mode through the custom_jvp {name}, whose body runs as Python code, "
                                   "would transpose its rule, which needs tracing; give it a custom_vjp rule")
        return _named_result(bind("host_call", *opaque.operands, call=forward), name)


class _Opaque:
    """A call's arguments seen from code that runs as Python: the traced leaves
    become the host call's operands, and the others keep their values."""

    def __init__(self, args: tuple):
        self.leaves, self.treedef = tree.flatten(args)
        self.traced = [k for k, leaf in enumerate(self.leaves) if isinstance(leaf, Tracer)]
        self.operands = [self.leaves[k] for k in self.traced]
        self.floats = [k for k in self.traced if self.leaves[k].dtype.kind in "fc"]

    def arguments(self, values: Any) -> Any:
        """The arguments' structure with `values` at the traced leaves."""
        full = list(self.leaves)
        for k, value in zip(self.traced, values):
            full[k] = value
        return tree.unflatten(self.treedef, full)

    def caller(self, fun: Callable) -> tuple[Callable, Aval]:
        """`fun` as a function of the traced leaves' values, and its result's aval."""
        out = self.result_aval(fun)

        def call(*values: Any) -> np.ndarray:
            return _checked(np.asarray(fun(*self.arguments(values))), out, fun)

        return _named(call, fun), out

    def result_aval(self, fun: Callable) -> Aval:
        """The result's shape and dtype, from one run of `fun` on stand-in values
        (ones shaped like the traced arguments; a Python 1.0 for a Python float)."""
        stand_ins = [x.dtype.type(1).item() if x.aval.weak else np.ones(x.shape, x.dtype) for x in self.operands]
        try:
            with np.errstate(all="ignore"):
                result = np.asarray(fun(*self.arguments(stand_ins)))
        except Exception as err:
            raise GradError(
                f"{definition_site(fun)}: {fun.__name__} cannot be traced, so it runs as Python code; running it "
                f"once on stand-in values (ones) to learn its result's shape failed ({type(err).__name__}: {err}). "
                "Make it accept such values, or write its body with traceable NumPy."
            ) from None
        if result.dtype.kind not in "biufc":
            raise GradError(f"{definition_site(fun)}: {fun.__name__} runs as Python code and must return one numeric "
                            f"array; it returned {type(result).__name__} of {result.dtype}")
        return Aval(result.shape, result.dtype)

    def packed_aval(self) -> Aval:
        dtype = np.result_type(*(self.leaves[k].dtype for k in self.floats)) if self.floats else np.dtype(float)
        return Aval((sum(self.leaves[k].aval.size for k in self.floats),), dtype)

    def pack(self, cotangents: list, arguments: list) -> np.ndarray:
        dtype = self.packed_aval().dtype
        parts = [np.zeros(np.size(a), dtype) if c is None else np.ravel(np.asarray(c, dtype)) for c, a in zip(cotangents, arguments)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    def unpack(self, packed: Tracer) -> tuple:
        """One cotangent per operand (None for an integer one) from the packed array."""
        return unpack_cotangents(packed, self.operands, [k in self.floats for k in self.traced])


def unpack_cotangents(packed: Tracer, operands: list, differentiable: list[bool]) -> tuple:
    """The cotangents a host call returned raveled into one array, one per operand in
    order (None where `differentiable` is False), each shaped and typed as its operand."""
    cts, start = [], 0
    for operand, wanted in zip(operands, differentiable):
        if not wanted:
            cts.append(None)
            continue
        size = int(np.prod(operand.shape, dtype=np.int64))
        piece = np.reshape(packed[start:start + size], operand.shape)
        cts.append(piece if piece.dtype == operand.dtype else piece.astype(operand.dtype))
        start += size
    return tuple(cts)


def _named_result(result: Tracer, name: str) -> Tracer:
    result.__adjoint_name__(name)  # `g_<function>` for its cotangent, unless the user's variable names it
    return result


def _checked(value: np.ndarray, out: Aval, fun: Callable) -> np.ndarray:
    """`value`, after checking it has the shape and dtype the compiled code was built for."""
    if value.shape != out.shape or value.dtype != out.dtype:
        raise GradError(f"{definition_site(fun)}: {fun.__name__} returned {value.dtype}{list(value.shape)} when the "
                        f"compiled code was built for {out}; a function that runs as Python code must return the "
                        "same shape and dtype on every call with arguments of the same shapes")
    return value


def _named(call: Callable, like: Callable) -> Callable:
    """`call` under the module and name of the user function it runs."""
    call.__module__, call.__qualname__ = getattr(like, "__module__", None), getattr(like, "__qualname__", "fn")
    return call

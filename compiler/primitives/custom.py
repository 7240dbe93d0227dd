"""Calls whose derivative rules travel with the call: `stop_gradient`, the node a
`custom_vjp` / `custom_jvp` function traces to, and `host_call`, a call of Python
code the compiler cannot trace, made when the generated function runs.

The first two print as their first operand: they change derivatives, not values. They stay
in optimized graphs, so a compiled gradient inlined into another trace (`grad` of
`grad`) still carries them.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Callable, Optional

from compiler.errors import UnsupportedError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, register


@dataclass(frozen=True, eq=False)
class Rules:
    """The derivative rules of one user function, as the `custom_rule` node's
    params carry them. `vjp(g, *operands)` returns one cotangent (or None) per
    operand after the first; `jvp(tangents, *operands)` the result's tangent from
    theirs. `name` is the user's function, for the IR printer."""

    name: str
    vjp: Callable[..., tuple]
    jvp: Callable[..., Any]

    def __repr__(self) -> str:
        return self.name


def _same_aval(x: Aval, *operands: Aval, **params: Any) -> Aval:
    return Aval(x.shape, x.dtype, x.weak)


register(Primitive("stop_gradient", abstract=_same_aval, emit=lambda x: x, differentiable=False, view=True))

# custom_rule(y, *inputs, *residuals): the value y, computed by the traced body,
# with derivatives from `rules` instead of the body's own
register(
    Primitive(
        "custom_rule",
        abstract=_same_aval,
        emit=lambda y, *operands, rules: y,
        vjp=lambda g, out, y, *operands, rules: (None,) + tuple(rules.vjp(g, *operands)),
        jvp=lambda tangents, out, y, *operands, rules: rules.jvp(tangents, y, *operands),
        view=True,
    )
)


@dataclass(frozen=True, eq=False)
class HostFunction:
    """A Python function the generated code calls when it runs (a user function whose
    body cannot be traced: it leaves NumPy for C code, an ODE solver, a simulator).
    `fn(*operands)` returns one array of abstract value `out`. The generated module
    holds `fn` under a name made from `name`. `vjp(g, out, *operands)` and
    `jvp(tangents, *operands)` build its derivatives (None: refused, saying `why`)."""

    name: str
    fn: Callable[..., Any]
    out: Aval
    vjp: Optional[Callable[..., tuple]] = None
    jvp: Optional[Callable[..., Any]] = None
    why: str = ""

    def __repr__(self) -> str:
        return self.name


def _refused(call: HostFunction, mode: str) -> Any:
    raise UnsupportedError(f"{call.name} runs Python code the compiler cannot trace, and has no {mode} rule: {call.why}")


def _host_vjp(g: Any, out: Any, *operands: Any, call: HostFunction) -> tuple:
    return _refused(call, "reverse-mode") if call.vjp is None else call.vjp(g, out, *operands)


def _host_jvp(tangents: tuple, out: Any, *operands: Any, call: HostFunction) -> Any:
    return _refused(call, "forward-mode") if call.jvp is None else call.jvp(tangents, *operands)


# host_call(*operands, call): `call.fn(*operands)` at run time; the generated module
# binds the function (codegen binds every `bound` param) and prints `name(a, b)`
register(
    Primitive(
        "host_call",
        abstract=lambda *avals, call: call.out,
        emit=lambda *args, call: ast.Call(call, list(args), []),
        vjp=_host_vjp,
        jvp=_host_jvp,
        bound=("call",),
    )
)

"""Calls whose derivative rules travel with the call: `stop_gradient`, and the node
a `custom_vjp` / `custom_jvp` function traces to.

Both print as their first operand: they change derivatives, not values. They stay
in optimized graphs, so a compiled gradient inlined into another trace (`grad` of
`grad`) still carries them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

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

"""Guards: the decisions a trace took on traced values, checked when the code runs.

`guard(x, expected=..., kind=..., where=...)` records that the user's code at `where`
(`file.py:12: if np.sum(x) > 0:`) turned the value `x` into `expected` (a bool for
`if`/`while`/`and`/`or`/`bool()`, a number for `float()`, `int()`, `.item()` or an
index): the generated code raises `runtime.paths.PathMiss` there when it does not
hold. A guard is effectful (never removed, merged or reordered among effects) and
has no derivative: the derivative of a function with branches is that of the path
the values take.
"""
from __future__ import annotations

import ast
from typing import Any

import numpy as np

from compiler.ir import Aval
from compiler.primitives.registry import Primitive, literal, np_call, register

# how the guarded value is read, by kind
_READ = {"bool": "bool", "float": "float", "int": "int", "index": "int", "complex": "complex"}


# A number a decision took (float(x)) is checked to a relative tolerance: the
# compiled code may compute it in another order than the trace did (rewrites
# reassociate), last bits that must not count as another path. At least this, and
# 256 units in the last place of the value's dtype (float32: 3e-5).
NUMBER_RTOL = 1e-12


def number_tolerance(dtype: np.dtype) -> float:
    """The relative tolerance of a guard on a number of `dtype`."""
    return max(NUMBER_RTOL, 256 * float(np.finfo(dtype).eps)) if dtype.kind in "fc" else 0.0


def _guard_stmts(target: ast.Name, x: ast.expr, *, expected: Any, kind: str, where: str,
                 rtol: float = NUMBER_RTOL) -> list[ast.stmt]:
    """`if not bool(c): raise PathMiss('quiz.py:12: if c > 0:')`; a float or complex
    is matched to `rtol` (an infinity exactly, a NaN by np.isnan)."""
    read = ast.Call(ast.Name(_READ[kind], ast.Load()), [x], [])
    if kind == "bool":
        failed = read if not expected else ast.UnaryOp(ast.Not(), read)
    elif kind in ("float", "complex") and np.isnan(expected):
        failed = ast.UnaryOp(ast.Not(), np_call("isnan", x))
    elif kind in ("float", "complex") and np.isfinite(expected) and expected != 0:
        error = ast.Call(ast.Name("abs", ast.Load()), [ast.BinOp(read, ast.Sub(), literal(expected))], [])
        failed = ast.UnaryOp(ast.Not(), ast.Compare(error, [ast.LtE()], [literal(rtol * abs(expected))]))
    else:
        failed = ast.Compare(read, [ast.NotEq()], [literal(expected)])
    miss = ast.Raise(ast.Call(ast.Name("PathMiss", ast.Load()), [ast.Constant(where)], []), None)
    return [ast.If(failed, [miss], [])]


register(
    Primitive(
        "guard",
        abstract=lambda x, **params: Aval((), np.dtype(bool)),
        emit_stmts=_guard_stmts,
        differentiable=False,
        effectful=True,
        checks=True,
    )
)

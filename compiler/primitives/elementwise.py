"""Elementwise primitives: NumPy ufuncs with broadcasting.

Result dtypes come from NumPy itself (the ufunc applied to one-element stand-ins,
Python scalars standing in for weak operands), so promotion is exactly NumPy's,
NEP 50 included. A result is weak (a Python scalar at run time) only when every
operand is weak and the operation prints as a Python operator (`2.0 * 3.0`);
`np.exp(2.0)` and `np.where(c, 1.0, 0.0)` return NumPy values, which NEP 50 treats
as strong. VJP rules return cotangents at the broadcast result shape; the reverse
transform sums them back to each operand's shape.
"""
from __future__ import annotations

import ast
import functools
import math

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, call, register

_WEAK_TYPES = {"b": bool, "i": int, "u": int, "f": float, "c": complex}


def dtype_or_weak_type(aval: Aval):
    """What NumPy promotes with: the dtype, or the Python type of a weak scalar."""
    return _WEAK_TYPES[aval.dtype.kind] if aval.weak else aval.dtype


@functools.lru_cache(maxsize=None)
def result_dtype(ufunc: str, kinds: tuple) -> np.dtype:
    """The dtype NumPy gives `np.<ufunc>` on operands of these dtypes / weak types."""
    dummies = [np.ones(1, dtype=k) if isinstance(k, np.dtype) else k(1) for k in kinds]
    with np.errstate(all="ignore"):
        return np.asarray(getattr(np, ufunc)(*dummies)).dtype


def broadcast_shape(op: str, avals: tuple[Aval, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(a.shape for a in avals)))
    except ValueError:
        shapes = " and ".join(str(a.shape) for a in avals)
        raise ShapeError(f"np.{op}: operands with shapes {shapes} cannot be broadcast together") from None


def elementwise_abstract(ufunc: str, python_op: bool = False):
    """Shape and dtype rule of `ufunc`; `python_op` when it prints as a Python
    operator, whose result on Python scalars is again a Python scalar."""

    def abstract(*avals: Aval) -> Aval:
        shape = broadcast_shape(ufunc, avals)
        weak = python_op and all(a.weak for a in avals)
        return Aval(shape, result_dtype(ufunc, tuple(dtype_or_weak_type(a) for a in avals)), weak)

    return abstract


def binop(op: ast.operator):
    return lambda a, b: ast.BinOp(a, op, b)


def compare(op: ast.cmpop):
    return lambda a, b: ast.Compare(a, [op], [b])


def _ufunc(name: str, vjp, emit=None, augmented=None, commutative=False, foldable=False) -> None:
    register(
        Primitive(
            name,
            abstract=elementwise_abstract(name, python_op=emit is not None),
            emit=emit or call(name),
            vjp=vjp,
            differentiable=vjp is not None,
            augmented=augmented,
            commutative=commutative,
            lanewise=True,
            ufunc=True,
            foldable=foldable,
        )
    )


def _tie_share(g, a, b, wins=np.greater):
    """Cotangent for `a` in max(a, b) (min with wins=np.less): all of g where a
    wins, half on ties."""
    return np.where(a == b, 0.5 * g, np.where(wins(a, b), g, 0))


def _log_base(x):
    """log(x) for the exponent's cotangent of x ** y, 0 where x <= 0 (there x ** y
    is real only for integer y, and the derivative in y is taken as 0). A Python
    scalar base is folded at compile time, so `2.0 ** y` stays in y's precision."""
    value = x.graph.python_scalar(x.id)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.log(value) if value > 0 else 0.0
    return np.log(np.where(x > 0, x, 1))


# unary
_ufunc("negative", lambda g, out, x: (-g,), emit=lambda x: ast.UnaryOp(ast.USub(), x), foldable=True)
_ufunc("exp", lambda g, out, x: (g * out,))
_ufunc("log", lambda g, out, x: (g / x,))
_ufunc("log1p", lambda g, out, x: (g / (x + 1),))
_ufunc("expm1", lambda g, out, x: (g * (out + 1),))
_ufunc("sin", lambda g, out, x: (g * np.cos(x),))
_ufunc("cos", lambda g, out, x: (-(g * np.sin(x)),))
_ufunc("tanh", lambda g, out, x: (g * (1 - out**2),))
_ufunc("sqrt", lambda g, out, x: (0.5 * g / out,))
_ufunc("square", lambda g, out, x: (g * (2 * x),))
_ufunc("absolute", lambda g, out, x: (g * np.sign(x),))
_ufunc("sign", None)
_ufunc("logical_not", None)
_ufunc("isfinite", None)
_ufunc("isnan", None)
_ufunc("isinf", None)

# binary
_ufunc("add", lambda g, out, x, y: (g, g), emit=binop(ast.Add()), augmented=ast.Add(), commutative=True, foldable=True)
_ufunc("subtract", lambda g, out, x, y: (g, -g), emit=binop(ast.Sub()), augmented=ast.Sub(), foldable=True)
_ufunc("multiply", lambda g, out, x, y: (g * y, g * x), emit=binop(ast.Mult()), augmented=ast.Mult(), commutative=True, foldable=True)
_ufunc("divide", lambda g, out, x, y: (g / y, -(g * out) / y), emit=binop(ast.Div()), augmented=ast.Div(), foldable=True)
_ufunc(
    "power",
    lambda g, out, x, y: (g * (y * x ** (y - 1)), g * (out * _log_base(x))),
    emit=binop(ast.Pow()),
    foldable=True,
)
_ufunc("maximum", lambda g, out, x, y: (_tie_share(g, x, y), _tie_share(g, y, x)))
_ufunc("minimum", lambda g, out, x, y: (_tie_share(g, x, y, np.less), _tie_share(g, y, x, np.less)))
_ufunc(
    "logaddexp",
    lambda g, out, x, y: (g * np.exp(x - out), g * np.exp(y - out)),
)
for _name, _op in [("greater", ast.Gt()), ("greater_equal", ast.GtE()), ("less", ast.Lt()),
                   ("less_equal", ast.LtE()), ("equal", ast.Eq()), ("not_equal", ast.NotEq())]:
    _ufunc(_name, None, emit=compare(_op))
for _name in ("logical_and", "logical_or"):
    _ufunc(_name, None)


def _where_abstract(c: Aval, x: Aval, y: Aval) -> Aval:
    """np.where always returns an array, so the result is never weak."""
    shape = broadcast_shape("where", (c, x, y))
    return Aval(shape, result_dtype("where", (np.dtype(bool), dtype_or_weak_type(x), dtype_or_weak_type(y))))




register(
    Primitive(
        "where",
        abstract=_where_abstract,
        emit=call("where"),
        vjp=lambda g, out, c, x, y: (None, np.where(c, g, 0), np.where(c, 0, g)),
        lanewise=True,
    )
)

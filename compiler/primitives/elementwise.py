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
from typing import Any, Optional

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import Primitive, call, conjugating, literal, np_call, register

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


def _ufunc(name: str, vjp, emit=None, augmented=None, commutative=False, foldable=False, linear=False,
           spelling: Optional[str] = None, jvp=None, builtin: Optional[str] = None) -> None:
    """Register NumPy's ufunc `name`, printed as the Python operator `emit` or as
    `np.<spelling>(...)` (default `np.<name>`), and as Python's `builtin` function
    on Python numbers (`abs(a)`: a Python float, as NumPy's ufunc would not give); `vjp=None` for one that carries no
    gradient (an integer or boolean result, or a piecewise-constant one such as
    np.floor, whose gradient is 0 wherever it exists). `jvp`, for a unary ufunc whose
    forward rule cannot be derived from `vjp` (one not holomorphic on complex values),
    broadcasts, so it also serves tangents with a leading batch axis."""
    register(
        Primitive(
            name,
            abstract=elementwise_abstract(name, python_op=emit is not None or builtin is not None),
            emit=emit or call(spelling or name),
            emit_weak=(lambda *args: ast.Call(ast.Name(builtin, ast.Load()), list(args), [])) if builtin else None,
            vjp=vjp,
            differentiable=vjp is not None,
            augmented=augmented,
            commutative=commutative,
            lanewise=True,
            ufunc=True,
            takes_out=emit is None,
            foldable=foldable,
            linear=linear,
            jvp=jvp,
            batched_jvp=jvp,
        )
    )


def conj_if_complex(x):
    """The complex conjugate of operand `x` where it is complex; `x` itself (the same
    tracer, adding no node, so real programs generate exactly as before) otherwise.
    VJP rules conjugate partial derivatives with it: under the convention of
    compiler/transforms/reverse.py, w = f(z) sends g_z = g_w * conj(f'(z)). A Python
    complex is conjugated at compile time (np.conj of it would be a strong
    complex128 and widen complex64 values). Under `registry.conjugation_suspended`
    (a VJP rule built as its JVP) it returns `x` itself."""
    if x.dtype.kind != "c" or not conjugating():
        return x
    value = x.graph.python_scalar(x.id)
    if isinstance(value, complex):
        return value.conjugate()
    return np.conjugate(x)


def _tie_share(g, a, b, wins=np.greater, nan_loses=False):
    """Cotangent for `a` in max(a, b) (min with wins=np.less): all of g where a
    wins, half on ties. With `nan_loses` (np.fmax, np.fmin) `a` also wins where
    `b` is NaN, since the result is then `a`."""
    won = wins(a, b)
    if nan_loses and not _nan_free(b):
        won = won | np.isnan(b)
    return np.where(a == b, 0.5 * g, np.where(won, g, 0))


def _log_base(x, dtype: np.dtype):
    """log(x) for the exponent's cotangent of x ** y, 0 where x <= 0 (there x ** y
    is real only for integer y, and the derivative in y is taken as 0). A Python
    scalar base is folded at compile time, and a traced Python-number base is taken
    in the result's `dtype`, so `s ** y` stays in y's precision (float32)."""
    value = x.graph.python_scalar(x.id)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return math.log(value) if value > 0 else 0.0
    positive = np.where(x > 0, x, 1)
    return np.log(positive.astype(dtype) if x.aval.weak and positive.dtype != dtype else positive)


def _constant(x) -> Any:
    """The value of operand `x` when it is fixed at compile time (a Python number
    or a NumPy array the trace froze), else None. A captured global array is read
    live at call time, so it is not fixed."""
    node = x.graph.node(x.id)
    if not node.is_const or node.params.get("captured"):
        return None
    return node.params["value"]


def _nan_free(x) -> bool:
    """Whether operand `x` is a compile-time constant without NaNs."""
    value = _constant(x)
    return value is not None and not np.any(np.isnan(value))


def _power_base_vjp(power):
    """The base's cotangent of `power(x, y)` (np.power or np.float_power):
    g * y * x ** (y - 1), and exactly 0 wherever y == 0, where x ** 0 is 1 for
    every x while 0 ** -1 is inf. A constant scalar exponent decides at compile
    time: no cotangent for `x ** 0`, `g` itself for `x ** 1`. Any other exponent
    that may be 0 (traced, or an array that is not a frozen constant free of
    zeros) takes the exponent 1 instead of -1 where both x and y are 0,
    `y * x ** np.where((x == 0) & (y == 0), 1, y - 1)`: 0 there without 0 * inf,
    at every derivative order in x. Only at x == 0, where x ** y jumps in y, so
    elsewhere the mixed derivative in y at y == 0 stays x ** -1."""

    def vjp(g, out, x, y):
        value = _constant(y)
        if value is not None and np.ndim(value) == 0:
            if value == 0:
                return None
            if value == 1:
                return g
        exponent = y - 1
        if value is None or np.any(value == 0):
            exponent = np.where((x == 0) & (y == 0), 1, exponent)
            if y.aval.weak:  # np.where makes a Python number an array: keep it from widening x
                exponent = exponent.astype(out.dtype)
        return g * conj_if_complex(y * power(x, exponent))

    return vjp


def _power_vjp(power):
    base = _power_base_vjp(power)

    def vjp(g, out, x, y):
        g_x = base(g, out, x, y)
        # a complex result is differentiated in its base only (registry.COMPLEX_VJPS)
        return g_x, None if out.dtype.kind == "c" else g * (out * _log_base(x, out.dtype))

    return vjp


def _abs_vjp(g, out, x):
    """|x|' is sign(x): 0 at x == 0, as in JAX. For complex z, d|z| = Re(conj(z) dz) / |z|,
    so g_z = g * z / |z|, also 0 at z == 0."""
    if x.dtype.kind != "c":
        return (g * np.sign(x),)
    return (g * (x / np.where(out == 0, 1, out)),)


def _abs_jvp(tangents, out, x):
    """d|x| = sign(x) dx; of a complex z, d|z| = Re(conj(z) dz) / |z|, 0 at z == 0."""
    t = tangents[0]
    if x.dtype.kind != "c":
        return t * np.sign(x)
    return np.real(np.conjugate(x) * t) / np.where(out == 0, 1, out)


def _arctan2_vjp(g, out, y, x):
    """d atan2(y, x) = (x dy - y dx) / (x² + y²); NaN at the origin, as in JAX."""
    scale = g / (x**2 + y**2)
    return scale * x, -(scale * y)


def _hypot_vjp(g, out, x, y):
    """d hypot(x, y) = (x dx + y dy) / hypot(x, y); 0 at the origin (JAX's
    convention: the subgradient of a norm at 0), where the divisor is taken as 1."""
    scale = g / np.where(out == 0, 1, out)
    return scale * x, scale * y


def _arccosh_vjp(g, out, x):
    """arccosh'(x) = 1 / sqrt(x² - 1) for real x > 1; of a complex z, NumPy's principal
    branch log(z + sqrt(z + 1) sqrt(z - 1)) has the derivative 1 / (sqrt(z - 1) sqrt(z + 1)),
    which is -1 / sqrt(z² - 1) where Re z < 0."""
    if x.dtype.kind != "c":
        return (g / np.sqrt(x**2 - 1),)
    return (g / conj_if_complex(np.sqrt(x - 1) * np.sqrt(x + 1)),)


_LN2, _LN10 = math.log(2), math.log(10)
_DEGREE, _RADIAN = math.pi / 180, 180 / math.pi

# unary
_ufunc("negative", lambda g, out, x: (-g,), emit=lambda x: ast.UnaryOp(ast.USub(), x), foldable=True)
_ufunc("exp", lambda g, out, x: (g * conj_if_complex(out),))
_ufunc("exp2", lambda g, out, x: (g * (_LN2 * conj_if_complex(out)),))
_ufunc("log", lambda g, out, x: (g / conj_if_complex(x),))
_ufunc("log2", lambda g, out, x: (g / (_LN2 * conj_if_complex(x)),))
_ufunc("log10", lambda g, out, x: (g / (_LN10 * conj_if_complex(x)),))
_ufunc("log1p", lambda g, out, x: (g / (conj_if_complex(x) + 1),))
_ufunc("expm1", lambda g, out, x: (g * (conj_if_complex(out) + 1),))
_ufunc("sin", lambda g, out, x: (g * conj_if_complex(np.cos(x)),))
_ufunc("cos", lambda g, out, x: (-(g * conj_if_complex(np.sin(x))),))
_ufunc("tan", lambda g, out, x: (g * (1 + conj_if_complex(out)**2),))
# the inverse functions' derivatives are conjugated whole (sqrt commutes with conj only
# off its branch cut); NumPy's principal branches
_ufunc("arcsin", lambda g, out, x: (g / conj_if_complex(np.sqrt(1 - x**2)),))
_ufunc("arccos", lambda g, out, x: (-(g / conj_if_complex(np.sqrt(1 - x**2))),))
_ufunc("arctan", lambda g, out, x: (g / (1 + conj_if_complex(x)**2),))
_ufunc("sinh", lambda g, out, x: (g * conj_if_complex(np.cosh(x)),))
_ufunc("cosh", lambda g, out, x: (g * conj_if_complex(np.sinh(x)),))
_ufunc("tanh", lambda g, out, x: (g * (1 - conj_if_complex(out)**2),))
_ufunc("arcsinh", lambda g, out, x: (g / conj_if_complex(np.sqrt(x**2 + 1)),))
_ufunc("arccosh", _arccosh_vjp)
_ufunc("arctanh", lambda g, out, x: (g / (1 - conj_if_complex(x)**2),))
_ufunc("deg2rad", lambda g, out, x: (g * _DEGREE,), linear=True)
_ufunc("radians", lambda g, out, x: (g * _DEGREE,), linear=True)
_ufunc("rad2deg", lambda g, out, x: (g * _RADIAN,), linear=True)
_ufunc("degrees", lambda g, out, x: (g * _RADIAN,), linear=True)
_ufunc("sqrt", lambda g, out, x: (0.5 * g / conj_if_complex(out),))
_ufunc("cbrt", lambda g, out, x: (g / (3 * out**2),))
_ufunc("square", lambda g, out, x: (g * (2 * conj_if_complex(x)),))
_ufunc("reciprocal", lambda g, out, x: (-(g * conj_if_complex(out)**2),))
_ufunc("absolute", _abs_vjp, spelling="abs", jvp=_abs_jvp, builtin="abs")
# conj is linear over the reals: w = conj(z) sends g_z = conj(g_w); the identity on real x
_ufunc("conjugate", lambda g, out, x: (conj_if_complex(g),), linear=True, spelling="conj")
_ufunc("fabs", lambda g, out, x: (g * np.sign(x),))
# piecewise constant: gradient 0, also taken as 0 at the steps (as in JAX); signbit is boolean
for _name in ("sign", "floor", "ceil", "rint", "trunc", "signbit"):
    _ufunc(_name, None)
_ufunc("logical_not", None)
_ufunc("isfinite", None)
_ufunc("isnan", None)
_ufunc("isinf", None)

# binary
_ufunc("add", lambda g, out, x, y: (g, g), emit=binop(ast.Add()), augmented=ast.Add(), commutative=True, foldable=True)
_ufunc("subtract", lambda g, out, x, y: (g, -g), emit=binop(ast.Sub()), augmented=ast.Sub(), foldable=True)
_ufunc("multiply", lambda g, out, x, y: (g * conj_if_complex(y), g * conj_if_complex(x)), emit=binop(ast.Mult()), augmented=ast.Mult(), commutative=True, foldable=True)
_ufunc("divide", lambda g, out, x, y: (g / conj_if_complex(y), -(g * conj_if_complex(out)) / conj_if_complex(y)), emit=binop(ast.Div()), augmented=ast.Div(), foldable=True)
_ufunc("power", _power_vjp(np.power), emit=binop(ast.Pow()), foldable=True)
_ufunc("float_power", _power_vjp(np.float_power))
_ufunc("maximum", lambda g, out, x, y: (_tie_share(g, x, y), _tie_share(g, y, x)))
_ufunc("minimum", lambda g, out, x, y: (_tie_share(g, x, y, np.less), _tie_share(g, y, x, np.less)))
_ufunc("fmax", lambda g, out, x, y: (_tie_share(g, x, y, nan_loses=True), _tie_share(g, y, x, nan_loses=True)))
_ufunc("fmin", lambda g, out, x, y: (_tie_share(g, x, y, np.less, True), _tie_share(g, y, x, np.less, True)))
_ufunc("logaddexp", lambda g, out, x, y: (g * np.exp(x - out), g * np.exp(y - out)))
_ufunc("logaddexp2", lambda g, out, x, y: (g * np.exp2(x - out), g * np.exp2(y - out)))
_ufunc("arctan2", _arctan2_vjp)
_ufunc("hypot", _hypot_vjp)
# copysign(x, y) is |x| with y's sign: d/dx = sign(x) sign(result), 0 at x == 0 as for |x|
_ufunc("copysign", lambda g, out, x, y: (g * np.sign(x) * np.sign(out), None))
# x % y = x - (x // y) * y: d/dx = 1, d/dy = -(x // y) (JAX's convention where it jumps)
_ufunc("remainder", lambda g, out, x, y: (g, -(g * (x // y))), emit=binop(ast.Mod()))
# np.fmod(x, y) = x - trunc(x / y) * y, the remainder with x's sign
_ufunc("fmod", lambda g, out, x, y: (g, -(g * np.trunc(x / y))))
_ufunc("floor_divide", None, emit=binop(ast.FloorDiv()))
_ufunc("heaviside", None)
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


# NumPy functions that are elementwise but not ufuncs (np.round, np.sinc,
# np.nan_to_num, np.real, np.imag, np.angle): bound by the handlers in
# compiler/numpy_functions/elementwise.py.


# The parts of a complex value (the handlers bind them only for complex operands: of
# a real x, np.real is x and np.imag zeros). NumPy returns views into the complex
# array. Re and Im are real-linear: w = Re(z) sends g_z = g_w, and w = Im(z) sends
# g_z = 1j * g_w (dL = g_w dIm(z) = Re(conj(1j * g_w) dz)).


def _part_abstract(x: Aval) -> Aval:
    return Aval(x.shape, np.empty(0, x.dtype).real.dtype, x.weak)


register(Primitive("real", abstract=_part_abstract, emit=call("real"), vjp=lambda g, out, x: (g,),
                   view=True, lanewise=True, linear=True))
register(Primitive("imag", abstract=_part_abstract, emit=call("imag"),
                   vjp=lambda g, out, x: (1j * g if x.dtype.kind == "c" else None,),
                   view=True, lanewise=True, linear=True))


def _angle_abstract(x: Aval, *, deg: bool) -> Aval:
    return Aval(x.shape, np.angle(np.ones(1, x.dtype)).dtype)


def _angle_emit(x: ast.expr, *, deg: bool) -> ast.expr:
    return np_call("angle", x, deg=True) if deg else np_call("angle", x)


def _safe_modulus(x):
    """|x|, taken as 1 where x == 0 (where angle's derivatives are taken as 0)."""
    size = np.abs(x)
    return np.where(size == 0, 1, size)


def _angle_vjp(g, out, x, *, deg):
    """angle(z) = atan2(Im z, Re z): d angle = (Re z dIm z - Im z dRe z) / |z|², so
    g_z = g * 1j * z / |z|², and 0 at z == 0 (PyTorch's choice there). Of a real x
    the angle is a step function (0 or pi): gradient 0."""
    if x.dtype.kind != "c":
        return (None,)
    if deg:
        g = g * _RADIAN
    safe = _safe_modulus(x)
    return (g * ((1j * x) / safe / safe),)


def _angle_jvp(tangents, out, x, *, deg):
    """d angle(z) = Im(conj(z) dz) / |z|², 0 at z == 0; of a real x, 0. Broadcasts
    (its own batched rule)."""
    if x.dtype.kind != "c":
        return None
    safe = _safe_modulus(x)
    t = np.imag(np.conjugate(x) * tangents[0]) / safe / safe
    return t * _RADIAN if deg else t


register(Primitive("angle", abstract=_angle_abstract, emit=_angle_emit, vjp=_angle_vjp, jvp=_angle_jvp,
                   batched_jvp=_angle_jvp, lanewise=True))


def _round_abstract(x: Aval, decimals: int) -> Aval:
    return Aval(x.shape, result_dtype("round", (dtype_or_weak_type(x),)))


def _round_emit(x: ast.expr, decimals: int) -> ast.expr:
    return np_call("round", x, literal(decimals)) if decimals else np_call("round", x)


register(Primitive("round", abstract=_round_abstract, emit=_round_emit, differentiable=False, lanewise=True))


_PI = math.pi
_SINC_CURVATURE = _PI**2 / 3  # -sinc''(0)


def _sinc_vjp(g, out, x):
    """sinc'(x) = (cos(pi x) - sinc(x)) / x, with its limit 0 at x == 0. There the
    quotient's divisor is taken as 1 (its numerator is exactly 0), and the value
    is written -(pi² / 3) x, also 0 but with the right slope, so the second
    derivative at 0 is sinc''(0) = -pi² / 3 (JAX gets it with a Maclaurin rule)."""
    at_zero = x == 0
    slope = (np.cos(_PI * x) - out) / np.where(at_zero, 1, x)
    return (g * np.where(at_zero, -_SINC_CURVATURE * x, slope),)


register(Primitive("sinc", abstract=elementwise_abstract("sinc"), emit=call("sinc"), vjp=_sinc_vjp, lanewise=True))


def _nan_to_num_abstract(x: Aval, nan: float, posinf: Optional[float], neginf: Optional[float]) -> Aval:
    return Aval(x.shape, result_dtype("nan_to_num", (dtype_or_weak_type(x),)))


def _nan_to_num_emit(x: ast.expr, nan: float, posinf: Optional[float], neginf: Optional[float]) -> ast.expr:
    given = {"nan": nan, "posinf": posinf, "neginf": neginf}
    defaults = {"nan": 0.0, "posinf": None, "neginf": None}
    return np_call("nan_to_num", x, **{k: v for k, v in given.items() if v != defaults[k]})


register(
    Primitive(
        "nan_to_num",
        abstract=_nan_to_num_abstract,
        emit=_nan_to_num_emit,
        # the replaced lanes are constants: gradient 0 there, g where x is finite
        vjp=lambda g, out, x, **params: (np.where(np.isfinite(x), g, 0),),
        lanewise=True,
    )
)

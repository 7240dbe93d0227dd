"""scipy.special's ufuncs on traced values.

scipy.special's elementwise functions are real NumPy ufuncs, so `scipy.special.erf(x)`
on a tracer reaches `Tracer.__array_ufunc__`, which binds the primitive registered
under the ufunc's `__name__` (`ufunc=True`), exactly as for np.exp. The names are
SciPy's own: scipy.special.digamma is the ufunc `psi`. None of them is a NumPy
ufunc (`np.erf` does not exist), so no NumPy function is shadowed.

This module never imports SciPy: a SciPy ufunc can only reach a tracer once the user
imported scipy.special, so the dtype rules read it from `sys.modules` (SciPy's type
resolution is its own: `xlogy(2.0, float32)` is float64 and `erf(float16)` is
float64, so the rule asks the ufunc itself on one-element stand-ins, as
elementwise.result_dtype asks NumPy). With SciPy absent nothing here runs but the
registrations.

Spelling: expit prints as NumPy (`np.exp(-np.logaddexp(0, -x))`, runtime.nn.sigmoid's
overflow-free formula); the others have no NumPy spelling and print as
`scipy.special.<name>(...)`, and compiler/codegen.py adds `import scipy.special` to
a generated module that names `scipy`.
"""
from __future__ import annotations

import ast
import functools
import math
import sys

import numpy as np

from compiler.ir import Aval
from compiler.primitives.elementwise import broadcast_shape, dtype_or_weak_type, result_dtype
from compiler.primitives.registry import Primitive, literal, np_call, register

def special_attr(name: str) -> ast.expr:
    """`scipy.special.<name>` (the generated module imports scipy.special when it
    names it)."""
    module = ast.Attribute(ast.Name("scipy", ast.Load()), "special", ast.Load())
    return ast.Attribute(module, name, ast.Load())


def special_call(name: str, *args: ast.expr) -> ast.expr:
    return ast.Call(special_attr(name), list(args), [])


@functools.lru_cache(maxsize=None)
def special_dtype(fn: str, kinds: tuple) -> np.dtype:
    """The dtype `scipy.special.<fn>` gives on operands of these dtypes / weak types
    (NumPy's exp rule should SciPy not be loaded, which no traced call can cause)."""
    special = sys.modules.get("scipy.special")
    if special is None:
        return result_dtype("exp", tuple(k for k in kinds if isinstance(k, np.dtype)) or (float,))
    dummies = [np.ones(1, dtype=k) if isinstance(k, np.dtype) else k(1) for k in kinds]
    with np.errstate(all="ignore"):
        return np.asarray(getattr(special, fn)(*dummies)).dtype


def _abstract(name: str):
    def abstract(*avals: Aval) -> Aval:
        shape = broadcast_shape(name, avals)
        return Aval(shape, special_dtype(name, tuple(dtype_or_weak_type(a) for a in avals)))

    return abstract


def _special(name: str, vjp, emit=None) -> None:
    """Register scipy.special's ufunc `name` (its `__name__`), printed as
    `scipy.special.<name>(...)` unless `emit` spells it with NumPy."""
    register(
        Primitive(
            name,
            abstract=_abstract(name),
            emit=emit or (lambda *args: special_call(name, *args)),
            vjp=vjp,
            lanewise=True,
            ufunc=True,
        )
    )


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _expit_emit(x: ast.expr) -> ast.expr:
    """1 / (1 + exp(-x)) as exp(-log(1 + exp(-x))): no exp overflows (runtime.nn.sigmoid)."""
    return np_call("exp", ast.UnaryOp(ast.USub(), np_call("logaddexp", literal(0), ast.UnaryOp(ast.USub(), x))))


def _where_nonzero(x, y):
    """`y` where x != 0, else 1: the divisor of x / y that makes the quotient 0 where x is."""
    return np.where(x == 0, 1, y)


# scipy.special's ufuncs registered here, by `__name__` (docs list them as scipy.special.<name>;
# scipy.special.digamma is `psi`). Its cbrt, exp2, expm1 and log1p are the same functions as
# NumPy's and bind NumPy's primitives of those names.
SCIPY_UFUNCS = ("expit", "log_expit", "logit", "erf", "erfc", "ndtr", "log_ndtr", "gammaln", "psi", "xlogy", "xlog1py")

# sigmoid and its inverse
_special("expit", lambda g, out, x: (g * (out * (1 - out)),), emit=_expit_emit)
_special("log_expit", lambda g, out, x: (g * (-x).apply("expit"),))
_special("logit", lambda g, out, x: (g / (x * (1 - x)),))
# error functions and the normal distribution
_special("erf", lambda g, out, x: (g * (_TWO_OVER_SQRT_PI * np.exp(-(x * x))),))
_special("erfc", lambda g, out, x: (-(g * (_TWO_OVER_SQRT_PI * np.exp(-(x * x)))),))
_special("ndtr", lambda g, out, x: (g * (_INV_SQRT_2PI * np.exp(-0.5 * (x * x))),))
# d log Phi(x) = phi(x) / Phi(x) = exp(-x²/2 - log Phi(x)) / sqrt(2 pi): no 0 / 0 in the far left tail
_special("log_ndtr", lambda g, out, x: (g * (_INV_SQRT_2PI * np.exp(-0.5 * (x * x) - out)),))
# the gamma family: gammaln' = digamma (the ufunc `psi`), psi' = polygamma(1, .), ...
_special("gammaln", lambda g, out, x: (g * x.apply("psi"),))
_special("psi", lambda g, out, x: (g * x.apply("polygamma", n=1),))
# x log y and x log1p y, 0 where x == 0 (for every y): d/dy is x / y, also 0 there
_special("xlogy", lambda g, out, x, y: (g * np.log(y), g * (x / _where_nonzero(x, y))))
_special("xlog1py", lambda g, out, x, y: (g * np.log1p(y), g * (x / _where_nonzero(x, 1 + y))))


# polygamma(n, x) for n >= 1, only bound by derivative rules (scipy.special.polygamma
# is a Python function, not a ufunc). It prints as (-1)^(n+1) n! zeta(n + 1, x), which
# keeps float32 (scipy.special.polygamma itself returns float64 for float32 x).


def _polygamma_abstract(x: Aval, *, n: int) -> Aval:
    return Aval(x.shape, special_dtype("zeta", (int, dtype_or_weak_type(x))))


def _polygamma_emit(x: ast.expr, *, n: int) -> ast.expr:
    zeta = special_call("zeta", literal(n + 1), x)
    scale = (-1.0) ** (n + 1) * math.factorial(n)
    return zeta if scale == 1 else ast.BinOp(literal(scale), ast.Mult(), zeta)


register(
    Primitive(
        "polygamma",
        abstract=_polygamma_abstract,
        emit=_polygamma_emit,
        vjp=lambda g, out, x, *, n: (g * x.apply("polygamma", n=n + 1),),
        lanewise=True,
    )
)


# Student's t distribution function for a fixed number of degrees of freedom `df` (a
# static parameter: its derivative in df has no closed form), bound by
# compiler/scipy_dispatch.py for scipy.stats.t.cdf and the like. It prints as
# scipy.special.stdtr(df, x); its derivative is the t density.

def _t_density_log_scale(df: float) -> float:
    """log of the t density's normalizing constant."""
    return math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)


def _student_t_cdf_vjp(g, out, x, *, df):
    density = np.exp(_t_density_log_scale(df) - (df + 1) / 2 * np.log1p(x * x / df))
    return (g * density,)


register(
    Primitive(
        "student_t_cdf",
        abstract=lambda x, *, df: Aval(x.shape, special_dtype("stdtr", (float, dtype_or_weak_type(x)))),
        emit=lambda x, *, df: special_call("stdtr", literal(df), x),
        vjp=_student_t_cdf_vjp,
        lanewise=True,
    )
)

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

Some operands have no derivative to trace: a Bessel function's order, the shape
parameters of the incomplete gamma and beta functions (closed forms exist only as
hypergeometric series). Their rules give a `_NoDerivative` in that operand's place,
which the transforms drop unseen unless the operand is differentiated; then it
refuses at the user's line, never a silent zero.
"""
from __future__ import annotations

import ast
import functools
import math
import sys
from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import UnsupportedError
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


# scipy.special's ufuncs registered here, by `__name__` (docs list them as scipy.special.<name>;
# scipy.special.digamma is `psi`, scipy.special.jn is `jv`), filled by `_special`.
_REGISTERED: list[str] = []


def _special(name: str, vjp: Optional[Callable[..., tuple]], emit=None) -> None:
    """Register scipy.special's ufunc `name` (its `__name__`), printed as
    `scipy.special.<name>(...)` unless `emit` spells it with NumPy; `vjp=None` for
    a piecewise-constant one (gammasgn), which carries no gradient."""
    register(
        Primitive(
            name,
            abstract=_abstract(name),
            emit=emit or (lambda *args: special_call(name, *args)),
            vjp=vjp,
            differentiable=vjp is not None,
            lanewise=True,
            ufunc=True,
        )
    )
    _REGISTERED.append(name)


def _sc(name: str) -> np.ufunc:
    """scipy.special's ufunc `name`, for rules to call on tracers (SciPy is loaded:
    one of its ufuncs is being differentiated)."""
    return getattr(sys.modules["scipy.special"], name)


class _NoDerivative:
    """The derivative of an operand that has none to trace, returned by a rule in
    that operand's place. The transforms drop it without looking at it when nothing
    differentiates the operand; any use of it (the reverse transform reading its
    dtype, the forward one adding or returning it) raises the refusal."""

    def __init__(self, message: str):
        self.message = message

    def refuse(self, *args: Any) -> Any:
        raise UnsupportedError(self.message)

    def __getattr__(self, name: str) -> Any:
        return self.refuse()

    __add__ = __radd__ = refuse


def _no_derivative(out: Any, call: str, operand: str, reason: str) -> _NoDerivative:
    """The refusal to differentiate `scipy.special.<call>` in `operand`, at the
    user's line that computed `out`."""
    loc = out.graph.node(out.id).loc
    where = f"{loc.user}: " if loc is not None else ""
    return _NoDerivative(
        f"{where}scipy.special.{call} is not differentiable in {operand} ({reason}). Differentiate it in its "
        f"other arguments only: make {operand} a constant (a Python number, an array the function closes over, "
        f"an argument outside argnums, or stop_gradient({operand}))."
    )


def _last_operand_vjp(call: str, refused: str, reason: str, derivative: Callable[..., Any]) -> Callable[..., tuple]:
    """The VJP of `scipy.special.<call>`, differentiable only in its last operand:
    `derivative(out, *operands)` there, and a refusal for each earlier operand, named
    by the letters of `refused`."""

    def vjp(g, out, *operands):
        return (*(_no_derivative(out, call, name, reason) for name in refused), g * derivative(out, *operands))

    vjp.last_operand_only = True  # for docs/numpy-support.md
    return vjp


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _expit_emit(x: ast.expr) -> ast.expr:
    """1 / (1 + exp(-x)) as exp(-log(1 + exp(-x))): no exp overflows (runtime.nn.sigmoid)."""
    return np_call("exp", ast.UnaryOp(ast.USub(), np_call("logaddexp", literal(0), ast.UnaryOp(ast.USub(), x))))


def _where_nonzero(x, y):
    """`y` where x != 0, else 1: the divisor of x / y that makes the quotient 0 where x is."""
    return np.where(x == 0, 1, y)


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


# Bessel functions: the derivative in x from the neighbouring orders (DLMF 10.6.2 for
# J and Y, 10.29.2 for I and K), with the scalings ive = iv e^-|x| and kve = kv e^x
# differentiated too. The order has no closed-form derivative.
_NEIGHBOURS: dict[str, Callable[..., Any]] = {
    "jv": lambda lower, upper, x, out: 0.5 * (lower - upper),
    "yv": lambda lower, upper, x, out: 0.5 * (lower - upper),
    "iv": lambda lower, upper, x, out: 0.5 * (lower + upper),
    "ive": lambda lower, upper, x, out: 0.5 * (lower + upper) - np.sign(x) * out,
    "kv": lambda lower, upper, x, out: -0.5 * (lower + upper),
    "kve": lambda lower, upper, x, out: out - 0.5 * (lower + upper),
}
_NEIGHBOURS["yn"] = _NEIGHBOURS["yv"]  # yn(n, x): Y of integer order n


def _bessel_vjp(name: str) -> Callable[..., tuple]:
    order, reason = ("n", "its order is an integer") if name == "yn" else ("v", "no closed form in the order")

    def derivative(out, v, x):
        f = _sc(name)
        return _NEIGHBOURS[name](f(v - 1, x), f(v + 1, x), x, out)

    return _last_operand_vjp(f"{name}({order}, x)", order, reason, derivative)


def _order_one_vjp(name: str, order_zero: str) -> Callable[..., tuple]:
    """The order-1 function `name` of the family `name[0]v`: its neighbours are the
    order-0 function and the family's order 2."""
    family = {"j": "jv", "y": "yv", "i": "iv", "k": "kv"}[name[0]] + ("e" if name.endswith("e") else "")

    def vjp(g, out, x):
        return (g * _NEIGHBOURS[family](_sc(order_zero)(x), _sc(family)(2, x), x, out),)

    return vjp


for _name in ("jv", "yv", "yn", "iv", "ive", "kv", "kve"):
    _special(_name, _bessel_vjp(_name))
# order 0: J0' = -J1, Y0' = -Y1, I0' = I1, K0' = -K1, and the scaled ones
_special("j0", lambda g, out, x: (-(g * _sc("j1")(x)),))
_special("y0", lambda g, out, x: (-(g * _sc("y1")(x)),))
_special("i0", lambda g, out, x: (g * _sc("i1")(x),))
_special("i0e", lambda g, out, x: (g * (_sc("i1e")(x) - np.sign(x) * out),))
_special("k0", lambda g, out, x: (-(g * _sc("k1")(x)),))
_special("k0e", lambda g, out, x: (g * (out - _sc("k1e")(x)),))
for _name, _zero in (("j1", "j0"), ("y1", "y0"), ("i1", "i0"), ("i1e", "i0e"), ("k1", "k0"), ("k1e", "k0e")):
    _special(_name, _order_one_vjp(_name, _zero))

# the gamma family (gammasgn is piecewise constant)
_special("gamma", lambda g, out, x: (g * (out * x.apply("psi")),))


def _rgamma_vjp(g, out, x):
    """rgamma' = -psi rgamma, which is 0 * inf at the poles of gamma (x = 0, -1, ...).
    For x <= 0 the reflection rgamma(x) = sin(pi x) Gamma(1 - x) / pi gives
    Gamma(1 - x) (cos(pi x) - sin(pi x) psi(1 - x) / pi), which is (-1)^n n! at x = -n."""
    left = 1 - x
    reflected = _sc("gamma")(left) * (np.cos(math.pi * x) - np.sin(math.pi * x) * left.apply("psi") / math.pi)
    return (g * np.where(x > 0, -(out * x.apply("psi")), reflected),)


_special("rgamma", _rgamma_vjp)
_special("loggamma", lambda g, out, x: (g * x.apply("psi"),))
_special("gammasgn", None)

_SHAPE = "the derivative in a shape parameter has no closed form"


def _gamma_log_density(a, x):
    """log d/dx gammainc(a, x) = log(x^(a-1) e^-x / Gamma(a)) (0^0 = 1 at a = 1)."""
    return _sc("xlogy")(a - 1, x) - x - _sc("gammaln")(a)


def _beta_log_density(a, b, x):
    """log d/dx betainc(a, b, x) = log(x^(a-1) (1-x)^(b-1) / B(a, b))."""
    return _sc("xlogy")(a - 1, x) + _sc("xlog1py")(b - 1, -x) - _sc("betaln")(a, b)


# regularized incomplete gamma P and Q = 1 - P, and their inverses in the second argument
# (the inverse-function rule: dx/dy = 1 / (dy/dx) at x = out)
_special("gammainc", _last_operand_vjp("gammainc(a, x)", "a", _SHAPE,
                                       lambda out, a, x: np.exp(_gamma_log_density(a, x))))
_special("gammaincc", _last_operand_vjp("gammaincc(a, x)", "a", _SHAPE,
                                        lambda out, a, x: -np.exp(_gamma_log_density(a, x))))
_special("gammaincinv", _last_operand_vjp("gammaincinv(a, y)", "a", _SHAPE,
                                          lambda out, a, y: np.exp(-_gamma_log_density(a, out))))
_special("gammainccinv", _last_operand_vjp("gammainccinv(a, y)", "a", _SHAPE,
                                           lambda out, a, y: -np.exp(-_gamma_log_density(a, out))))

# inverse error functions: d erfinv(x) = sqrt(pi)/2 exp(erfinv(x)^2)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2
_special("erfinv", lambda g, out, x: (g * (_SQRT_PI_OVER_TWO * np.exp(out * out)),))
_special("erfcinv", lambda g, out, x: (-(g * (_SQRT_PI_OVER_TWO * np.exp(out * out))),))


# the beta function and its log: d log|B(a, b)| / da = psi(a) - psi(a + b)
def _betaln_partials(a, b):
    both = (a + b).apply("psi")
    return a.apply("psi") - both, b.apply("psi") - both


def _beta_vjp(g, out, a, b):
    da, db = _betaln_partials(a, b)
    return g * (out * da), g * (out * db)


def _betaln_vjp(g, out, a, b):
    da, db = _betaln_partials(a, b)
    return g * da, g * db


_special("beta", _beta_vjp)
_special("betaln", _betaln_vjp)
# the regularized incomplete beta function and its inverse in the third argument
_special("betainc", _last_operand_vjp("betainc(a, b, x)", "ab", _SHAPE,
                                      lambda out, a, b, x: np.exp(_beta_log_density(a, b, x))))
_special("betaincinv", _last_operand_vjp("betaincinv(a, b, y)", "ab", _SHAPE,
                                         lambda out, a, b, y: np.exp(-_beta_log_density(a, b, out))))

# Every ufunc registered above. scipy.special's cbrt, exp2, expm1 and log1p are the same
# functions as NumPy's and bind NumPy's primitives of those names.
SCIPY_UFUNCS = tuple(_REGISTERED)


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

"""NumPy's elementwise functions on traced values (see compiler/numpy_functions/__init__.py).

Most elementwise functions are ufuncs and need no handler: `__array_ufunc__` binds the
primitive of the same name (compiler/primitives/elementwise.py). These are the ones
NumPy writes as plain functions over ufuncs.
"""
from __future__ import annotations

import operator

import numpy as np

from compiler.numpy_dispatch import _no_extras, as_tracer, implements
from compiler.tracing import Tracer, bind


@implements(np.round, np.around, differentiable=False)
def round_(a, decimals=0, out=None) -> Tracer:
    """np.round / np.around (its alias) / `x.round(decimals)`: prints as np.round.
    Its gradient is 0 (a step function), like np.floor's."""
    _no_extras("round", out=out)
    return bind("round", as_tracer(a), decimals=operator.index(decimals))


@implements(np.fix, differentiable=False)
def fix(x, out=None) -> Tracer:
    """np.fix is np.trunc (NumPy defines it so), and prints as np.trunc."""
    _no_extras("fix", out=out)
    return np.trunc(as_tracer(x))


@implements(np.sinc)
def sinc(x) -> Tracer:
    """sin(pi x) / (pi x), 1 at 0; differentiable everywhere, 0 included."""
    return bind("sinc", as_tracer(x))


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None) -> Tracer:
    """NaN and infinities replaced by finite numbers. The gradient passes where x
    is finite and is 0 where a lane was replaced by a constant. `copy` has no
    meaning here: traced values are never written in place."""
    x = as_tracer(x)
    if x.dtype.kind not in "fc":
        return x  # integers and booleans have no NaN; NumPy returns them unchanged
    posinf, neginf = (None if v is None else float(v) for v in (posinf, neginf))
    return bind("nan_to_num", x, nan=float(nan), posinf=posinf, neginf=neginf)


@implements(np.real)
def real(val) -> Tracer:
    """The real part (also `x.real`): a view into a complex value, the value itself
    for a real one, as NumPy returns."""
    x = as_tracer(val)
    return bind("real", x) if x.dtype.kind == "c" else x.same_value()


@implements(np.imag)
def imag(val) -> Tracer:
    """The imaginary part (also `x.imag`): zeros of x's dtype for a real x."""
    x = as_tracer(val)
    return bind("imag", x) if x.dtype.kind == "c" else np.zeros_like(x)


@implements(np.angle)
def angle(z, deg=False) -> Tracer:
    """The argument of a complex value in radians (degrees with deg=True); 0 or pi
    for a real one."""
    return bind("angle", as_tracer(z), deg=bool(deg))

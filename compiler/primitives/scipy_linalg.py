"""scipy.linalg's matrix functions with no NumPy spelling, and a value whose derivative
is refused.

`sqrtm` and `solve_sylvester` print as `scipy.linalg.<name>(...)` (SciPy's Schur
methods; an eigendecomposition would give different numbers for non-normal
matrices), and compiler/codegen.py imports the scipy submodules a generated module
names. compiler/scipy_dispatch.py binds them for traced calls of SciPy's functions.
Both act on one real matrix (no batch axes; the dispatcher refuses others).

Derivatives, all through another Sylvester equation. X = solve_sylvester(A, B, Q)
solves AX + XB = Q, so A dX + dX B = dQ - dA X - X dB; the adjoint operator is
Y -> A^T Y + Y B^T, so Y solving A^T Y + Y B^T = G gives G_Q = Y, G_A = -Y X^T,
G_B = -X^T Y. S = sqrtm(A) satisfies S S = A, so S dS + dS S = dA, and its VJP
solves S^T G_A + G_A S^T = G_S.

`no_derivative(x, reason=...)` is `x`, with derivative rules that refuse at the
user's line with `reason`: scipy_dispatch passes a value through it where the
formula it computes has no derivative in that value (the pseudo-inverse of a
possibly singular covariance, an integer count).
"""
from __future__ import annotations

import ast
from typing import Any

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.decompositions import float_dtype
from compiler.primitives.registry import Primitive, literal, register
from compiler.primitives.scipy_special import _NoDerivative


def _linalg_call(name: str, *args: ast.expr) -> ast.expr:
    module = ast.Attribute(ast.Name("scipy", ast.Load()), "linalg", ast.Load())
    return ast.Call(ast.Attribute(module, name, ast.Load()), list(args), [])


def _real_matrix(fn: str, a: Aval, square: bool = True) -> None:
    if a.ndim != 2 or (square and a.shape[0] != a.shape[1]) or a.dtype.kind == "c":
        kind = "square " if square else ""
        raise ShapeError(f"scipy.linalg.{fn}: needs one real {kind}matrix, got {a.dtype}{list(a.shape)}")


# --- sqrtm ---------------------------------------------------------------------------

def _sqrtm_abstract(a: Aval) -> Aval:
    _real_matrix("sqrtm", a)
    if a.dtype.kind != "f":
        raise ShapeError(f"scipy.linalg.sqrtm: needs a floating-point matrix, got {a.dtype} (convert it first)")
    return Aval(a.shape, a.dtype)


def _sqrtm_emit(a: ast.expr) -> ast.expr:
    """SciPy returns a complex root when A has negative real eigenvalues: the safe
    cast to the operand's dtype then raises at run time instead of dropping the
    imaginary part (the operand is printed as a name: it is read twice)."""
    call = _linalg_call("sqrtm", a)
    dtype = ast.Attribute(a, "dtype", ast.Load())
    keywords = [ast.keyword("casting", literal("safe")), ast.keyword("copy", literal(False))]
    return ast.Call(ast.Attribute(call, "astype", ast.Load()), [dtype], keywords)


def _sqrtm_vjp(g, out, a):
    return (out.T.apply("solve_sylvester", out.T, g),)


def _sqrtm_jvp(tangents, out, a):
    return out.apply("solve_sylvester", out, tangents[0])


register(Primitive("sqrtm", abstract=_sqrtm_abstract, emit=_sqrtm_emit, vjp=_sqrtm_vjp, jvp=_sqrtm_jvp,
                   inline_operands=False))


# --- solve_sylvester -----------------------------------------------------------------

def _sylvester_abstract(a: Aval, b: Aval, q: Aval) -> Aval:
    _real_matrix("solve_sylvester", a)
    _real_matrix("solve_sylvester", b)
    _real_matrix("solve_sylvester", q, square=False)
    if q.shape != (a.shape[0], b.shape[0]):
        raise ShapeError(f"scipy.linalg.solve_sylvester: q has shape {q.shape}, "
                         f"not {(a.shape[0], b.shape[0])} (rows of a, columns of b)")
    return Aval(q.shape, float_dtype(a.dtype, b.dtype, q.dtype))


def _sylvester_vjp(g, out, a, b, q):
    y = a.T.apply("solve_sylvester", b.T, g)
    return -(y @ out.T), -(out.T @ y), y


def _sylvester_jvp(tangents, out, a, b, q):
    da, db, dq = tangents
    rhs = [term for term in (dq, None if da is None else -(da @ out), None if db is None else -(out @ db))
           if term is not None]
    return a.apply("solve_sylvester", b, sum(rhs[1:], rhs[0]))


register(Primitive("solve_sylvester", abstract=_sylvester_abstract,
                   emit=lambda a, b, q: _linalg_call("solve_sylvester", a, b, q),
                   vjp=_sylvester_vjp, jvp=_sylvester_jvp))


# --- no_derivative -------------------------------------------------------------------

def _refusal(out: Any, reason: str) -> _NoDerivative:
    loc = out.graph.node(out.id).loc
    return _NoDerivative(f"{loc.user}: {reason}" if loc is not None else reason)


register(
    Primitive(
        "no_derivative",
        abstract=lambda x, *, reason: Aval(x.shape, x.dtype, x.weak),
        emit=lambda x, *, reason: x,
        vjp=lambda g, out, x, *, reason: (_refusal(out, reason),),
        jvp=lambda tangents, out, x, *, reason: _refusal(out, reason),
        view=True,
    )
)

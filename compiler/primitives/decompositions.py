"""np.linalg functions of matrices: inv, solve, det, slogdet, cholesky, eigh, svd,
pinv and norm, each over the last two axes with leading batch axes.

An IR node is one value, so a decomposition with several results is one primitive
per result (`eigvalsh` and `eigh_vectors` for np.linalg.eigh); each prints as its
own NumPy call (`np.linalg.eigh(A)[1]`) and a rule needing a sibling result binds
it again, which CSE merges with the forward node.

np.linalg.cholesky and np.linalg.eigh read only the lower triangle of their
operand, so their gradients are lower triangular: an entry above the diagonal does
not change the result. Gradients are undefined at singular matrices (inv, solve,
det: the rules invert the matrix, and NumPy raises LinAlgError at run time), and
for eigenvectors / singular vectors of repeated eigenvalues / singular values: the
rules then drop the terms that would divide by zero, which is the gradient of any
function invariant to the choice of basis of the degenerate subspace.
"""
from __future__ import annotations

import ast
from typing import Any

import numpy as np

from compiler.errors import ShapeError, UnsupportedError
from compiler.ir import Aval
from compiler.primitives.reduce import reduced_shape
from compiler.primitives.registry import Primitive, literal, np_call, register


def float_dtype(*dtypes: np.dtype) -> np.dtype:
    """The dtype np.linalg computes in: integers and bools promote to float64."""
    dtype = np.result_type(*dtypes)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def _square(fn: str, a: Aval) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"np.linalg.{fn}: needs square matrices in the last two axes, got shape {a.shape}")


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _as_matrix_scale(v):
    """A (batch of) scalar(s) as (..., 1, 1), to scale matrices."""
    return v if v.ndim == 0 else v[..., None, None]


def _lower_gradient(s):
    """The gradient with respect to the lower triangle that NumPy reads, from the
    gradient `s` with respect to the symmetric matrix it stands for: off-diagonal
    entries collect s_ij + s_ji, the diagonal s_ii."""
    sym = s + _mT(s)
    return 0.5 * (np.tril(sym) + np.tril(sym, -1))


def _safe_reciprocal(d):
    """1/d, and 0 where d == 0 (diagonals, repeated eigen- or singular values)."""
    return np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))


def _linalg(fn: str, index: int | None = None, **kwargs: Any):
    """Emit rule `np.linalg.<fn>(x, ...)`, or its result number `index`."""

    def emit(*args: ast.expr, **params: Any) -> ast.expr:
        expr = np_call(f"linalg.{fn}", *args, **kwargs)
        return expr if index is None else ast.Subscript(expr, ast.Constant(index), ast.Load())

    return emit


def _square_abstract(fn: str, shape_of=lambda a: a.shape):
    def abstract(a: Aval, **params: Any) -> Aval:
        _square(fn, a)
        return Aval(shape_of(a), float_dtype(a.dtype))

    return abstract


# --- inv, solve, det, slogdet -------------------------------------------------

register(Primitive("inv", abstract=_square_abstract("inv"), emit=_linalg("inv"),
                   vjp=lambda g, out, a: (-(_mT(out) @ g @ _mT(out)),)))


def _solve_abstract(a: Aval, b: Aval) -> Aval:
    _square("solve", a)
    dtype = float_dtype(a.dtype, b.dtype)
    if b.ndim == 1:
        if b.shape[0] != a.shape[-1]:
            raise ShapeError(f"np.linalg.solve: a vector of {b.shape[0]} for matrices of shape {a.shape}")
        return Aval(a.shape[:-1], dtype)
    try:
        batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    except ValueError:
        raise ShapeError(f"np.linalg.solve: batch axes of {a.shape} and {b.shape} do not broadcast") from None
    if b.shape[-2] != a.shape[-1]:
        raise ShapeError(f"np.linalg.solve: right-hand sides of shape {b.shape} for matrices of shape {a.shape}")
    return Aval(batch + b.shape[-2:], dtype)


def _solve_vjp(g, out, a, b):
    """x = A^-1 b: g_b = A^-T g, g_A = -g_b x^T. A 1-D b is one column."""
    if b.ndim == 1:
        g_b = np.linalg.solve(_mT(a), g[..., None])
        return -(g_b @ _mT(out[..., None])), g_b[..., 0]
    g_b = np.linalg.solve(_mT(a), g)
    return -(g_b @ _mT(out)), g_b


register(Primitive("solve", abstract=_solve_abstract, emit=_linalg("solve"), vjp=_solve_vjp))

_det_abstract = _square_abstract("det", lambda a: a.shape[:-2])

register(Primitive("det", abstract=_det_abstract, emit=_linalg("det"),
                   vjp=lambda g, out, a: (_as_matrix_scale(g * out) * _mT(np.linalg.inv(a)),)))
register(Primitive("slogdet_sign", abstract=_det_abstract, emit=_linalg("slogdet", 0), differentiable=False))
register(Primitive("slogdet_logabsdet", abstract=_det_abstract, emit=_linalg("slogdet", 1),
                   vjp=lambda g, out, a: (_as_matrix_scale(g) * _mT(np.linalg.inv(a)),)))


# --- cholesky, eigh -----------------------------------------------------------

def _cholesky_vjp(g, out, a):
    """A = L L^T: g_A = sym(L^-T tril_half(L^T g) L^-1), with tril_half the lower
    triangle with its diagonal halved (Murray, 2016)."""
    product = _mT(out) @ g
    inner = 0.5 * (np.tril(product) + np.tril(product, -1))
    l_inv = np.linalg.inv(out)
    return (_lower_gradient(_mT(l_inv) @ inner @ l_inv),)


register(Primitive("cholesky", abstract=_square_abstract("cholesky"), emit=_linalg("cholesky"), vjp=_cholesky_vjp))


def _eigvalsh_vjp(g, out, a):
    vectors = a.apply("eigh_vectors")
    return (_lower_gradient((vectors * g[..., None, :]) @ _mT(vectors)),)


def _eigh_vectors_vjp(g, out, a):
    """g_A = V (F o V^T g) V^T with F_ij = 1 / (w_j - w_i) off the diagonal."""
    values = a.apply("eigvalsh")
    gaps = _safe_reciprocal(values[..., None, :] - values[..., :, None])
    return (_lower_gradient(out @ (gaps * (_mT(out) @ g)) @ _mT(out)),)


register(Primitive("eigvalsh", abstract=_square_abstract("eigvalsh", lambda a: a.shape[:-1]),
                   emit=_linalg("eigvalsh"), vjp=_eigvalsh_vjp))
register(Primitive("eigh_vectors", abstract=_square_abstract("eigh"), emit=_linalg("eigh", 1), vjp=_eigh_vectors_vjp))


# --- svd, pinv ------------------------------------------------------------------

def _matrix(fn: str, a: Aval) -> None:
    if a.ndim < 2:
        raise ShapeError(f"np.linalg.{fn}: needs matrices in the last two axes, got shape {a.shape}")


def _svd_abstract(result: str):
    def abstract(a: Aval, *, full_matrices: bool = False) -> Aval:
        _matrix("svd", a)
        m, n = a.shape[-2:]
        shape = {"U": (m, m if full_matrices else min(m, n)), "S": (min(m, n),),
                 "Vh": (n if full_matrices else min(m, n), n)}[result]
        return Aval(a.shape[:-2] + shape, float_dtype(a.dtype))

    return abstract


def _reduced_svd(a):
    return a.apply("svd_u", full_matrices=False), a.apply("svdvals"), a.apply("svd_vh", full_matrices=False)


def _refuse_full(a, full_matrices: bool) -> None:
    if full_matrices and a.shape[-1] != a.shape[-2]:
        raise UnsupportedError(
            "the gradient of np.linalg.svd(..., full_matrices=True) of a non-square matrix is undefined "
            "(the extra singular vectors are arbitrary); pass full_matrices=False."
        )


def _svdvals_vjp(g, out, a):
    u, _, vh = _reduced_svd(a)
    return ((u * g[..., None, :]) @ vh,)


def _gap_matrix(s):
    """F_ij = 1 / (s_j^2 - s_i^2) off the diagonal, 0 on it and on ties."""
    squares = s * s
    return _safe_reciprocal(squares[..., None, :] - squares[..., :, None])


def _svd_u_vjp(g, out, a, *, full_matrices):
    """Townsend (2016), the U terms: U (F o (U^T g - g^T U)) S V^T + (I - U U^T) g S^-1 V^T."""
    _refuse_full(a, full_matrices)
    u, s, vh = _reduced_svd(a)
    u_g = _mT(u) @ g
    rotation = (_gap_matrix(s) * (u_g - _mT(u_g))) * s[..., None, :]
    outside = (g - u @ u_g) / s[..., None, :]
    return ((u @ rotation + outside) @ vh,)


def _svd_vh_vjp(g, out, a, *, full_matrices):
    """Townsend (2016), the V terms with g the cotangent of V^T:
    U S (F o (V^T V' - V'^T V)) V^T + U S^-1 V'^T (I - V V^T), V' = g^T."""
    _refuse_full(a, full_matrices)
    u, s, vh = _reduced_svd(a)
    g_v = g @ _mT(vh)
    rotation = s[..., :, None] * (_gap_matrix(s) * (_mT(g_v) - g_v))
    outside = (g - g_v @ vh) / s[..., :, None]
    return (u @ (rotation @ vh + outside),)


register(Primitive("svdvals", abstract=_svd_abstract("S"), emit=_linalg("svd", compute_uv=False), vjp=_svdvals_vjp))


def _svd_emit(index: int):
    def emit(a: ast.expr, *, full_matrices: bool) -> ast.expr:
        return _linalg("svd", index, full_matrices=full_matrices)(a)

    return emit


register(Primitive("svd_u", abstract=_svd_abstract("U"), emit=_svd_emit(0), vjp=_svd_u_vjp))
register(Primitive("svd_vh", abstract=_svd_abstract("Vh"), emit=_svd_emit(2), vjp=_svd_vh_vjp))


def _pinv_abstract(a: Aval) -> Aval:
    _matrix("pinv", a)
    return Aval(a.shape[:-2] + (a.shape[-1], a.shape[-2]), float_dtype(a.dtype))


def _pinv_vjp(g, out, a):
    """Golub & Pereyra (1973), for a matrix of constant rank:
    -P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A), P = pinv(A)."""
    p, p_t, g_t = out, _mT(out), _mT(g)
    left = g_t @ (p @ p_t)
    right = (p_t @ p) @ g_t
    return (-(p_t @ g @ p_t) + left - a @ (p @ left) + right - (right @ p) @ a,)


register(Primitive("pinv", abstract=_pinv_abstract, emit=_linalg("pinv"), vjp=_pinv_vjp))


# --- norm -----------------------------------------------------------------------

def _norm_power(ord) -> float:
    return 2.0 if ord in (None, "fro") else float(ord)


def _norm_abstract(x: Aval, *, ord, axis: tuple[int, ...], keepdims: bool, given_axis) -> Aval:
    return Aval(reduced_shape(x.shape, axis, keepdims), float_dtype(x.dtype))


def _norm_emit(x: ast.expr, *, ord, axis, keepdims, given_axis) -> ast.expr:
    args = [x] if ord is None else [x, literal(ord)]
    kwargs = {"axis": given_axis} if given_axis is not None else {}
    if keepdims:
        kwargs["keepdims"] = True
    return np_call("linalg.norm", *args, **kwargs)


def _norm_vjp(g, out, x, *, ord, axis, keepdims, given_axis):
    """d ||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1); at ||x|| = 0 the 2-norm
    (and any p > 1) takes the subgradient 0, as x = 0 there."""
    p = _norm_power(ord)
    kept = reduced_shape(x.shape, axis, True)
    g, safe = np.reshape(g, kept), np.reshape(np.where(out == 0, 1, out), kept)
    if p == 2:
        return (g * (x / safe),)
    return (g * (np.sign(x) * np.abs(x) ** (p - 1) / safe ** (p - 1)),)


register(Primitive("norm", abstract=_norm_abstract, emit=_norm_emit, vjp=_norm_vjp))

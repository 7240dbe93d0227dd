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

The forward-mode (JVP) rules follow the same conventions, so that jvp and vjp are
transposes of each other: cholesky and eigh see the tangent of the symmetric matrix
the lower triangle stands for, and the terms dropped at ties are dropped here too.
"""
from __future__ import annotations

import ast
from typing import Any

import numpy as np

from compiler.errors import ShapeError, UnsupportedError
from compiler.ir import Aval
from compiler.primitives.elementwise import conj_if_complex
from compiler.primitives.reduce import reduced_shape
from compiler.primitives.registry import Primitive, literal, np_call, register


def float_dtype(*dtypes: np.dtype) -> np.dtype:
    """The dtype np.linalg computes in: integers and bools promote to float64."""
    dtype = np.result_type(*dtypes)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def real_dtype(*dtypes: np.dtype) -> np.dtype:
    """The dtype of np.linalg's real results (eigvalsh, singular values, slogdet's
    logabsdet, norm): `float_dtype`, complex64 and complex128 giving float32 and float64."""
    return np.empty(0, float_dtype(*dtypes)).real.dtype


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


def _lower_tangent(t):
    """The tangent of the symmetric matrix NumPy reads from the lower triangle of a
    matrix whose tangent is `t`: tril(t) mirrored above the diagonal."""
    return np.tril(t) + _mT(np.tril(t, -1))


def _trace_product(x, y):
    """trace(x @ y) over the last two axes."""
    return np.sum(_mT(x) * y, axis=(-2, -1))


def _diagonal_product(u, t, v):
    """diag(u^T t v): the entries u_i^T t v_i, one per column."""
    return np.sum(u * (t @ v), axis=-2)


def _safe_reciprocal(d):
    """1/d, and 0 where d == 0 (diagonals, repeated eigen- or singular values)."""
    return np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))


def _linalg(fn: str, index: int | None = None, **kwargs: Any):
    """Emit rule `np.linalg.<fn>(x, ...)`, or its result number `index`."""

    def emit(*args: ast.expr, **params: Any) -> ast.expr:
        expr = np_call(f"linalg.{fn}", *args, **kwargs)
        return expr if index is None else ast.Subscript(expr, ast.Constant(index), ast.Load())

    return emit


def _square_abstract(fn: str, shape_of=lambda a: a.shape, dtype_of=float_dtype):
    def abstract(a: Aval, **params: Any) -> Aval:
        _square(fn, a)
        return Aval(shape_of(a), dtype_of(a.dtype))

    return abstract


# --- inv, solve, det, slogdet -------------------------------------------------
# Of complex matrices these are holomorphic, and each rule's transposes become
# conjugate transposes (the convention of compiler/transforms/reverse.py: the adjoint
# of dA -> -X dA X is G -> -X^H G X^H); `_mH` is `_mT` of a real matrix.


def _mH(x):
    return _mT(conj_if_complex(x))


register(Primitive("inv", abstract=_square_abstract("inv"), emit=_linalg("inv"),
                   vjp=lambda g, out, a: (-(_mH(out) @ g @ _mH(out)),),
                   jvp=lambda t, out, a: -(out @ t[0] @ out)))


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
    """x = A^-1 b: g_b = A^-T g, g_A = -g_b x^T (conjugate transposes, where complex).
    A 1-D b is one column."""
    if b.ndim == 1:
        g_b = np.linalg.solve(_mH(a), g[..., None])
        return -(g_b @ _mH(out[..., None])), g_b[..., 0]
    g_b = np.linalg.solve(_mH(a), g)
    return -(g_b @ _mH(out)), g_b


def _solve_jvp(tangents, out, a, b):
    """dx = A^-1 (db - dA x). A 1-D b is one column."""
    t_a, t_b = tangents
    column = b.ndim == 1
    rhs = None if t_b is None else t_b[..., None] if column else t_b
    if t_a is not None:
        moved = -(t_a @ (out[..., None] if column else out))
        rhs = moved if rhs is None else rhs + moved
    dx = np.linalg.solve(a, rhs)
    return dx[..., 0] if column else dx


register(Primitive("solve", abstract=_solve_abstract, emit=_linalg("solve"), vjp=_solve_vjp, jvp=_solve_jvp))

_det_abstract = _square_abstract("det", lambda a: a.shape[:-2])

register(Primitive("det", abstract=_det_abstract, emit=_linalg("det"),
                   vjp=lambda g, out, a: (_as_matrix_scale(g * conj_if_complex(out)) * _mH(np.linalg.inv(a)),),
                   jvp=lambda t, out, a: out * _trace_product(np.linalg.inv(a), t[0])))


def _logabsdet_jvp(tangents, out, a):
    """d log|det A| = tr(A^-1 dA), of which a complex A's logabsdet takes the real part."""
    d = _trace_product(np.linalg.inv(a), tangents[0])
    return np.real(d) if d.dtype.kind == "c" else d


def _sign_jvp(tangents, out, a):
    """A real determinant's sign is piecewise constant (the primitive is not
    differentiable); a complex one's, det / |det|, turns with the determinant's
    phase: d sign = sign * 1j * Im tr(A^-1 dA) (forward mode only, see
    registry.COMPLEX_JVPS)."""
    if out.dtype.kind != "c":
        return None
    return out * (1j * np.imag(_trace_product(np.linalg.inv(a), tangents[0])))


register(Primitive("slogdet_sign", abstract=_det_abstract, emit=_linalg("slogdet", 0), differentiable=False,
                   jvp=_sign_jvp))
register(Primitive("slogdet_logabsdet", abstract=_square_abstract("det", lambda a: a.shape[:-2], real_dtype),
                   emit=_linalg("slogdet", 1),
                   # of a complex A, d log|det A| = Re tr(A^-1 dA): g_A = g A^-H
                   vjp=lambda g, out, a: (_as_matrix_scale(g) * _mH(np.linalg.inv(a)),),
                   jvp=_logabsdet_jvp))


# --- cholesky, eigh -----------------------------------------------------------

def _tril_half(x):
    """The lower triangle of x with its diagonal halved."""
    return 0.5 * (np.tril(x) + np.tril(x, -1))


def _cholesky_vjp(g, out, a):
    """A = L L^T: g_A = sym(L^-T tril_half(L^T g) L^-1) (Murray, 2016)."""
    inner = _tril_half(_mT(out) @ g)
    l_inv = np.linalg.inv(out)
    return (_lower_gradient(_mT(l_inv) @ inner @ l_inv),)


def _cholesky_jvp(tangents, out, a):
    """dL = L tril_half(L^-1 dA L^-T), dA the symmetric tangent."""
    l_inv = np.linalg.inv(out)
    return out @ _tril_half(l_inv @ _lower_tangent(tangents[0]) @ _mT(l_inv))


register(Primitive("cholesky", abstract=_square_abstract("cholesky"), emit=_linalg("cholesky"), vjp=_cholesky_vjp,
                   jvp=_cholesky_jvp))


def _eigen_gaps(a):
    """F_ij = 1 / (w_j - w_i) off the diagonal, 0 on it and on ties."""
    values = a.apply("eigvalsh")
    return _safe_reciprocal(values[..., None, :] - values[..., :, None])


def _eigvalsh_vjp(g, out, a):
    vectors = a.apply("eigh_vectors")
    return (_lower_gradient((vectors * g[..., None, :]) @ _mT(vectors)),)


def _eigh_vectors_vjp(g, out, a):
    """g_A = V (F o V^T g) V^T."""
    return (_lower_gradient(out @ (_eigen_gaps(a) * (_mT(out) @ g)) @ _mT(out)),)


def _eigvalsh_jvp(tangents, out, a):
    """dw = diag(V^T dA V)."""
    vectors = a.apply("eigh_vectors")
    return _diagonal_product(vectors, _lower_tangent(tangents[0]), vectors)


def _eigh_vectors_jvp(tangents, out, a):
    """dV = V (F o V^T dA V)."""
    return out @ (_eigen_gaps(a) * (_mT(out) @ _lower_tangent(tangents[0]) @ out))


register(Primitive("eigvalsh", abstract=_square_abstract("eigvalsh", lambda a: a.shape[:-1], real_dtype),
                   emit=_linalg("eigvalsh"), vjp=_eigvalsh_vjp, jvp=_eigvalsh_jvp))
register(Primitive("eigh_vectors", abstract=_square_abstract("eigh"), emit=_linalg("eigh", 1), vjp=_eigh_vectors_vjp,
                   jvp=_eigh_vectors_jvp))


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
        return Aval(a.shape[:-2] + shape, (real_dtype if result == "S" else float_dtype)(a.dtype))

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


def _singular_vectors_tangent(u, s, v, t):
    """Townsend (2016) forward: dU = U (F o (dP S + S dP^T)) + (I - U U^T) dA V S^-1
    with dP = U^T dA V; dV is the same with U and V swapped and dA transposed, as
    A^T = V S U^T."""
    t_v = t @ v
    p = _mT(u) @ t_v
    rotation = _gap_matrix(s) * (p * s[..., None, :] + s[..., :, None] * _mT(p))
    return u @ rotation + (t_v - u @ p) / s[..., None, :]


def _svdvals_jvp(tangents, out, a):
    """ds = diag(U^T dA V)."""
    u, _, vh = _reduced_svd(a)
    return _diagonal_product(u, tangents[0], _mT(vh))


def _svd_u_jvp(tangents, out, a, *, full_matrices):
    """dU of the reduced SVD."""
    _refuse_full(a, full_matrices)
    u, s, vh = _reduced_svd(a)
    return _singular_vectors_tangent(u, s, _mT(vh), tangents[0])


def _svd_vh_jvp(tangents, out, a, *, full_matrices):
    """dV^T: dV from A^T = V S U^T, transposed."""
    _refuse_full(a, full_matrices)
    u, s, vh = _reduced_svd(a)
    return _mT(_singular_vectors_tangent(_mT(vh), s, u, _mT(tangents[0])))


register(Primitive("svdvals", abstract=_svd_abstract("S"), emit=_linalg("svd", compute_uv=False), vjp=_svdvals_vjp,
                   jvp=_svdvals_jvp))


def _svd_emit(index: int):
    def emit(a: ast.expr, *, full_matrices: bool) -> ast.expr:
        return _linalg("svd", index, full_matrices=full_matrices)(a)

    return emit


register(Primitive("svd_u", abstract=_svd_abstract("U"), emit=_svd_emit(0), vjp=_svd_u_vjp, jvp=_svd_u_jvp))
register(Primitive("svd_vh", abstract=_svd_abstract("Vh"), emit=_svd_emit(2), vjp=_svd_vh_vjp, jvp=_svd_vh_jvp))


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


def _pinv_jvp(tangents, out, a):
    """Golub & Pereyra (1973), for a matrix of constant rank:
    dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P."""
    p, p_t, t_t = out, _mT(out), _mT(tangents[0])
    left = (p @ p_t) @ t_t
    right = t_t @ (p_t @ p)
    return -(p @ tangents[0] @ p) + left - (left @ a) @ p + right - p @ (a @ right)


register(Primitive("pinv", abstract=_pinv_abstract, emit=_linalg("pinv"), vjp=_pinv_vjp, jvp=_pinv_jvp))


# --- norm -----------------------------------------------------------------------

def _norm_power(ord) -> float:
    return 2.0 if ord in (None, "fro") else float(ord)


def _norm_abstract(x: Aval, *, ord, axis: tuple[int, ...], keepdims: bool, given_axis) -> Aval:
    return Aval(reduced_shape(x.shape, axis, keepdims), real_dtype(x.dtype))


def _norm_emit(x: ast.expr, *, ord, axis, keepdims, given_axis) -> ast.expr:
    args = [x] if ord is None else [x, literal(ord)]
    kwargs = {"axis": given_axis} if given_axis is not None else {}
    if keepdims:
        kwargs["keepdims"] = True
    return np_call("linalg.norm", *args, **kwargs)


def _norm_gradient(out, x, ord, axis):
    """d ||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1), with the norm's axes kept;
    at ||x|| = 0 the 2-norm (and any p > 1) takes the subgradient 0, as x = 0 there."""
    p = _norm_power(ord)
    safe = np.reshape(np.where(out == 0, 1, out), reduced_shape(x.shape, axis, True))
    if p == 2:
        return x / safe
    return np.sign(x) * np.abs(x) ** (p - 1) / safe ** (p - 1)


def _norm_vjp(g, out, x, *, ord, axis, keepdims, given_axis):
    return (np.reshape(g, reduced_shape(x.shape, axis, True)) * _norm_gradient(out, x, ord, axis),)


def _norm_jvp(tangents, out, x, *, ord, axis, keepdims, given_axis):
    """d ||x|| = <grad ||x||, dx> over the norm's axes."""
    return np.sum(_norm_gradient(out, x, ord, axis) * tangents[0], axis=axis, keepdims=keepdims)


register(Primitive("norm", abstract=_norm_abstract, emit=_norm_emit, vjp=_norm_vjp, jvp=_norm_jvp))

"""NumPy's linalg functions on traced values (see compiler/numpy_functions/__init__.py).

Contractions (np.einsum in all its spellings, tensordot, inner, trace, diagonal)
become one `einsum` primitive with canonical subscripts: an explicit output and a
letter for every axis, ellipsis axes named by unused letters, so the generated
code is an `np.einsum` call and every gradient is one too. np.linalg functions
with several results return a named tuple of one primitive per result.
"""
from __future__ import annotations

import operator
from typing import Any, NamedTuple, Sequence

import numpy as np

from compiler.errors import ShapeError, UnsupportedError, at_user_line
from compiler.numpy_dispatch import _no_extras, as_tracer, axes, implements, one_axis
from compiler.primitives.decompositions import float_dtype
from compiler.tracing import Tracer, bind

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- einsum ---------------------------------------------------------------------

def _sublist_subscripts(args: Sequence[Any]) -> tuple[str, list[Any]]:
    """np.einsum(a, [0, 1], b, [1, 2], [0, 2]) as ('ab,bc->ac', [a, b])."""
    def labels(sublist) -> str:
        return "".join("..." if s is Ellipsis else _LETTERS[operator.index(s)] for s in sublist)

    operands, inputs = list(args[0::2][: len(args) // 2]), [labels(s) for s in args[1::2]]
    output = "->" + labels(args[-1]) if len(args) % 2 else ""
    return ",".join(inputs) + output, operands


def _implicit_output(inputs: list[str]) -> str:
    """NumPy's output when none is given: letters used once, in alphabetical order."""
    letters = "".join(s.replace("...", "") for s in inputs)
    once = sorted(c for c in set(letters) if letters.count(c) == 1)
    return ("..." if any("..." in s for s in inputs) else "") + "".join(once)


def _expand_ellipsis(labels: str, ndim: int, batch: str) -> str:
    """An operand's labels with '...' replaced by the last letters of `batch`."""
    named = len(labels.replace("...", ""))
    if named > ndim or ("..." not in labels and named != ndim):
        raise at_user_line(ShapeError, f"np.einsum: subscripts {labels!r} for an operand with {ndim} dimensions")
    return labels.replace("...", batch[len(batch) - (ndim - named):] if ndim > named else "")


def canonical_subscripts(subscripts: str, ndims: Sequence[int]) -> str:
    """Explicit output, one letter per axis, ellipsis axes named by unused letters."""
    subscripts = subscripts.replace(" ", "")
    inputs_part, arrow, output = subscripts.partition("->")
    inputs = inputs_part.split(",")
    if len(inputs) != len(ndims):
        raise at_user_line(ShapeError, f"np.einsum: {len(inputs)} subscripts for {len(ndims)} operands")
    if not arrow:
        output = _implicit_output(inputs)
    widest = max((n - len(s.replace("...", "")) for s, n in zip(inputs, ndims) if "..." in s), default=0)
    batch = "".join(c for c in _LETTERS if c not in subscripts)[:widest]
    if len(batch) < widest:
        raise at_user_line(ShapeError, "np.einsum: too many dimensions to name with letters")
    if widest and "..." not in output:
        raise at_user_line(ShapeError, "np.einsum: the output drops the axes of '...'; name them or keep '...' in it")
    expanded = [_expand_ellipsis(s, n, batch) for s, n in zip(inputs, ndims)]
    return ",".join(expanded) + "->" + output.replace("...", batch)


@implements(np.einsum)
def einsum(*operands: Any, out=None, dtype=None, order="K", casting="safe", optimize=False) -> Tracer:
    _no_extras("einsum", out=out, dtype=dtype)
    if isinstance(operands[0], str):
        subscripts, arrays = operands[0], list(operands[1:])
    else:
        subscripts, arrays = _sublist_subscripts(operands)
    arrays = [as_tracer(a) for a in arrays]
    canonical = canonical_subscripts(subscripts, [a.ndim for a in arrays])
    if not isinstance(optimize, (bool, str)):
        optimize = True  # an explicit path is for the forward contraction, not for its adjoints
    return bind("einsum", *arrays, subscripts=canonical, optimize=optimize)


def _einsum(subscripts: str, *arrays: Any) -> Tracer:
    return bind("einsum", *arrays, subscripts=subscripts, optimize=False)


@implements(np.tensordot)
def tensordot(a: Any, b: Any, axes: Any = 2) -> Tracer:
    a, b = as_tracer(a), as_tracer(b)
    if isinstance(axes, (int, np.integer)):
        a_axes, b_axes = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        a_axes, b_axes = ([x] if isinstance(x, (int, np.integer)) else list(x) for x in axes)
    a_axes, b_axes = [one_axis(x, a.ndim) for x in a_axes], [one_axis(x, b.ndim) for x in b_axes]
    if len(a_axes) != len(b_axes):
        raise at_user_line(ShapeError, "np.tensordot: the two operands need as many summed axes")
    a_labels = _LETTERS[: a.ndim]
    b_labels = list(_LETTERS[a.ndim: a.ndim + b.ndim])
    for i, j in zip(a_axes, b_axes):
        b_labels[j] = a_labels[i]
    kept = [c for i, c in enumerate(a_labels) if i not in a_axes] + [c for j, c in enumerate(b_labels) if j not in b_axes]
    return _einsum(f"{a_labels},{''.join(b_labels)}->{''.join(kept)}", a, b)


@implements(np.dot)
def dot(a: Any, b: Any, out: Any = None) -> Tracer:
    """NumPy's dot: a product with a scalar, `@` of vectors and matrices, and above
    2-D the sum over the last axis of `a` and the second-to-last of `b` (its only
    one when 1-D), a tensordot."""
    _no_extras("dot", out=out)
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return np.multiply(a, b)
    if np.ndim(a) <= 2 and np.ndim(b) <= 2:
        return bind("matmul", a, b)
    return tensordot(a, b, axes=([-1], [max(np.ndim(b) - 2, 0)]))


@implements(np.inner)
def inner(a: Any, b: Any) -> Tracer:
    a, b = as_tracer(a), as_tracer(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    a_labels, b_labels = _LETTERS[: a.ndim - 1], _LETTERS[a.ndim - 1: a.ndim + b.ndim - 2]
    return _einsum(f"{a_labels}z,{b_labels}z->{a_labels}{b_labels}", a, b)


@implements(np.vdot)
def vdot(a: Any, b: Any) -> Tracer:
    """sum(conj(a) * b) over the flattened arrays: NumPy conjugates the first."""
    a = np.ravel(a)
    return (np.conj(a) if np.result_type(a.dtype).kind == "c" else a) @ np.ravel(b)


@implements(np.kron)
def kron(a: Any, b: Any) -> Tracer:
    return bind("kron", a, b)


def _to_last(x: Tracer, axis: int) -> Tracer:
    axis = one_axis(axis, x.ndim)
    return np.transpose(x, tuple(i for i in range(x.ndim) if i != axis) + (axis,))


@implements(np.cross)
def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None) -> Tracer:
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _to_last(as_tracer(a), axisa), _to_last(as_tracer(b), axisb)
    if a.shape[-1:] == (2,) and b.shape[-1:] == (2,):
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    result = bind("cross", a, b)
    last = result.ndim - 1
    target = one_axis(axisc, result.ndim)
    return np.transpose(result, tuple(range(target)) + (last,) + tuple(range(target, last)))


# --- diagonals and triangles -------------------------------------------------------

def _diagonal_operand(a: Any, offset: int, axis1: int, axis2: int) -> tuple[Tracer, str]:
    """The square block of `a` holding the diagonal, axes moved last, and the
    letters of its other axes: its diagonal is einsum('<batch>zz->...', block)."""
    a = as_tracer(a)
    if a.ndim < 2:
        raise at_user_line(ShapeError, f"np.diagonal: needs at least 2 dimensions, got shape {a.shape}")
    i, j = one_axis(axis1, a.ndim), one_axis(axis2, a.ndim)
    if i == j:
        raise at_user_line(ShapeError, "np.diagonal: axis1 and axis2 cannot be the same")
    a = np.transpose(a, tuple(k for k in range(a.ndim) if k not in (i, j)) + (i, j))
    rows, cols = a.shape[-2:]
    length = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    row0, col0 = max(-offset, 0), max(offset, 0)
    if (row0, col0, length) != (0, 0, rows) or rows != cols:
        a = a[..., row0: row0 + length, col0: col0 + length]
    return a, _LETTERS[: a.ndim - 2]


@implements(np.diagonal)
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tracer:
    block, batch = _diagonal_operand(a, offset, axis1, axis2)
    return _einsum(f"{batch}zz->{batch}z", block)


@implements(np.trace)
def trace(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None, out=None) -> Tracer:
    _no_extras("trace", dtype=dtype, out=out)
    block, batch = _diagonal_operand(a, offset, axis1, axis2)
    return _einsum(f"{batch}zz->{batch}", block)


@implements(np.diag)
def diag(v: Any, k: int = 0) -> Tracer:
    v = as_tracer(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise at_user_line(ShapeError, f"np.diag: input must be 1-D or 2-D, got shape {v.shape}")
    return bind("diag", v, k=operator.index(k))


def _triangle(fn: str):
    def triangle(m: Any, k: int = 0) -> Tracer:
        m = as_tracer(m)
        if m.ndim == 1:
            m = np.broadcast_to(m, (m.shape[0], m.shape[0]))
        return bind(fn, m, k=operator.index(k))

    return triangle


implements(np.tril)(_triangle("tril"))
implements(np.triu)(_triangle("triu"))


# --- products of matrices -----------------------------------------------------------

def _chain_order(shapes: list[tuple[int, int]]) -> list[list[int]]:
    """The cheapest parenthesization of a matrix chain (the classic dynamic program
    np.linalg.multi_dot uses): split[i][j] is where the product of i..j splits."""
    n = len(shapes)
    dims = [shapes[0][0]] + [s[1] for s in shapes]
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for span in range(1, n):
        for i in range(n - span):
            j = i + span
            cost[i][j], split[i][j] = min(
                (cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1], k) for k in range(i, j)
            )
    return split


@implements(np.linalg.multi_dot)
def multi_dot(arrays: Sequence[Any], *, out=None) -> Tracer:
    _no_extras("linalg.multi_dot", out=out)
    arrays = [as_tracer(a) for a in arrays]
    if len(arrays) < 2:
        raise at_user_line(ShapeError, "np.linalg.multi_dot: needs at least two arrays")
    shapes = [(1,) + a.shape if a.ndim == 1 and i == 0 else a.shape + (1,) if a.ndim == 1 else a.shape
              for i, a in enumerate(arrays)]
    if any(len(s) != 2 for s in shapes):
        raise at_user_line(ShapeError, "np.linalg.multi_dot: the arrays must be 2-D (the first and last may be 1-D)")
    split = _chain_order(shapes)

    def product(i: int, j: int) -> Tracer:
        return arrays[i] if i == j else product(i, split[i][j]) @ product(split[i][j] + 1, j)

    return product(0, len(arrays) - 1)


@implements(np.linalg.matrix_power)
def matrix_power(a: Any, n: int) -> Tracer:
    """Repeated squaring with `@`, as NumPy computes it; n < 0 inverts first."""
    a, n = as_tracer(a), operator.index(n)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise at_user_line(ShapeError, f"np.linalg.matrix_power: needs square matrices, got shape {a.shape}")
    if n == 0:
        return np.broadcast_to(as_tracer(np.eye(a.shape[-1], dtype=a.dtype)), a.shape)
    if n < 0:
        a, n = inv(a), -n
    result, square = None, a
    while n:
        if n & 1:
            result = square if result is None else result @ square
        n >>= 1
        if n:
            square = square @ square
    return result


# --- np.linalg functions of matrices --------------------------------------------------

@implements(np.linalg.inv)
def inv(a: Any) -> Tracer:
    return bind("inv", a)


@implements(np.linalg.solve)
def solve(a: Any, b: Any) -> Tracer:
    return bind("solve", a, b)


@implements(np.linalg.det)
def det(a: Any) -> Tracer:
    return bind("det", a)


class SlogdetResult(NamedTuple):
    sign: Tracer
    logabsdet: Tracer


@implements(np.linalg.slogdet)
def slogdet(a: Any) -> SlogdetResult:
    return SlogdetResult(bind("slogdet_sign", a), bind("slogdet_logabsdet", a))


@implements(np.linalg.cholesky)
def cholesky(a: Any, /, *, upper: bool = False) -> Tracer:
    if upper:
        raise at_user_line(UnsupportedError, "np.linalg.cholesky(..., upper=True) is not supported; "
                           "transpose the lower factor instead.")
    return bind("cholesky", a)


def _lower_only(fn: str, uplo: str) -> None:
    if uplo != "L":
        raise at_user_line(UnsupportedError, f"np.linalg.{fn}(..., UPLO={uplo!r}) is not supported; "
                           "pass the transposed matrix (UPLO='L' reads the lower triangle).")


class EighResult(NamedTuple):
    eigenvalues: Tracer
    eigenvectors: Tracer


@implements(np.linalg.eigh)
def eigh(a: Any, UPLO: str = "L") -> EighResult:
    _lower_only("eigh", UPLO)
    return EighResult(bind("eigvalsh", a), bind("eigh_vectors", a))


@implements(np.linalg.eigvalsh)
def eigvalsh(a: Any, UPLO: str = "L") -> Tracer:
    _lower_only("eigvalsh", UPLO)
    return bind("eigvalsh", a)


class SVDResult(NamedTuple):
    U: Tracer
    S: Tracer
    Vh: Tracer


@implements(np.linalg.svd)
def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False) -> Any:
    if hermitian:
        raise at_user_line(UnsupportedError, "np.linalg.svd(..., hermitian=True) is not supported; use np.linalg.eigh.")
    a = as_tracer(a)
    if not compute_uv:
        return bind("svdvals", a)
    full = bool(full_matrices) and a.ndim >= 2 and a.shape[-1] != a.shape[-2]
    return SVDResult(bind("svd_u", a, full_matrices=full), bind("svdvals", a), bind("svd_vh", a, full_matrices=full))


@implements(np.linalg.svdvals)
def svdvals(x: Any, /) -> Tracer:
    return bind("svdvals", x)


@implements(np.linalg.pinv)
def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = np._NoValue) -> Tracer:
    _no_extras("linalg.pinv", rcond=rcond, rtol=rtol, hermitian=hermitian or None)
    return bind("pinv", a)


# --- norm -------------------------------------------------------------------------------

def _vector_norm(x: Tracer, ord: Any, axis: tuple[int, ...], keepdims: bool, given_axis: Any) -> Tracer:
    if ord in (np.inf, -np.inf):
        extremum = np.max if ord > 0 else np.min
        return extremum(np.abs(x), axis=given_axis, keepdims=keepdims)
    if ord == 0:
        return np.sum(x != 0, axis=given_axis, keepdims=keepdims).astype(float_dtype(x.dtype))
    return bind("norm", x, ord=ord, axis=axis, keepdims=keepdims, given_axis=given_axis)


def _matrix_norm(x: Tracer, ord: Any, axis: tuple[int, int], keepdims: bool, given_axis: Any) -> Tracer:
    """Matrix norms over the axis pair (rows, cols): Frobenius directly, the others
    from singular values or from row / column sums of |x|."""
    if ord in (None, "fro"):
        return bind("norm", x, ord=ord, axis=tuple(sorted(axis)), keepdims=keepdims, given_axis=given_axis)
    rows, cols = axis
    if ord in ("nuc", 2, -2):
        moved = np.transpose(x, tuple(i for i in range(x.ndim) if i not in axis) + axis)
        values = svdvals(moved)
        result = np.sum(values, axis=-1) if ord == "nuc" else (np.max if ord == 2 else np.min)(values, axis=-1)
    elif ord in (1, -1, np.inf, -np.inf):
        summed, kept = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = np.sum(np.abs(x), axis=summed, keepdims=True)
        result = (np.max if ord > 0 else np.min)(sums, axis=kept, keepdims=True)
        result = np.reshape(result, tuple(d for i, d in enumerate(result.shape) if i not in axis))
    else:
        raise at_user_line(ShapeError, f"np.linalg.norm: invalid norm order {ord!r} for matrices")
    if keepdims:
        result = np.reshape(result, tuple(1 if i in axis else d for i, d in enumerate(x.shape)))
    return result


@implements(np.linalg.norm)
def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tracer:
    x = as_tracer(x)
    if axis is None and ord is None:
        return bind("norm", x, ord=None, axis=tuple(range(x.ndim)), keepdims=bool(keepdims), given_axis=None)
    pair = tuple(range(x.ndim)) if axis is None else axis
    if isinstance(pair, (tuple, list)) and len(pair) == 2:
        first, second = (one_axis(a, x.ndim) for a in pair)
        if first == second:
            raise at_user_line(ShapeError, "np.linalg.norm: duplicate axes given")
        return _matrix_norm(x, ord, (first, second), bool(keepdims), axis)
    if isinstance(pair, (tuple, list)) and len(pair) != 1 or ord in ("fro", "nuc"):
        raise at_user_line(ShapeError, f"np.linalg.norm: invalid axis {axis!r} or order {ord!r} for shape {x.shape}")
    reduced = axes(pair, x.ndim)
    given = axis if axis is None else reduced[0]
    return _vector_norm(x, ord, reduced, bool(keepdims), given)

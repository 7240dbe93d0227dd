"""Products and matrix structure: `@` / np.matmul (NumPy's rules for 1-D operands
and batch broadcasting), np.outer, np.einsum, np.kron, np.cross (3-vectors on the
last axis), np.tril / np.triu and np.diag of a vector. Gradients are products with
transposed views (`g @ W.T`, `x.T @ g`), which BLAS consumes without copies, and
the gradient of an einsum is one einsum per operand. The products are linear in
each operand separately, so their forward-mode rule is `product_rule`; tril, triu
and diag are linear, and the forward transform derives theirs."""
from __future__ import annotations

import ast

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.elementwise import conj_if_complex
from compiler.primitives.reduce import unbroadcast
from compiler.primitives.registry import Primitive, call, literal, np_call, product_rule, register


def _matmul_abstract(a: Aval, b: Aval) -> Aval:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("np.matmul: operands must be at least 1-D; use * for scalars")
    a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
    b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(
            f"np.matmul: shapes {a.shape} and {b.shape} do not align "
            f"({a_shape[-1]} columns vs {b_shape[-2]} rows)"
        )
    try:
        batch = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    except ValueError:
        raise ShapeError(f"np.matmul: batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
    shape = batch + (a_shape[-2] if a.ndim > 1 else None, b_shape[-1] if b.ndim > 1 else None)
    dtype = np.result_type(a.dtype, b.dtype)
    return Aval(tuple(d for d in shape if d is not None), dtype)


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _matmul_vjp(g, out, a, b):
    # complex operands: g_a = g @ conj(b).T and g_b = conj(a).T @ g (the convention of
    # compiler/transforms/reverse.py); real ones are used as they are
    a, b = conj_if_complex(a), conj_if_complex(b)
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if a.ndim <= 2 and b.ndim <= 2:
        if a.ndim == 1:
            return b @ g, np.outer(a, g)
        if b.ndim == 1:
            return np.outer(g, b), g @ a
        return g @ b.T, a.T @ g
    # batched: promote 1-D operands to matrices, sum broadcast batch axes, undo
    a2 = np.reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = np.reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    g2 = np.reshape(g, (a2 @ b2).shape)
    g_a = np.reshape(unbroadcast(g2 @ _mT(b2), a2.shape), a.shape)
    g_b = np.reshape(unbroadcast(_mT(a2) @ g2, b2.shape), b.shape)
    return g_a, g_b


def _matmul_batched_jvp(ts, out, a, b):
    """d(a @ b) = da @ b + a @ db with da, db carrying a leading batch axis: matmul's
    own broadcasting batches them for operands of at most two axes; a vector b's
    tangent multiplies from the left instead (a @ db = db @ a^T)."""
    if a.ndim > 2 or b.ndim > 2:
        return NotImplemented
    t_a, t_b = ts
    total = None if t_a is None else t_a @ b
    if t_b is not None:
        term = a @ t_b if b.ndim == 2 else t_b @ (a.T if a.ndim == 2 else a)
        total = term if total is None else total + term
    return total


register(Primitive("matmul", abstract=_matmul_abstract, emit=lambda a, b: ast.BinOp(a, ast.MatMult(), b),
                   vjp=_matmul_vjp, ufunc=True, jvp=product_rule("matmul"), batched_jvp=_matmul_batched_jvp))


def _outer_abstract(a: Aval, b: Aval) -> Aval:
    return Aval((a.size, b.size), np.result_type(a.dtype, b.dtype))


def _outer_vjp(g, out, a, b):
    a, b = conj_if_complex(a), conj_if_complex(b)  # complex: g times the other's conjugate
    return np.reshape(g @ np.ravel(b), a.shape), np.reshape(np.ravel(a) @ g, b.shape)


register(Primitive("outer", abstract=_outer_abstract, emit=call("outer"), vjp=_outer_vjp, jvp=product_rule("outer")))


# --- einsum -----------------------------------------------------------------
# The primitive's `subscripts` are canonical: explicit output, one letter per axis,
# no ellipsis (the tracer names ellipsis axes with unused letters). Size-1 axes
# broadcast against a letter's size, as NumPy's einsum does.

def split_subscripts(subscripts: str) -> tuple[list[str], str]:
    inputs, output = subscripts.split("->")
    return inputs.split(","), output


def _label_sizes(inputs: list[str], avals: tuple[Aval, ...]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for labels, aval in zip(inputs, avals):
        if len(labels) != aval.ndim:
            raise ShapeError(f"np.einsum: subscripts {labels!r} do not match an operand of shape {aval.shape}")
        for label, size in zip(labels, aval.shape):
            known = sizes.get(label, 1)
            if size != 1 and known not in (1, size):
                raise ShapeError(f"np.einsum: label {label!r} has sizes {known} and {size}")
            sizes[label] = size if known == 1 else known
    return sizes


def _einsum_abstract(*avals: Aval, subscripts: str, optimize) -> Aval:
    inputs, output = split_subscripts(subscripts)
    if len(inputs) != len(avals):
        raise ShapeError(f"np.einsum: {len(inputs)} subscripts for {len(avals)} operands")
    sizes = _label_sizes(inputs, avals)
    if len(set(output)) != len(output) or any(label not in sizes for label in output):
        raise ShapeError(f"np.einsum: output subscripts {output!r} repeat a label or name one no operand has")
    return Aval(tuple(sizes[label] for label in output), np.result_type(*(a.dtype for a in avals)))


def _einsum_emit(*operands: ast.expr, subscripts: str, optimize) -> ast.expr:
    kwargs = {"optimize": optimize} if optimize else {}
    return np_call("einsum", literal(subscripts), *operands, **kwargs)


def contract(terms: list[tuple[str, object]], output: str, optimize=False):
    """`np.einsum` of (labels, operand) terms into `output`; a lone operand whose
    labels are a permutation of `output` is returned as it is or transposed."""
    if len(terms) == 1:
        labels, x = terms[0]
        if len(set(labels)) == len(labels) and sorted(labels) == sorted(output):
            return x if labels == output else np.transpose(x, tuple(labels.index(c) for c in output))
    subscripts = ",".join(labels for labels, _ in terms) + "->" + output
    return np.einsum(subscripts, *(x for _, x in terms), optimize=optimize)


def _unused_letters(used: str):
    return (c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)


def _einsum_operand_vjp(g, operands, inputs: list[str], output: str, k: int, optimize):
    """Cotangent of operand k: the einsum of g with the other operands into k's
    labels. A repeated label (a diagonal, 'ii') gets a fresh letter tied to the
    first by an identity matrix; labels only operand k has (summed over in the
    forward pass) are broadcast afterwards, since einsum cannot create them."""
    x, labels = operands[k], inputs[k]
    fresh_letters = _unused_letters("".join(inputs) + output)
    distinct, deltas = "", []
    for label in labels:
        if label in distinct:
            new = next(fresh_letters)
            deltas.append((label + new, np.eye(x.shape[labels.index(label)], dtype=g.dtype)))
            label = new
        distinct += label
    others = [(s, y) for j, (s, y) in enumerate(zip(inputs, operands)) if j != k] + deltas
    scalar = not output and others  # a scalar cotangent scales the contraction of the others
    terms = others if scalar else [(output, g)] + others
    present = set("".join(s for s, _ in terms))
    kept = "".join(c for c in distinct if c in present)
    core = g * contract(terms, kept, optimize) if scalar else contract(terms, kept, optimize)
    if kept == distinct:
        return core
    sizes = dict(zip(kept, core.shape))
    shape = tuple(sizes.get(c, d) for c, d in zip(distinct, x.shape))
    return np.broadcast_to(np.reshape(core, tuple(sizes.get(c, 1) for c in distinct)), shape)


def _einsum_vjp(g, out, *operands, subscripts: str, optimize):
    """Each operand's cotangent contracts g with the others, conjugated where complex
    (a product: the convention of compiler/transforms/reverse.py)."""
    inputs, output = split_subscripts(subscripts)
    operands = tuple(conj_if_complex(x) for x in operands)
    return tuple(
        _einsum_operand_vjp(g, operands, inputs, output, k, optimize) if x.dtype.kind in "fc" else None
        for k, x in enumerate(operands)
    )


# one operand's einsum ('ii->i', 'ij->ji', 'i') may be a view of it, as in NumPy
# (integer operands carry no tangent, so the product rule skips them)
register(Primitive("einsum", abstract=_einsum_abstract, emit=_einsum_emit, vjp=_einsum_vjp,
                   view=lambda node: len(node.inputs) == 1, jvp=product_rule("einsum")))


# --- kron, cross ------------------------------------------------------------

def _kron_shapes(a: Aval, b: Aval) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Both shapes with leading 1s to a common rank, as np.kron aligns them."""
    ndim = max(a.ndim, b.ndim)
    return (1,) * (ndim - a.ndim) + tuple(a.shape), (1,) * (ndim - b.ndim) + tuple(b.shape)


def _kron_abstract(a: Aval, b: Aval) -> Aval:
    a_shape, b_shape = _kron_shapes(a, b)
    return Aval(tuple(m * n for m, n in zip(a_shape, b_shape)), np.result_type(a.dtype, b.dtype))


def _kron_vjp(g, out, a, b):
    """g viewed as (a0, b0, a1, b1, ...) blocks, contracted with the other factor
    (its conjugate, where complex)."""
    a_shape, b_shape = _kron_shapes(a.aval, b.aval)
    a, b = conj_if_complex(a), conj_if_complex(b)
    a_labels, b_labels = "abcdefghijklm"[: len(a_shape)], "nopqrstuvwxyz"[: len(b_shape)]
    blocks = np.reshape(g, tuple(d for pair in zip(a_shape, b_shape) for d in pair))
    g_labels = "".join(p + q for p, q in zip(a_labels, b_labels))
    g_a = contract([(g_labels, blocks), (b_labels, np.reshape(b, b_shape))], a_labels)
    g_b = contract([(g_labels, blocks), (a_labels, np.reshape(a, a_shape))], b_labels)
    return np.reshape(g_a, a.shape), np.reshape(g_b, b.shape)


register(Primitive("kron", abstract=_kron_abstract, emit=call("kron"), vjp=_kron_vjp, jvp=product_rule("kron")))


def _cross_abstract(a: Aval, b: Aval) -> Aval:
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != 3 or b.shape[-1] != 3:
        raise ShapeError(f"np.cross: vectors of shapes {a.shape} and {b.shape} need 3 components on their last axis")
    try:
        batch = tuple(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]))
    except ValueError:
        raise ShapeError(f"np.cross: shapes {a.shape} and {b.shape} do not broadcast") from None
    return Aval(batch + (3,), np.result_type(a.dtype, b.dtype))


def _cross_vjp(g, out, a, b):
    """a x b = -[b]x a: g_a = b x g and g_b = g x a, with the other factor conjugated
    where complex (the adjoint of a complex linear map is its conjugate transpose)."""
    a, b = conj_if_complex(a), conj_if_complex(b)
    return np.cross(b, g), np.cross(g, a)


register(Primitive("cross", abstract=_cross_abstract, emit=call("cross"), vjp=_cross_vjp, jvp=product_rule("cross")))


# --- triangles and diagonals ------------------------------------------------

def _triangle(fn: str) -> None:
    def abstract(x: Aval, *, k: int) -> Aval:
        if x.ndim < 2:
            raise ShapeError(f"np.{fn}: the operand needs at least 2 dimensions, got shape {x.shape}")
        return x

    def emit(x: ast.expr, *, k: int) -> ast.expr:
        return np_call(fn, x, literal(k)) if k else np_call(fn, x)

    register(Primitive(fn, abstract=abstract, emit=emit, linear=True,
                       vjp=lambda g, out, x, *, k: (getattr(np, fn)(g, k),)))


_triangle("tril")
_triangle("triu")


def _diag_abstract(v: Aval, *, k: int) -> Aval:
    if v.ndim != 1:
        raise ShapeError(f"np.diag builds a matrix from a 1-D array, got shape {v.shape}")
    n = v.shape[0] + abs(k)
    return Aval((n, n), v.dtype)


register(Primitive(
    "diag",
    abstract=_diag_abstract,
    emit=lambda v, *, k: np_call("diag", v, literal(k)) if k else np_call("diag", v),
    vjp=lambda g, out, v, *, k: (np.diagonal(g, k),),
    linear=True,
))

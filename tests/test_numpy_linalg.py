"""Contractions and np.linalg on traced values: np.einsum in its spellings,
tensordot, inner, vdot, kron, cross, trace, diagonal, diag, tril, triu, and
inv, solve, det, slogdet, cholesky, eigh, svd, pinv, norm, matrix_power,
multi_dot; against finite differences on hypothesis-drawn shapes (batch axes
included), second order for the smooth ones, float32, and the generated source."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad
from helpers import (
    PROPERTY, assert_float32_backward, assert_vjp, assert_weighted_vjp, distinct_spectrum, normal, seeds, spd,
)
from runtime.check import numerical_grad

sides = st.integers(1, 4)
batches = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)


# --- einsum and the contractions built on it ----------------------------------------

EINSUM_FORMS = [
    ("ij,jk->ik", [("m", "k"), ("k", "n")]),
    ("ij,jk", [("m", "k"), ("k", "n")]),
    ("ii", [("m", "m")]),
    ("ii->i", [("m", "m")]),
    ("ij->", [("m", "n")]),
    ("ji", [("m", "n")]),
    ("i,i", [("k",), ("k",)]),
    ("i,j->ij", [("m",), ("n",)]),
    ("bij,bjk->bik", [("b", "m", "k"), ("b", "k", "n")]),
    ("...ij,...jk->...ik", [("B", "m", "k"), ("b", "k", "n")]),
    ("...ii->...i", [("B", "m", "m")]),
    ("ij,jk,kl->il", [("m", "k"), ("k", "n"), ("n", "m")]),
    ("iij,jk->ik", [("m", "m", "k"), ("k", "n")]),
    ("ij,ij->j", [("m", "n"), ("m", "n")]),
    (",ij->ij", [(), ("m", "n")]),
]


@PROPERTY
@given(form=st.sampled_from(EINSUM_FORMS), sizes=st.fixed_dictionaries({c: sides for c in "mknb"}), batch=batches, seed=seeds)
def test_einsum_vjp(form, sizes, batch, seed):
    rng = np.random.default_rng(seed)
    subscripts, operand_dims = form
    broadcast_batch = tuple(1 if rng.random() < 0.3 else d for d in batch)
    dims = dict(sizes, B=batch, b=broadcast_batch)
    args = [normal(rng, sum(((dims[d],) if isinstance(dims[d], int) else dims[d] for d in shape), ())) for shape in operand_dims]
    assert_weighted_vjp(lambda *a: np.einsum(subscripts, *a), *args, rng=rng, argnums=tuple(range(len(args))))


def test_einsum_sublist_form_and_optimize():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    assert_weighted_vjp(lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [0, 2]), a, b, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda a, b: np.einsum("ij,jk->ik", a, b, optimize=True), a, b, rng=rng, argnums=(0, 1))
    path = np.einsum_path("ij,jk->ik", a, b)[0]
    assert_weighted_vjp(lambda a, b: np.einsum("ij,jk->ik", a, b, optimize=path), a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(a_shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), extra=st.integers(0, 2),
       count=st.integers(0, 2), seed=seeds)
def test_tensordot_vjp(a_shape, extra, count, seed):
    rng = np.random.default_rng(seed)
    count = min(count, len(a_shape))
    b_shape = a_shape[len(a_shape) - count:] + (2,) * extra
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    assert_weighted_vjp(lambda a, b: np.tensordot(a, b, axes=count), a, b, rng=rng, argnums=(0, 1))
    if count:
        pairs = (list(range(len(a_shape) - count, len(a_shape)))[::-1], list(range(count))[::-1])
        assert_weighted_vjp(lambda a, b: np.tensordot(a, b, axes=pairs), a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(a_batch=batches, b_batch=batches, k=sides, seed=seeds)
def test_inner_vdot_kron_vjp(a_batch, b_batch, k, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, a_batch + (k,)), normal(rng, b_batch + (k,))
    assert_weighted_vjp(np.inner, a, b, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(np.kron, a, b, rng=rng, argnums=(0, 1))
    assert_vjp(lambda a, c: np.vdot(np.sin(a), c), a, normal(rng, a.shape), argnums=(0, 1))


@PROPERTY
@given(shapes_=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, min_side=1, max_side=3), seed=seeds)
def test_cross_vjp(shapes_, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shapes_.input_shapes[0] + (3,)), normal(rng, shapes_.input_shapes[1] + (3,))
    assert_weighted_vjp(np.cross, a, b, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda a, b: np.cross(a, b, axisa=0, axisb=0, axisc=0), a.T, b.T, rng=rng, argnums=(0, 1))


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors are deprecated")
def test_cross_of_2_vectors_vjp():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 2)), rng.normal(size=(2,))
    assert_weighted_vjp(np.cross, a, b, rng=rng, argnums=(0, 1))


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4), offset=st.integers(-3, 3), seed=seeds)
def test_trace_diagonal_triangles_vjp(shape, offset, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.diagonal(x, offset), x, rng=rng)
    assert_weighted_vjp(lambda x: np.trace(x, offset, axis1=-1, axis2=0), x, rng=rng)
    assert_weighted_vjp(lambda x: x.diagonal(offset, 1, 0) * 2.0, x, rng=rng)
    assert_weighted_vjp(lambda x: np.tril(x, offset) + np.triu(x, -offset) ** 2, x, rng=rng)
    if x.ndim == 2:
        assert_weighted_vjp(lambda x: np.diag(x, offset), x, rng=rng)
        assert_weighted_vjp(lambda v: np.diag(v, offset), x[0], rng=rng)
        assert_weighted_vjp(lambda v: np.tril(v, offset), x[0], rng=rng)


# --- np.linalg ------------------------------------------------------------------------

@PROPERTY
@given(batch=batches, n=sides, k=sides, vector=st.booleans(), seed=seeds)
def test_inv_solve_det_slogdet_vjp(batch, n, k, vector, seed):
    rng = np.random.default_rng(seed)
    a = spd(rng, batch, n) + 0.3 * rng.normal(size=batch + (n, n))  # not symmetric
    b = normal(rng, (n,) if vector else batch[1:] + (n, k))
    assert_weighted_vjp(np.linalg.inv, a, rng=rng)
    assert_weighted_vjp(np.linalg.solve, a, b, rng=rng, argnums=(0, 1))
    assert_weighted_vjp(lambda a: np.linalg.det(a / n), a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.slogdet(a).logabsdet, a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.slogdet(a)[0] * np.linalg.slogdet(a)[1], -a, rng=rng)


@PROPERTY
@given(batch=batches, n=sides, seed=seeds)
def test_cholesky_eigh_vjp(batch, n, seed):
    rng = np.random.default_rng(seed)
    assert_weighted_vjp(np.linalg.cholesky, spd(rng, batch, n), rng=rng)
    a = distinct_spectrum(rng, batch, n)
    assert_weighted_vjp(lambda a: np.linalg.eigh(a).eigenvalues, a, rng=rng)
    assert_weighted_vjp(np.linalg.eigvalsh, a, rng=rng)
    # eigenvectors are defined up to sign: weigh sign-invariant functions of them
    assert_weighted_vjp(lambda a: np.linalg.eigh(a)[1] ** 2, a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.eigh(a)[1] @ np.diag(np.arange(n) ** 2.0) @ np.linalg.eigh(a)[1].mT, a, rng=rng)


@st.composite
def svd_matrices(draw):
    """Matrices with well separated nonzero singular values 1, 2, ..."""
    batch, m, n, seed = draw(batches), draw(sides), draw(sides), draw(seeds)
    rng = np.random.default_rng(seed)
    k = min(m, n)
    u, _ = np.linalg.qr(rng.normal(size=batch + (m, k)))
    v, _ = np.linalg.qr(rng.normal(size=batch + (n, k)))
    return (u * np.arange(1.0, k + 1)) @ np.swapaxes(v, -1, -2), rng


@PROPERTY
@given(drawn=svd_matrices())
def test_svd_pinv_vjp(drawn):
    a, rng = drawn
    assert_weighted_vjp(lambda a: np.linalg.svd(a, compute_uv=False), a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.svd(a, full_matrices=False).U ** 2, a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.svd(a, full_matrices=False).Vh ** 2, a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.pinv(a), a, rng=rng)


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), keepdims=st.booleans(),
       p=st.sampled_from([None, 1, 2, 3, 1.5, np.inf, -np.inf]), seed=seeds)
def test_vector_norm_vjp(shape, keepdims, p, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_weighted_vjp(lambda x: np.linalg.norm(x, p, axis=-1, keepdims=keepdims), x, rng=rng)
    assert_vjp(lambda x: np.linalg.norm(x), x)


@PROPERTY
@given(drawn=svd_matrices(), keepdims=st.booleans(), ord_=st.sampled_from([None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]))
def test_matrix_norm_vjp(drawn, keepdims, ord_):
    a, rng = drawn
    assert_weighted_vjp(lambda a: np.linalg.norm(a, ord_, axis=(-2, -1), keepdims=keepdims), a, rng=rng)
    assert_weighted_vjp(lambda a: np.linalg.norm(a, ord_, axis=(-1, -2)), a, rng=rng)


def test_norm_gradient_at_zero_is_zero():
    for p in (None, 2, 3):
        g = grad(lambda x: np.linalg.norm(x, p))(np.zeros(3))
        np.testing.assert_array_equal(g, np.zeros(3))


@PROPERTY
@given(batch=batches, n=sides, power=st.integers(-3, 4), seed=seeds)
def test_matrix_power_vjp(batch, n, power, seed):
    rng = np.random.default_rng(seed)
    a = spd(rng, batch, n) / n
    assert_weighted_vjp(lambda a: np.linalg.matrix_power(a, power) * 1.0, a, rng=rng)


@PROPERTY
@given(dims=st.lists(sides, min_size=3, max_size=5), vectors=st.tuples(st.booleans(), st.booleans()), seed=seeds)
def test_multi_dot_vjp(dims, vectors, seed):
    rng = np.random.default_rng(seed)
    arrays = [normal(rng, (dims[i], dims[i + 1])) for i in range(len(dims) - 1)]
    if vectors[0]:
        arrays[0] = arrays[0][0]
    if vectors[1]:
        arrays[-1] = arrays[-1][:, 0]
    assert_weighted_vjp(lambda *xs: np.linalg.multi_dot(list(xs)), *arrays, rng=rng, argnums=tuple(range(len(arrays))))


# --- second order ------------------------------------------------------------------------

SECOND_ORDER = {
    "det": lambda a: np.linalg.det(a),
    "inv": lambda a: np.sum(np.linalg.inv(a) ** 2),
    "solve": lambda a: np.sum(np.linalg.solve(a, np.arange(3.0)) ** 2),
    "norm": lambda a: np.linalg.norm(a) ** 3 + np.linalg.norm(a[0], 3),
    "slogdet": lambda a: np.linalg.slogdet(a)[1],
    "einsum": lambda a: np.einsum("ij,jk,ki", a, a, a),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_hessian_vector_products(name):
    f = SECOND_ORDER[name]
    rng = np.random.default_rng(1)
    a, v = spd(rng, (), 3) + 0.2 * rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    hvp = grad(lambda a: np.sum(grad(f)(a) * v))
    expected = numerical_grad(lambda a: np.sum(grad(f)(a) * v), a, eps=1e-6)
    np.testing.assert_allclose(hvp(a), expected, rtol=1e-5, atol=1e-6)


# --- float32 and source ---------------------------------------------------------------------

FLOAT32_CASES = {
    "einsum": lambda a: np.sum(np.einsum("ij,jk->ik", a, a) ** 2) + np.trace(a),
    "solve_inv_det": lambda a: np.sum(np.linalg.solve(a, a[0]) ** 2) + np.sum(np.linalg.inv(a)) + np.linalg.slogdet(a)[1],
    "cholesky_eigh": lambda a: np.sum(np.linalg.cholesky(a @ a.T)) + np.sum(np.linalg.eigvalsh(a + a.T) ** 2),
    "svd_norm": lambda a: np.sum(np.linalg.svd(a, compute_uv=False)) + np.linalg.norm(a) + np.linalg.norm(a[0], 3),
    "products": lambda a: np.sum(np.kron(a, a)) + np.sum(np.cross(a, a[::-1])) + np.inner(a, a).sum() + np.sum(np.tril(a)),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_stays_float32(name):
    rng = np.random.default_rng(2)
    a = spd(rng, (), 3) + 0.2 * rng.normal(size=(3, 3))
    assert_float32_backward(FLOAT32_CASES[name], a)


def test_generated_source_is_numpy():
    a, b = np.ones((3, 4)), np.ones((4, 2))
    src = grad(lambda a, b: np.sum(np.einsum("ij,jk->ik", a, b) ** 2), argnums=(0, 1)).source(a, b)
    assert "np.einsum('ij,jk->ik', a, b)" in src and "np.einsum('ik,jk->ij'" in src, src
    s = spd(np.random.default_rng(0), (), 3)
    src = grad(lambda s: np.sum(np.linalg.solve(s, np.ones(3)))).source(s)
    assert "np.linalg.solve(s" in src, src
    src = grad(lambda s: np.linalg.norm(s, axis=1, keepdims=True).sum()).source(s)
    assert "np.linalg.norm(s, axis=1, keepdims=True)" in src, src
    src = grad(lambda s: np.sum(np.linalg.eigh(s)[0] ** 2)).source(s)
    assert "np.linalg.eigvalsh(s)" in src and "np.linalg.eigh(s)[1]" in src, src


def test_ellipsis_and_refusals():
    x = np.ones((2, 3, 3))
    src = grad(lambda x: np.sum(np.einsum("...ii->...i", x))).source(x)
    assert "np.einsum(" in src
    with pytest.raises(Exception, match="full_matrices=False"):
        grad(lambda a: np.sum(np.linalg.svd(a)[0]))(np.ones((3, 2)))
    with pytest.raises(Exception, match="UPLO"):
        grad(lambda a: np.sum(np.linalg.eigh(a, UPLO="U")[0]))(np.eye(2))

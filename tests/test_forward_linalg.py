"""Forward mode through the linear-algebra primitives: matmul, outer, einsum, kron,
cross, tril / triu / diag, inv, solve, det, slogdet, cholesky, eigh, svd, pinv and
norm. Each `jvp` is compared entry by entry with centered finite differences of the
array-valued function, and through `assert_jvp` with the VJP (<u, J v> = <J^T u, v>),
on hypothesis-drawn shapes with batch axes; then forward-over-reverse second order
and the refusals."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compiler import grad, jvp
from helpers import PROPERTY, assert_jvp, distinct_spectrum, matmul_shapes, nonzero, normal, seeds, spd, weighted

sides = st.integers(1, 4)
batches = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)
EPS = 1e-6


def assert_forward(fn, *args, rng, argnums=0):
    """`jvp(fn)` along a random direction of the `argnums` arguments equals the
    centered difference of `fn` in every entry; its contraction with random weights
    agrees with finite differences and with the gradient (`assert_jvp`)."""
    positions = (argnums,) if isinstance(argnums, int) else argnums
    tangents = tuple(normal(rng, np.shape(a)) if k in positions else np.zeros_like(a) for k, a in enumerate(args))
    value, derivative = jvp(fn, args, tangents)
    np.testing.assert_allclose(value, fn(*args), rtol=1e-12, atol=1e-12)

    def moved(step):
        return fn(*(a + step * t for a, t in zip(args, tangents)))

    assert np.shape(derivative) == np.shape(value)
    np.testing.assert_allclose(derivative, (moved(EPS) - moved(-EPS)) / (2 * EPS), rtol=1e-5, atol=1e-6)
    scalar = weighted(fn, args, rng)
    assert_jvp(scalar, *args, argnums=argnums, gradient=grad(scalar, argnums=argnums)(*args))


def distinct_singular_values(rng, batch, m, n):
    """Matrices with singular values 1, 2, ..., min(m, n)."""
    k = min(m, n)
    u, _ = np.linalg.qr(rng.normal(size=batch + (m, k)))
    v, _ = np.linalg.qr(rng.normal(size=batch + (n, k)))
    return (u * np.arange(1.0, k + 1)) @ np.swapaxes(v, -1, -2)


# --- products ---------------------------------------------------------------------

@PROPERTY
@given(shapes_=matmul_shapes(), seed=seeds)
def test_matmul_forward(shapes_, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shapes_[0]), normal(rng, shapes_[1])
    assert_forward(np.matmul, a, b, rng=rng, argnums=(0, 1))
    assert_forward(np.matmul, a, b, rng=rng, argnums=1)


@PROPERTY
@given(a_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
       b_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), seed=seeds)
def test_outer_kron_forward(a_shape, b_shape, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, a_shape), normal(rng, b_shape)
    assert_forward(np.outer, a, b, rng=rng, argnums=(0, 1))
    assert_forward(np.kron, a, b, rng=rng, argnums=(0, 1))
    assert_forward(np.kron, a, b, rng=rng, argnums=0)


@PROPERTY
@given(shapes_=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, min_side=1, max_side=3), seed=seeds)
def test_cross_forward(shapes_, seed):
    rng = np.random.default_rng(seed)
    a, b = normal(rng, shapes_.input_shapes[0] + (3,)), normal(rng, shapes_.input_shapes[1] + (3,))
    assert_forward(np.cross, a, b, rng=rng, argnums=(0, 1))
    assert_forward(lambda a: np.cross(a, a[..., ::-1] ** 2), a, rng=rng)


EINSUM_FORMS = [
    ("ij,jk->ik", [("m", "k"), ("k", "n")]),
    ("ii->i", [("m", "m")]),
    ("ij->", [("m", "n")]),
    ("i,j->ij", [("m",), ("n",)]),
    ("...ij,...jk->...ik", [("B", "m", "k"), ("b", "k", "n")]),
    ("iij,jk->ik", [("m", "m", "k"), ("k", "n")]),
    ("ij,jk,kl->il", [("m", "k"), ("k", "n"), ("n", "m")]),
    (",ij->ij", [(), ("m", "n")]),
]


@PROPERTY
@given(form=st.sampled_from(EINSUM_FORMS), sizes=st.fixed_dictionaries({c: sides for c in "mkn"}), batch=batches,
       seed=seeds)
def test_einsum_forward(form, sizes, batch, seed):
    rng = np.random.default_rng(seed)
    subscripts, operand_dims = form
    dims = dict(sizes, B=batch, b=tuple(1 if rng.random() < 0.3 else d for d in batch))
    args = [normal(rng, sum(((dims[d],) if isinstance(dims[d], int) else dims[d] for d in shape), ())) for shape in operand_dims]
    assert_forward(lambda *a: np.einsum(subscripts, *a), *args, rng=rng, argnums=tuple(range(len(args))))
    assert_forward(lambda *a: np.einsum(subscripts, *a), *args, rng=rng, argnums=len(args) - 1)


def test_einsum_with_integer_and_repeated_operands():
    rng = np.random.default_rng(0)
    a = normal(rng, (3, 3))
    assert_forward(lambda a: np.einsum("ij,j->i", a, np.arange(3)), a, rng=rng)
    assert_forward(lambda a: np.einsum("ij,jk,ki", a, a, a), a, rng=rng)
    assert_forward(lambda a: np.einsum("ij,jk->ik", a, a, optimize=True), a, rng=rng)


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4), offset=st.integers(-3, 3), seed=seeds)
def test_triangles_and_diag_forward(shape, offset, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_forward(lambda x: np.tril(x, offset) * np.triu(x, -offset), x, rng=rng)
    assert_forward(lambda v: np.diag(v ** 2, offset), x[(0,) * (x.ndim - 1)], rng=rng)


# --- inv, solve, det, slogdet ----------------------------------------------------------

@PROPERTY
@given(batch=batches, n=sides, k=sides, vector=st.booleans(), seed=seeds)
def test_inv_solve_det_slogdet_forward(batch, n, k, vector, seed):
    rng = np.random.default_rng(seed)
    a = spd(rng, batch, n) + 0.3 * rng.normal(size=batch + (n, n))  # not symmetric
    b = normal(rng, (n,) if vector else batch[1:] + (n, k))
    assert_forward(np.linalg.inv, a, rng=rng)
    assert_forward(np.linalg.solve, a, b, rng=rng, argnums=(0, 1))
    assert_forward(np.linalg.solve, a, b, rng=rng, argnums=0)
    assert_forward(np.linalg.solve, a, b, rng=rng, argnums=1)
    assert_forward(lambda a: np.linalg.det(a / n), a, rng=rng)
    assert_forward(lambda a: np.linalg.slogdet(a).logabsdet, -a, rng=rng)


# --- cholesky, eigh: tangents that are not symmetric, read through the lower triangle ---

@PROPERTY
@given(batch=batches, n=sides, seed=seeds)
def test_cholesky_eigh_forward(batch, n, seed):
    rng = np.random.default_rng(seed)
    assert_forward(np.linalg.cholesky, spd(rng, batch, n), rng=rng)
    a = distinct_spectrum(rng, batch, n)
    assert_forward(np.linalg.eigvalsh, a, rng=rng)
    # eigenvectors are defined up to sign: sign-invariant functions of them
    assert_forward(lambda a: np.linalg.eigh(a).eigenvectors ** 2, a, rng=rng)
    weights = np.arange(n) ** 2.0
    assert_forward(lambda a: (np.linalg.eigh(a)[1] * weights) @ np.swapaxes(np.linalg.eigh(a)[1], -1, -2), a, rng=rng)


def test_eigh_tangent_at_repeated_eigenvalues_matches_the_vjp():
    """At a tie the rules drop the same terms, so forward and reverse still agree."""
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    a = (q * np.array([1.0, 1.0, 3.0])) @ q.T
    f = weighted(lambda a: np.linalg.eigh(a)[1] ** 2, (a,), rng)
    tangent = rng.normal(size=a.shape)
    _, derivative = jvp(f, (a,), (tangent,))
    np.testing.assert_allclose(derivative, np.sum(grad(f)(a) * tangent), rtol=1e-10, atol=1e-10)


# --- svd, pinv ---------------------------------------------------------------------------

@PROPERTY
@given(batch=batches, m=sides, n=sides, seed=seeds)
def test_svd_pinv_forward(batch, m, n, seed):
    rng = np.random.default_rng(seed)
    a = distinct_singular_values(rng, batch, m, n)
    assert_forward(lambda a: np.linalg.svd(a, compute_uv=False), a, rng=rng)
    assert_forward(lambda a: np.linalg.svd(a, full_matrices=False).U ** 2, a, rng=rng)
    assert_forward(lambda a: np.linalg.svd(a, full_matrices=False).Vh ** 2, a, rng=rng)
    weights = np.arange(1.0, min(m, n) + 1) ** 2

    def weighted_product(a):  # U diag(c) Vh: the signs of U and V cancel
        u, _, vh = np.linalg.svd(a, full_matrices=False)
        return (u * weights) @ vh

    assert_forward(weighted_product, a, rng=rng)
    assert_forward(np.linalg.pinv, a, rng=rng)


# --- norm ---------------------------------------------------------------------------------

@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), keepdims=st.booleans(),
       p=st.sampled_from([None, 1, 2, 3, 1.5, 0.5, -1]), seed=seeds)
def test_vector_norm_forward(shape, keepdims, p, seed):
    rng = np.random.default_rng(seed)
    x = nonzero(rng, shape)
    assert_forward(lambda x: np.linalg.norm(x, p, axis=-1, keepdims=keepdims), x, rng=rng)
    assert_forward(lambda x: np.linalg.norm(x, p, axis=0), x, rng=rng)
    assert_forward(np.linalg.norm, x, rng=rng)


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4), keepdims=st.booleans(), seed=seeds)
def test_frobenius_norm_forward(shape, keepdims, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    assert_forward(lambda x: np.linalg.norm(x, "fro", axis=(-1, -2), keepdims=keepdims), x, rng=rng)
    assert_forward(lambda x: np.linalg.norm(x, axis=(0, -1)), x, rng=rng)


@pytest.mark.parametrize("p", [None, 2, 3])
def test_norm_tangent_at_zero_is_zero(p):
    """The subgradient 0 of the VJP: the tangent at x = 0 is 0, not NaN."""
    _, derivative = jvp(lambda x: np.linalg.norm(x, p), (np.zeros(3),), (np.ones(3),))
    assert derivative == 0


# --- second order: forward over reverse ------------------------------------------------

SECOND_ORDER = {
    "inv": lambda a: np.sum(np.linalg.inv(a) ** 2),
    "solve": lambda a: np.sum(np.linalg.solve(a, np.arange(3.0)) ** 2),
    "det": lambda a: np.linalg.det(a),
    "slogdet": lambda a: np.linalg.slogdet(a)[1],
    "cholesky": lambda a: np.sum(np.linalg.cholesky(a @ a.T) ** 2),
    "eigvalsh": lambda a: np.sum(np.linalg.eigvalsh(a + a.T) ** 3),
    "svdvals": lambda a: np.sum(np.linalg.svd(a, compute_uv=False) ** 3),
    "norm": lambda a: np.linalg.norm(a) ** 3 + np.sum(np.linalg.norm(a, 3, axis=1)),
    "einsum": lambda a: np.einsum("ij,jk,ki", a, a, a),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_jvp_of_grad(name):
    """jvp(grad(f)) is the Hessian-vector product: finite differences of grad(f)."""
    f = SECOND_ORDER[name]
    rng = np.random.default_rng(1)
    b = rng.normal(size=(3, 3))
    a = b @ b.T + 3 * np.eye(3) + 0.2 * rng.normal(size=(3, 3))
    v = rng.normal(size=(3, 3))
    gradient, hvp = jvp(grad(f), (a,), (v,))
    np.testing.assert_allclose(gradient, grad(f)(a), rtol=1e-12, atol=1e-12)
    expected = (grad(f)(a + EPS * v) - grad(f)(a - EPS * v)) / (2 * EPS)
    np.testing.assert_allclose(hvp, expected, rtol=1e-5, atol=1e-6)


# --- dtype and refusals ----------------------------------------------------------------

def test_float32_tangents_stay_float32():
    rng = np.random.default_rng(2)
    a = spd(rng, (), 3).astype(np.float32)
    f = lambda a: np.linalg.solve(a, a[0]) + np.linalg.eigvalsh(a) + np.linalg.svd(a, compute_uv=False)  # noqa: E731
    _, derivative = jvp(f, (a,), (np.ones_like(a),))
    assert derivative.dtype == np.float32
    _, derivative64 = jvp(f, (a.astype(np.float64),), (np.ones((3, 3)),))
    np.testing.assert_allclose(derivative, derivative64, rtol=1e-3, atol=1e-4)


def test_full_singular_vectors_of_non_square_matrices_are_refused():
    a = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(Exception, match="full_matrices=False"):
        jvp(lambda a: np.linalg.svd(a)[0], (a,), (np.ones_like(a),))
    with pytest.raises(Exception, match="full_matrices=False"):
        jvp(lambda a: np.linalg.svd(a)[2], (a.T,), (np.ones_like(a.T),))

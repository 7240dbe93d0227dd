"""SciPy's Python functions beyond the first table (compiler/scipy_dispatch.py):
scipy.stats gamma, chi2, beta, poisson, dirichlet and the singular multivariate
normal; scipy.special polygamma and multigammaln; scipy.linalg sqrtm,
solve_sylvester and solve_banded; scipy.signal convolve and correlate. Each is
checked against SciPy's own values and against finite differences in reverse and
forward mode, and what cannot be differentiated is refused at the user's line.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

scipy = pytest.importorskip("scipy", reason="SciPy is not installed: its functions are optional")
import scipy.linalg  # noqa: E402
import scipy.signal  # noqa: E402
import scipy.special  # noqa: E402
import scipy.stats  # noqa: E402

from compiler import AdjointError, grad, jit  # noqa: E402
from runtime.check import numerical_grad  # noqa: E402
from tests.helpers import (  # noqa: E402
    PROPERTY, assert_vjp, assert_weighted_vjp, broadcastable_pair, normal, positive, seeds, shapes,
)

sc, stats = scipy.special, scipy.stats


def _same(traced, expected, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(traced, expected, rtol=rtol, atol=atol)


# --- scipy.stats.multivariate_normal(..., allow_singular=True) ----------------------

def _singular(rng, dim, rank):
    """A covariance B B^T of rank `rank` and its factor B (dim x rank)."""
    factor = rng.normal(size=(dim, rank))
    return factor @ factor.T, factor


@PROPERTY
@given(dim=st.integers(2, 4), data=st.data(), points=st.integers(1, 3), seed=seeds)
def test_singular_normal_matches_scipy_and_differentiates_along_its_support(dim, data, points, seed):
    rng = np.random.default_rng(seed)
    rank = data.draw(st.integers(1, dim - 1))
    cov, factor = _singular(rng, dim, rank)
    mean = rng.normal(size=dim)
    z, w = rng.normal(size=(points, rank)), rng.normal(size=rank)
    inside = mean + z @ factor.T
    outside = inside + rng.normal(size=inside.shape)

    def logpdf(x, m=mean):
        return stats.multivariate_normal.logpdf(x, m, cov, allow_singular=True)

    _same(jit(logpdf)(inside), logpdf(inside), rtol=1e-10)
    assert np.all(jit(logpdf)(outside) == -np.inf) and np.all(logpdf(outside) == -np.inf)
    _same(jit(lambda x: stats.multivariate_normal.pdf(x, mean, cov, allow_singular=True))(inside),
          stats.multivariate_normal.pdf(inside, mean, cov, allow_singular=True), rtol=1e-10)
    # moved along the subspace cov spans (off it the density is 0): in x, and in the mean
    assert_weighted_vjp(lambda z: logpdf(mean + z @ factor.T), z, rng=rng)
    assert_vjp(lambda w: np.sum(logpdf(inside, mean + factor @ w)), w)


def test_singular_normal_frozen_and_nonsingular_with_allow_singular():
    rng = np.random.default_rng(3)
    cov, factor = _singular(rng, 3, 2)
    mean, z = rng.normal(size=3), rng.normal(size=(4, 2))
    frozen = stats.multivariate_normal(mean, cov, allow_singular=True)
    _same(jit(lambda x: frozen.logpdf(x))(mean + z @ factor.T), frozen.logpdf(mean + z @ factor.T), rtol=1e-10)
    assert_vjp(lambda z: np.sum(frozen.logpdf(mean + z @ factor.T)), z)
    full = cov + np.eye(3)
    x = rng.normal(size=(4, 3))
    for fn in (stats.multivariate_normal.logpdf, stats.multivariate_normal.pdf):
        _same(jit(lambda x, m: fn(x, m, full, allow_singular=True))(x, mean), fn(x, mean, full, allow_singular=True))
        assert_vjp(lambda x, m: np.sum(fn(x, m, full, allow_singular=True)), x, mean, argnums=(0, 1))


def test_traced_covariance_with_allow_singular_has_values_but_refuses_its_derivative():
    rng = np.random.default_rng(4)
    cov, factor = _singular(rng, 3, 2)
    x = factor @ rng.normal(size=2)

    def loss(x, cov):
        return stats.multivariate_normal.logpdf(x, None, cov, allow_singular=True)

    _same(grad(loss)(x, cov), -np.linalg.pinv(cov) @ x, rtol=1e-8, atol=1e-10)  # cov traced, not differentiated
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: .*allow_singular=True is not differentiable in cov"):
        grad(loss, argnums=1)(x, cov)


# --- scipy.special.polygamma, multigammaln ------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 3])
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_polygamma(n, shape, seed):
    rng = np.random.default_rng(seed)
    x = positive(rng, shape, 0.5, 3.0)
    _same(jit(lambda x: sc.polygamma(n, x))(x), sc.polygamma(n, x), rtol=1e-12)
    assert_weighted_vjp(lambda x: sc.polygamma(n, x), x, rng=rng)


@pytest.mark.parametrize("d", [1, 2, 4])
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_multigammaln(d, shape, seed):
    rng = np.random.default_rng(seed)
    a = positive(rng, shape, 0.5 * d + 0.2, 0.5 * d + 3)
    _same(jit(lambda a: sc.multigammaln(a, d))(a), sc.multigammaln(a, d), rtol=1e-12)
    assert_weighted_vjp(lambda a: sc.multigammaln(a, d), a, rng=rng)


def test_polygamma_and_multigammaln_refuse_traced_or_invalid_orders():
    x = np.array([1.5, 2.5])
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: scipy.special.polygamma .*static non-negative"):
        grad(lambda x, n: np.sum(sc.polygamma(n, x)))(x, 1.0)
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: scipy.special.multigammaln .*static positive"):
        grad(lambda a: np.sum(sc.multigammaln(a, 1.5)))(x)
    # a <= (d - 1) / 2, where SciPy raises: NaN, not a number from gammaln's other branches
    assert np.all(np.isnan(jit(lambda a: sc.multigammaln(a, 4))(np.array([0.7, 1.5]))))


# --- scipy.stats gamma, chi2, beta ----------------------------------------------------

METHODS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")
# name -> (shape parameters, loc, scale, x drawn inside the support)
CONTINUOUS = {
    "gamma": ((2.5,), 0.3, 1.5, lambda rng, shape: positive(rng, shape, 0.5, 6.0)),
    "chi2": ((3.0,), -0.2, 2.0, lambda rng, shape: positive(rng, shape, 0.5, 8.0)),
    "beta": ((2.0, 3.5), 0.1, 2.0, lambda rng, shape: positive(rng, shape, 0.3, 1.9)),
}


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
@PROPERTY
@given(pair=broadcastable_pair(max_dims=2), seed=seeds)
def test_continuous_distributions_in_x_loc_and_scale(name, pair, seed):
    rng = np.random.default_rng(seed)
    shapes_, loc, scale, draw = CONTINUOUS[name]
    dist = getattr(stats, name)
    x, scales = draw(rng, pair[0]), positive(rng, pair[1], 0.9, 1.1) * scale
    for method in METHODS:
        fn = getattr(dist, method)
        _same(jit(lambda x, s: fn(x, *shapes_, loc, s))(x, scales), fn(x, *shapes_, loc, scales), rtol=1e-11)
    weights = {method: rng.normal(size=np.broadcast_shapes(pair[0], pair[1])) for method in METHODS}

    def loss(x, loc, s):
        return sum(np.sum(getattr(dist, m)(x, *shapes_, loc, s) * weights[m]) for m in METHODS)

    assert_vjp(loss, x, loc, scales, argnums=(0, 1, 2))


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
@PROPERTY
@given(shape=shapes(max_dims=2), seed=seeds)
def test_densities_in_shape_parameters(name, shape, seed):
    rng = np.random.default_rng(seed)
    shapes_, loc, scale, draw = CONTINUOUS[name]
    dist, x = getattr(stats, name), draw(rng, shape)
    params = tuple(positive(rng, shape, 0.8, 1.2) * p for p in shapes_)
    positions = tuple(range(1, 1 + len(params)))
    for method in ("logpdf", "pdf"):
        fn = getattr(dist, method)
        _same(jit(lambda x, *p: fn(x, *p, loc, scale))(x, *params), fn(x, *params, loc, scale), rtol=1e-11)
        assert_weighted_vjp(lambda x, *p: fn(x, *p, loc, scale), x, *params, rng=rng, argnums=(0, *positions))


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_distributions_outside_the_support_and_with_invalid_parameters(name):
    shapes_, loc, scale, _ = CONTINUOUS[name]
    dist = getattr(stats, name)
    x = np.array([loc - 1.0, loc + 0.5 * scale, loc + 5.0 * scale])  # below, inside, above beta's support
    for method in METHODS:
        fn = getattr(dist, method)
        _same(jit(lambda x: fn(x, *shapes_, loc, scale))(x), fn(x, *shapes_, loc, scale))
        _same(jit(lambda x, s: fn(x, *shapes_, loc, s))(x, -1.0), fn(x, *shapes_, loc, -1.0))  # NaN, as SciPy
    assert_vjp(lambda x: np.sum(dist.pdf(x, *shapes_, loc, scale) + dist.cdf(x, *shapes_, loc, scale)), x)


def test_frozen_distributions_trace():
    rng = np.random.default_rng(5)
    x = positive(rng, (4,), 0.5, 4.0)
    for frozen in (stats.gamma(2.0, scale=2.0), stats.chi2(3.0, loc=0.1), stats.beta(2.0, 3.0, scale=5.0)):
        _same(jit(lambda x: frozen.logpdf(x))(x), frozen.logpdf(x))
        assert_vjp(lambda x: np.sum(frozen.logpdf(x) + frozen.logsf(x)), x)


def test_distribution_functions_refuse_derivatives_in_shape_parameters():
    x = np.array([0.5, 1.5])
    for call, parameter in ((lambda x, a: stats.gamma.cdf(x, a), "a"), (lambda x, a: stats.chi2.sf(x, a), "a"),
                            (lambda x, a: stats.beta.logcdf(x / 2, a, 2.0), "a")):
        with pytest.raises(AdjointError, match=rf"test_scipy_breadth.py:\d+: .*not differentiable in {parameter}"):
            grad(lambda x, a: np.sum(call(x, a)), argnums=1)(x, 2.5)
        # in x: with a traced (not differentiated), and with a constant in both modes
        np.testing.assert_allclose(grad(lambda x, a: np.sum(call(x, a)))(x, 2.5),
                                   numerical_grad(lambda x: np.sum(call(x, 2.5)), x), rtol=1e-6, atol=1e-8)
        assert_vjp(lambda x: np.sum(call(x, 2.5)), x)


# --- scipy.stats.poisson ----------------------------------------------------------------

POISSON_METHODS = ("logpmf", "pmf", "cdf", "logcdf", "sf", "logsf")


@PROPERTY
@given(pair=broadcastable_pair(max_dims=2), seed=seeds)
def test_poisson_in_mu(pair, seed):
    rng = np.random.default_rng(seed)
    k, mu = rng.integers(0, 7, size=pair[0]), positive(rng, pair[1], 0.5, 5.0)
    for method in POISSON_METHODS:
        fn = getattr(stats.poisson, method)
        _same(jit(lambda mu: fn(k, mu))(mu), fn(k, mu), rtol=1e-11)
    weights = {method: rng.normal(size=np.broadcast_shapes(pair[0], pair[1])) for method in POISSON_METHODS}
    assert_vjp(lambda mu: sum(np.sum(getattr(stats.poisson, m)(k, mu) * weights[m]) for m in POISSON_METHODS), mu)


def test_poisson_off_its_support_frozen_and_in_k():
    k = np.array([-1.0, 0.0, 2.0, 2.5, 4.0])  # below the support, counts, and a non-integer
    for method in POISSON_METHODS:
        fn = getattr(stats.poisson, method)
        _same(jit(lambda k, mu: fn(k, mu, 1))(k, 2.0), fn(k, 2.0, 1))
        _same(jit(lambda mu: fn(k, mu))(-1.0), fn(k, -1.0))  # NaN, as SciPy
    assert_vjp(lambda mu: np.sum(stats.poisson(mu).pmf(k) + stats.poisson(mu, loc=1).logsf(k)), 2.0)
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: scipy.stats.poisson is not differentiable in k"):
        grad(lambda k, mu: np.sum(stats.poisson.logpmf(k, mu)))(k, 2.0)


def test_other_distributions_are_still_refused_naming_those_that_trace():
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: scipy.stats.lognorm.logpdf .*gamma, chi2, beta"):
        grad(lambda x: np.sum(stats.lognorm.logpdf(x, 0.5)))(np.ones(2))
    with pytest.raises(AdjointError, match=r"test_scipy_breadth.py:\d+: scipy.stats.binom.pmf .*poisson"):
        grad(lambda p: np.sum(stats.binom.pmf(np.arange(3), 4, p)))(0.3)


# --- scipy.stats.dirichlet ----------------------------------------------------------------

@PROPERTY
@given(k=st.integers(2, 4), points=st.sampled_from([None, 1, 3]), seed=seeds)
def test_dirichlet_in_x_and_alpha(k, points, seed):
    rng = np.random.default_rng(seed)
    alpha = positive(rng, (k,), 0.8, 3.0)
    x = rng.dirichlet(np.full(k, 5.0), size=points).T  # (k,) or (k, points)
    free = x[:-1]  # SciPy completes the last component
    for fn in (stats.dirichlet.logpdf, stats.dirichlet.pdf):
        _same(jit(fn)(x, alpha), fn(x, alpha), rtol=1e-11)
        _same(jit(fn)(free, alpha), fn(free, alpha), rtol=1e-11)
        assert_weighted_vjp(fn, free, alpha, rng=rng, argnums=(0, 1))
    frozen = stats.dirichlet(alpha)
    assert_vjp(lambda free: np.sum(frozen.logpdf(free)), free)


def test_dirichlet_values_scipy_refuses_are_nan():
    alpha = np.array([0.5, 2.0, 3.0])
    for x in ([0.2, 0.2, 0.2], [1.2, -0.1, -0.1], [0.0, 0.4, 0.6]):
        assert np.isnan(jit(stats.dirichlet.logpdf)(np.array(x), alpha))
        with pytest.raises(ValueError):
            stats.dirichlet.logpdf(np.array(x), alpha)


# --- scipy.linalg ------------------------------------------------------------------------

def _positive_spectrum(rng, n):
    """A non-symmetric matrix with eigenvalues near 1 (a principal square root exists)."""
    return np.eye(n) + 0.3 * rng.normal(size=(n, n)) / np.sqrt(n)


@PROPERTY
@given(n=st.integers(1, 4), seed=seeds)
def test_sqrtm(n, seed):
    rng = np.random.default_rng(seed)
    a = _positive_spectrum(rng, n)
    _same(jit(scipy.linalg.sqrtm)(a), scipy.linalg.sqrtm(a), rtol=1e-12)
    assert_weighted_vjp(scipy.linalg.sqrtm, a, rng=rng)


def test_sqrtm_of_a_matrix_without_a_real_root_raises_at_run_time():
    with pytest.raises(TypeError, match="complex"):
        jit(scipy.linalg.sqrtm)(np.diag([-1.0, 2.0]))


@PROPERTY
@given(n=st.integers(1, 4), m=st.integers(1, 4), seed=seeds)
def test_solve_sylvester_in_all_three(n, m, seed):
    rng = np.random.default_rng(seed)
    a, b = _positive_spectrum(rng, n), _positive_spectrum(rng, m)
    q = rng.normal(size=(n, m))
    _same(jit(scipy.linalg.solve_sylvester)(a, b, q), scipy.linalg.solve_sylvester(a, b, q), rtol=1e-10)
    assert_weighted_vjp(scipy.linalg.solve_sylvester, a, b, q, rng=rng, argnums=(0, 1, 2))


@PROPERTY
@given(n=st.integers(1, 5), lower=st.integers(0, 2), upper=st.integers(0, 2),
       columns=st.sampled_from([None, 1, 3]), seed=seeds)
def test_solve_banded_in_ab_and_b(n, lower, upper, columns, seed):
    rng = np.random.default_rng(seed)
    ab = rng.normal(size=(lower + upper + 1, n))
    ab[upper] += 4.0 * np.sign(ab[upper]) + (lower + upper)  # a dominant diagonal
    b = rng.normal(size=(n,) if columns is None else (n, columns))

    def solve(ab, b):
        return scipy.linalg.solve_banded((lower, upper), ab, b)

    _same(jit(solve)(ab, b), solve(ab, b), rtol=1e-10)
    assert_weighted_vjp(solve, ab, b, rng=rng, argnums=(0, 1))


def test_scipy_linalg_source_imports_scipy_linalg_and_runs_standalone():
    a = _positive_spectrum(np.random.default_rng(6), 3)
    gf = grad(lambda a: np.sum(scipy.linalg.sqrtm(a) ** 2))
    source = gf.source(a)
    assert "import scipy.linalg" in source and "scipy.linalg.solve_sylvester(" in source, source
    namespace = {}
    exec(compile(source, "<standalone>", "exec"), namespace)
    fn = next(v for k, v in namespace.items() if callable(v) and not k.startswith("__") and k != "np")
    _same(fn(a), gf(a))


# --- scipy.signal ------------------------------------------------------------------------

@st.composite
def _signal_shapes(draw):
    ndim = draw(st.integers(1, 3))
    first = draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    second = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    return tuple(first), tuple(second)


@pytest.mark.parametrize("name", ["convolve", "correlate"])
@PROPERTY
@given(pair=_signal_shapes(), mode=st.sampled_from(["full", "same", "valid"]), swap=st.booleans(), seed=seeds)
def test_convolve_and_correlate(name, pair, mode, swap, seed):
    rng = np.random.default_rng(seed)
    s1, s2 = pair[::-1] if swap else pair
    if mode == "valid" and not (all(map(int.__ge__, s1, s2)) or all(map(int.__ge__, s2, s1))):
        s2 = tuple(min(a, b) for a, b in zip(s1, s2))  # SciPy's 'valid' needs one input to cover the other
    in1, in2 = normal(rng, s1), normal(rng, s2)
    fn = getattr(scipy.signal, name)

    def call(in1, in2):
        return fn(in1, in2, mode=mode)

    _same(jit(call)(in1, in2), call(in1, in2), rtol=1e-10, atol=1e-12)
    assert_weighted_vjp(call, in1, in2, rng=rng, argnums=(0, 1))

"""SciPy in users' own code.

scipy.special's ufuncs trace and differentiate (first and second order against
finite differences, float32 kept where SciPy keeps it); SciPy's Python functions
(logsumexp, scipy.stats densities) cannot trace and are refused at the user's line
with a replacement that does trace, which is checked here by compiling it.
"""
import re
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

scipy = pytest.importorskip("scipy", reason="SciPy is not installed: its functions are optional")
import scipy.special  # noqa: E402
import scipy.stats  # noqa: E402

import runtime.nn  # noqa: E402,F401  (advice formulas name it)
from compiler import AdjointError, concretization, grad, jit, jvp  # noqa: E402
from compiler.errors import TracingError  # noqa: E402
from compiler.numpy_functions import scipy_functions  # noqa: E402
from runtime.check import numerical_grad  # noqa: E402
from tests.helpers import (  # noqa: E402
    PROPERTY, assert_float32_backward, assert_weighted_vjp, broadcastable_pair, normal, positive, seeds, shapes,
)

sc = scipy.special

# name -> values drawn where the function is smooth and well scaled
UNARY = {
    "expit": normal,
    "log_expit": normal,
    "logit": lambda rng, shape: rng.uniform(0.1, 0.9, shape),
    "erf": normal,
    "erfc": normal,
    "ndtr": normal,
    "log_ndtr": normal,
    "gammaln": lambda rng, shape: positive(rng, shape, 0.5, 3.0),
    "digamma": lambda rng, shape: positive(rng, shape, 0.5, 3.0),
}
BINARY = {
    "xlogy": (normal, lambda rng, shape: positive(rng, shape)),
    "xlog1py": (normal, lambda rng, shape: positive(rng, shape, -0.5, 2.0)),
}


def _second_order(f, *args, argnums=0, rtol=1e-5, atol=1e-6):
    """The gradient of <grad f, v> (a Hessian-vector product) against finite
    differences of the compiled first derivative."""
    rng = np.random.default_rng(1)
    first = grad(f, argnums=argnums)
    vs = [rng.normal(size=np.shape(args[i])) for i in ((argnums,) if isinstance(argnums, int) else argnums)]

    def contracted(*a):
        gs = first(*a)
        gs = (gs,) if isinstance(argnums, int) else gs
        return sum(np.sum(g * v) for g, v in zip(gs, vs))

    analytic = grad(contracted, argnums=argnums)(*args)
    numeric = numerical_grad(contracted, *args, argnums=argnums, eps=1e-5)
    analytic = (analytic,) if isinstance(argnums, int) else analytic
    numeric = (numeric,) if isinstance(argnums, int) else numeric
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(UNARY))
@PROPERTY
@given(shape=shapes(), seed=seeds)
def test_unary_ufunc_first_and_second_order(name, shape, seed):
    rng = np.random.default_rng(seed)
    fn = getattr(sc, name)
    x = UNARY[name](rng, shape)
    np.testing.assert_allclose(jit(fn)(x), fn(x), rtol=1e-13, atol=1e-15)
    assert_weighted_vjp(fn, x, rng=rng)
    weights = rng.normal(size=shape)
    _second_order(lambda x: np.sum(fn(x) * weights), x)


@pytest.mark.parametrize("name", sorted(BINARY))
@PROPERTY
@given(pair=broadcastable_pair(), seed=seeds)
def test_binary_ufunc_with_broadcasting(name, pair, seed):
    rng = np.random.default_rng(seed)
    fn = getattr(sc, name)
    x, y = (draw(rng, s) for draw, s in zip(BINARY[name], pair))
    np.testing.assert_allclose(jit(fn)(x, y), fn(x, y), rtol=1e-13, atol=1e-15)
    assert_weighted_vjp(fn, x, y, rng=rng, argnums=(0, 1))
    weights = rng.normal(size=np.broadcast_shapes(*pair))
    _second_order(lambda x, y: np.sum(fn(x, y) * weights), x, y, argnums=(0, 1))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_float32_stays_float32(name):
    fn = getattr(sc, name)
    x = UNARY[name](np.random.default_rng(0), (3, 4))
    assert fn(x.astype(np.float32)).dtype == np.float32  # SciPy keeps float32
    assert jit(fn)(x.astype(np.float32)).dtype == np.float32
    assert_float32_backward(lambda x: np.sum(fn(x)), x)


def test_dtype_follows_scipy_not_nep50():
    """SciPy's own type resolution: a Python float with a float32 array is float64."""
    y = np.full(3, 2.0, np.float32)
    assert jit(lambda y: sc.xlogy(2.0, y))(y).dtype == sc.xlogy(2.0, y).dtype == np.float64
    assert jit(sc.erf)(np.ones(2, np.float16)).dtype == sc.erf(np.ones(2, np.float16)).dtype


def test_scipy_ufuncs_named_like_numpys_bind_numpys_primitives():
    x = np.linspace(0.1, 2.0, 5)
    f = lambda x: np.sum(sc.cbrt(x) + sc.exp2(x) + sc.expm1(x) + sc.log1p(x))  # noqa: E731
    assert_weighted_vjp(lambda x: sc.cbrt(x) * sc.exp2(x) + sc.expm1(x) * sc.log1p(x), x, rng=np.random.default_rng(0))
    assert "np.cbrt(x)" in grad(f).source(x)


def test_registered_names_are_scipys_ufuncs_and_not_numpys():
    from compiler.primitives.scipy_special import SCIPY_UFUNCS  # noqa: PLC0415

    ufuncs = {f.__name__ for f in vars(sc).values() if isinstance(f, np.ufunc)}
    assert set(SCIPY_UFUNCS) <= ufuncs and not any(isinstance(getattr(np, name, None), np.ufunc) for name in SCIPY_UFUNCS)


def test_xlogy_is_zero_with_zero_gradient_where_x_is_zero():
    x, y = np.array([0.0, 0.0, 1.0]), np.array([0.0, 2.0, 2.0])
    g_y = grad(lambda x, y: np.sum(sc.xlogy(x, y)), argnums=1)(x, y)
    np.testing.assert_array_equal(g_y, [0.0, 0.0, 0.5])


def test_third_derivative_of_gammaln_is_polygamma_2():
    third = grad(grad(grad(sc.gammaln)))
    assert third(1.5) == pytest.approx(sc.polygamma(2, 1.5), rel=1e-12)


def test_generated_source_runs_standalone():
    """The module source needs only its own imports (NumPy, scipy.special)."""
    def f(x, y):
        return np.sum(sc.xlogy(y, sc.expit(x)) + sc.gammaln(y) * sc.log_ndtr(x))

    x, y = np.linspace(-2, 2, 5), np.linspace(0.5, 3, 5)
    gf = grad(f, argnums=(0, 1))
    source = gf.source(x, y)
    assert "np.exp(-np.logaddexp(0, -x))" in source  # expit prints as NumPy
    namespace = {}
    exec(compile(source, "<standalone>", "exec"), namespace)
    fn = next(v for k, v in namespace.items() if k.startswith("f_"))
    for a, b in zip(fn(x, y), gf(x, y)):
        np.testing.assert_allclose(a, b)


# --- SciPy's Python functions: refused, with a replacement that traces ----------------


class _Probe:
    """Stands for a traced value inside SciPy: its `__array__` asks the advisor
    what to tell the user, as Tracer.__array__ does through concretization."""

    def __init__(self, shape):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(np.float64)

    def __array__(self, dtype=None, copy=None):
        raise _Advised(scipy_functions.scipy_advice(sys._getframe(1), self))


class _Advised(Exception):
    pass


def _advice(call):
    with pytest.raises(_Advised) as info:
        call()
    what, advice = info.value.args[0]
    return what, advice


def _instead(advice):
    found = re.search(r"write `([^`]*)` instead", advice)
    assert found, advice
    return found.group(1)


x = _Probe((4, 3))  # the name the user's lines below pass
rng0 = np.random.default_rng(0)
X = rng0.normal(size=(4, 3))
MEAN = np.array([0.1, -0.2, 0.3])
COV = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.5]])

# (the call as users write it, the same call on concrete values)
CALLS = {
    "scipy.special.logsumexp": (lambda: sc.logsumexp(x, axis=1), lambda x: sc.logsumexp(x, axis=1)),
    "scipy.special.softmax": (lambda: sc.softmax(x, axis=0), lambda x: sc.softmax(x, axis=0)),
    "scipy.special.log_softmax": (lambda: sc.log_softmax(x), lambda x: sc.log_softmax(x)),
    "scipy.stats.norm.logpdf": (lambda: scipy.stats.norm.logpdf(x, 0.5, scale=2.0),
                                lambda x: scipy.stats.norm.logpdf(x, 0.5, scale=2.0)),
    "scipy.stats.norm.pdf": (lambda: scipy.stats.norm.pdf(x), lambda x: scipy.stats.norm.pdf(x)),
    "scipy.stats.norm.cdf": (lambda: scipy.stats.norm.cdf(x, loc=-0.5), lambda x: scipy.stats.norm.cdf(x, loc=-0.5)),
    "scipy.stats.norm.logcdf": (lambda: scipy.stats.norm.logcdf(x, 1.0, 3.0), lambda x: scipy.stats.norm.logcdf(x, 1.0, 3.0)),
    "scipy.stats.t.logpdf": (lambda: scipy.stats.t.logpdf(x, 4.0, 0.5, 2.0), lambda x: scipy.stats.t.logpdf(x, 4.0, 0.5, 2.0)),
    "scipy.stats.t.pdf": (lambda: scipy.stats.t.pdf(x, df=3.0), lambda x: scipy.stats.t.pdf(x, df=3.0)),
    "scipy.stats.t.cdf": (lambda: scipy.stats.t.cdf(x, 3.0, 0.5), lambda x: scipy.stats.t.cdf(x, 3.0, 0.5)),
    "scipy.stats.t.logsf": (lambda: scipy.stats.t.logsf(x, df=2.5, scale=2.0), lambda x: scipy.stats.t.logsf(x, df=2.5, scale=2.0)),
    "scipy.stats.multivariate_normal.logpdf": (lambda: scipy.stats.multivariate_normal.logpdf(x, MEAN, COV),
                                               lambda x: scipy.stats.multivariate_normal.logpdf(x, MEAN, COV)),
    "scipy.stats.multivariate_normal.pdf": (lambda: scipy.stats.multivariate_normal.pdf(x, cov=COV),
                                            lambda x: scipy.stats.multivariate_normal.pdf(x, cov=COV)),
}


# traced through compiler/scipy_dispatch.py's wrappers, but with no NumPy formula to
# suggest for an original called directly (the t distribution function is stdtr)
WITHOUT_FORMULA = {"scipy.stats.t.cdf", "scipy.stats.t.logsf"}


@pytest.mark.parametrize("name", sorted(set(CALLS) - WITHOUT_FORMULA))
def test_advice_names_the_scipy_function_and_its_replacement_traces(name):
    call, concrete = CALLS[name]
    what, advice = _advice(call)
    assert name in what and "_distn_infrastructure" not in what + advice
    code = _instead(advice)
    namespace = {"np": np, "scipy": scipy, "runtime": sys.modules["runtime"], "MEAN": MEAN, "COV": COV}
    replacement = eval(f"lambda x: {code}", namespace)  # the user's line, rewritten as advised
    np.testing.assert_allclose(jit(replacement)(X), concrete(X), rtol=1e-12, atol=1e-14)
    weights = rng0.normal(size=np.shape(concrete(X)))
    loss = lambda x: np.sum(replacement(x) * weights)  # noqa: E731
    np.testing.assert_allclose(grad(loss)(X), numerical_grad(lambda x: np.sum(concrete(x) * weights), X),
                               rtol=1e-6, atol=1e-8)


def test_advice_without_a_formula_says_why():
    what, advice = _advice(lambda: scipy.stats.multivariate_normal.cdf(x, MEAN, COV))
    assert "scipy.stats.multivariate_normal.cdf" in what and "no closed form" in advice
    what, advice = _advice(lambda: scipy.stats.norm(0.0, 2.0).logpdf(x))
    assert "scipy.stats.norm(...).logpdf" in what
    assert _instead(advice) == "-0.5 * ((x - loc) / scale) ** 2 - 0.5 * np.log(2 * np.pi) - np.log(scale)"


HOOKED = hasattr(concretization, "ADVISORS")


def lse_loss(x):
    return np.sum(sc.logsumexp(x, axis=1))


def norm_loss(x):
    return np.sum(scipy.stats.norm.logpdf(x, 0.5, 2.0))


def mvn_loss(x):
    return np.sum(scipy.stats.multivariate_normal.logpdf(
        x, MEAN, COV))


# the originals, as a module holds them when it ran `from scipy.special import
# logsumexp` before adjoint was imported
_EARLY_LSE = sc.logsumexp.__adjoint_original__
_EARLY_NORM_LOGPDF = scipy.stats.norm.logpdf.__func__.__adjoint_original__


def early_lse_loss(x):
    return np.sum(_EARLY_LSE(x, axis=1))


def early_norm_loss(x):
    return np.sum(_EARLY_NORM_LOGPDF(scipy.stats.norm, x, 0.5, 2.0))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_scipy_functions_trace_as_users_call_them(name):
    """Every call in the table, on traced values: SciPy's value, finite-difference
    gradients, and the same tangent in forward mode."""
    _, concrete = CALLS[name]
    np.testing.assert_allclose(jit(concrete)(X), concrete(X), rtol=1e-12, atol=1e-14)
    weights = rng0.normal(size=np.shape(concrete(X)))
    loss = lambda x: np.sum(concrete(x) * weights)  # noqa: E731
    gradient = grad(loss)(X)
    np.testing.assert_allclose(gradient, numerical_grad(loss, X), rtol=1e-6, atol=1e-8)
    direction = rng0.normal(size=X.shape)
    assert jvp(loss, (X,), (direction,))[1] == pytest.approx(np.sum(gradient * direction), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("loss", [lse_loss, norm_loss, mvn_loss])
def test_scipy_losses_compile_to_numpy(loss):
    code = "\n".join(line.split("#")[0] for line in grad(loss).source(X).splitlines())  # comments quote the user
    assert "scipy" not in code and "logsumexp" not in code, code
    np.testing.assert_allclose(grad(loss)(X), numerical_grad(loss, X), rtol=1e-6, atol=1e-8)


def test_scipy_functions_without_a_formula_are_refused_at_the_users_line():
    with pytest.raises(AdjointError, match=r"test_scipy.py:\d+: .*multivariate_normal.cdf"):
        grad(lambda x: np.sum(scipy.stats.multivariate_normal.cdf(x, MEAN, COV)))(X)
    with pytest.raises(AdjointError, match=r"test_scipy.py:\d+: scipy.stats.t.cdf on traced values needs a fixed scalar df"):
        grad(lambda x, df: np.sum(scipy.stats.t.cdf(x, df)))(X, 3.0)


def test_untraced_calls_run_scipys_own_function():
    assert sc.logsumexp.__wrapped__ is _EARLY_LSE
    np.testing.assert_array_equal(sc.logsumexp(X, axis=1), _EARLY_LSE(X, axis=1))
    assert scipy.stats.norm.logpdf([0.0, 1.0]).shape == (2,)  # lists too, as SciPy takes them


@pytest.mark.parametrize("loss, name, line", [
    (early_lse_loss, "scipy.special.logsumexp", "runtime.nn.logsumexp(x, axis="),
    (early_norm_loss, "scipy.stats.norm.logpdf", None),
])
def test_refusal_of_an_early_bound_original_names_the_users_line_and_the_scipy_function(loss, name, line):
    with pytest.raises(TracingError) as info:
        grad(loss)(X)
    message = str(info.value)
    assert "site-packages" not in message
    if not HOOKED:
        pytest.skip("needs the ADVISORS hook in compiler/concretization.py and SciPy frames in errors.is_library")
    assert message.startswith("test_scipy.py:"), message
    assert name in message and (line is None or line in message), message
    assert "np.asarray(x) is not needed" not in message, message
    if name.startswith("scipy.special"):  # the only ones a module can hold unwrapped
        assert "import compiler before" in message, message


def test_other_distributions_are_refused_naming_what_traces():
    with pytest.raises(AdjointError, match=r"test_scipy.py:\d+: scipy.stats.lognorm.logpdf .*adjoint traces scipy.stats"):
        grad(lambda x: np.sum(scipy.stats.lognorm.logpdf(x, 0.5)))(np.abs(X) + 0.5)
    np.testing.assert_allclose(scipy.stats.lognorm.logpdf(np.ones(2), 0.5),
                               np.full(2, -0.5 * np.log(2 * np.pi) - np.log(0.5)))  # untraced: SciPy's own

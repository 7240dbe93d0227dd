"""SciPy's Python functions on traced values: a table of the callables models use
most, each with its meaning written in traceable NumPy.

`scipy.special.logsumexp / softmax / log_softmax / polygamma / multigammaln`, the
densities and distribution functions of `scipy.stats` norm, t, gamma, chi2, beta,
poisson, multivariate_normal and dirichlet, `scipy.linalg.sqrtm / solve_sylvester /
solve_banded` and `scipy.signal.convolve / correlate` start with `np.asarray(x)`,
which a traced value cannot answer. Those SciPy functions are
made to dispatch when SciPy's modules load: a call whose arguments hold no tracer
runs SciPy's own code, unchanged (one scan of the arguments is the whole cost); a
call with a tracer computes the same value from the formulas below, so it traces,
differentiates and prints as NumPy.

Import order does not matter because SciPy's function objects themselves are made
to dispatch (their `__code__` becomes a two-line trampoline, SciPy's code moves to a
copy), rather than the module attributes that name them: a name bound by
`from scipy.special import logsumexp` before adjoint was imported, a bound method
`logpdf = scipy.stats.norm.logpdf`, a default argument or a dict entry all hold the
same, now dispatching, object. The dispatchers keep no state, so threads share them
safely. Nothing here imports SciPy: they are installed by an import hook when the
user's program imports scipy.special, scipy.stats, scipy.linalg or scipy.signal (at
once, if it already has), and cost nothing when SciPy is absent.

Where SciPy checks its arguments' values and returns NaN, so do the formulas; where
it raises on values (dirichlet's x off the simplex, multigammaln's a too small, a
covariance with a negative eigenvalue) they give NaN, since a traced value is known
only when the generated code runs.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import math
import sys
import threading
import types
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import UnsupportedError, at_user_line
from compiler.tracing import Tracer, bind
from runtime import nn, tree

_LOG_2PI = math.log(2 * math.pi)


def _holds_tracer(args: tuple, kwargs: dict) -> bool:
    return any(isinstance(leaf, Tracer) for leaf in tree.flatten((args, kwargs))[0])


# --- scipy.special ----------------------------------------------------------------

def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) along `axis`, stable; with `return_sign`, (log|s|, sign s)."""
    if b is None and not return_sign:
        return nn.logsumexp(a, axis=axis, keepdims=keepdims)
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    total = np.sum(np.exp(a - top) if b is None else b * np.exp(a - top), axis=axis, keepdims=True)
    value = np.log(np.abs(total)) + top
    if not keepdims:
        value = np.squeeze(value, axis=axis) if axis is not None else np.reshape(value, ())
        total = np.reshape(total, np.shape(value))
    return (value, np.sign(total)) if return_sign else value


def softmax(x, axis=None):
    return np.exp(log_softmax(x, axis=axis))


def log_softmax(x, axis=None):
    return x - nn.logsumexp(x, axis=axis, keepdims=True)


def polygamma(n, x):
    """psi^(n)(x) for a static integer n >= 0 (no derivative in n)."""
    if isinstance(n, Tracer) or np.ndim(n) != 0 or n != int(n) or n < 0:
        raise _unsupported("scipy.special.polygamma", "its order n must be a static non-negative integer")
    return _special("psi")(x) if int(n) == 0 else bind("polygamma", x, n=int(n))


def multigammaln(a, d):
    """log of the multivariate gamma function; NaN where SciPy raises (a <= (d - 1) / 2)."""
    if isinstance(d, Tracer) or np.ndim(d) != 0 or d != int(d) or d < 1:
        raise _unsupported("scipy.special.multigammaln", "d must be a static positive integer")
    d = int(d)
    value = d * (d - 1) / 4 * math.log(math.pi) + sum(_special("gammaln")(a - 0.5 * j) for j in range(d))
    return np.where(a > 0.5 * (d - 1), value, np.nan)


# --- scipy.stats ------------------------------------------------------------------

def _special(name: str) -> Any:
    """scipy.special's ufunc `name` (loaded: a scipy.stats call is running)."""
    return getattr(sys.modules["scipy.special"], name)


def _norm(method: str, x, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    if method in ("logpdf", "pdf"):
        logpdf = -0.5 * z**2 - 0.5 * _LOG_2PI - np.log(scale)
        return logpdf if method == "logpdf" else np.exp(logpdf)
    if method in ("cdf", "sf"):
        return _special("ndtr")(z if method == "cdf" else -z)
    return _special("log_ndtr")(z if method == "logcdf" else -z)


def _t(method: str, x, df, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    if method not in ("logpdf", "pdf"):
        return _t_distribution(method, z, df)
    half_up = (df + 1) / 2
    gammaln = _special("gammaln")
    logpdf = (gammaln(half_up) - gammaln(df / 2) - 0.5 * np.log(df * np.pi) - np.log(scale)
              - half_up * np.log1p(z**2 / df))
    return logpdf if method == "logpdf" else np.exp(logpdf)


def _t_distribution(method: str, z, df):
    """cdf / sf and their logs of a standardized t value, for a fixed `df` (no closed
    form of the derivative in df exists to trace: a traced df is refused)."""
    if isinstance(df, Tracer) or np.ndim(df) != 0:
        raise at_user_line(UnsupportedError, f"scipy.stats.t.{method} on traced values needs a fixed scalar df "
                           "(its derivative in df has no closed form); pass df as a Python number")
    value = bind("student_t_cdf", z if method in ("cdf", "logcdf") else -z, df=float(df))
    return np.log(value) if method.startswith("log") else value


def _valid(value, *conditions):
    """`value`, NaN where SciPy's argument check fails (its `badvalue`)."""
    valid = functools.reduce(np.logical_and, conditions)
    return value if not isinstance(valid, Tracer) and np.all(valid) else np.where(valid, value, np.nan)


def _density(method: str, inside, log_density):
    """logpdf / pdf (logpmf / pmf): -inf / 0 outside the support, as SciPy gives."""
    log_density = np.where(inside, log_density, -np.inf)
    return log_density if method.startswith("log") else np.exp(log_density)


def _tail(method: str, below, above, cdf: Callable[[], Any], sf: Callable[[], Any]):
    """cdf, sf or their logs (SciPy's generic log(cdf), log(sf) for these
    distributions); `below` / `above` mark x past either end of the support (None:
    it has no such end), where the cdf is 0 / 1."""
    tail = method in ("cdf", "logcdf")
    value = cdf() if tail else sf()
    for outside, cdf_there in ((above, 1), (below, 0)):
        if outside is not None:
            value = np.where(outside, cdf_there if tail else 1 - cdf_there, value)
    return np.log(value) if method.startswith("log") else value


def _gamma(method: str, x, a, loc=0.0, scale=1.0):
    """scipy.stats.gamma; the distribution functions are regularized incomplete gamma
    functions, differentiable in x, loc and scale only (scipy.special.gammainc refuses a)."""
    z = (x - loc) / scale
    # outside the support the formulas read z = 1, so no lane there makes a NaN or an
    # infinite derivative (x^(a-1) at 0 for a < 1) that a zero tangent would multiply
    below = z < 0
    z = np.where(below, 1, z)
    if method in ("logpdf", "pdf"):
        log_density = _special("xlogy")(a - 1, z) - z - _special("gammaln")(a) - np.log(scale)
        value = _density(method, ~below, log_density)
    else:
        value = _tail(method, below, None, lambda: _special("gammainc")(a, z), lambda: _special("gammaincc")(a, z))
    return _valid(value, a > 0, scale > 0)


def _chi2(method: str, x, df, loc=0.0, scale=1.0):
    """scipy.stats.chi2: gamma with a = df / 2 and twice the scale."""
    return _gamma(method, x, df / 2, loc, 2 * scale)


def _beta(method: str, x, a, b, loc=0.0, scale=1.0):
    """scipy.stats.beta; cdf / sf are regularized incomplete beta functions,
    differentiable in x, loc and scale only (scipy.special.betainc refuses a and b)."""
    z = (x - loc) / scale
    below, above = z < 0, z > 1
    z = np.where(below | above, 0.5, z)  # as in _gamma
    if method in ("logpdf", "pdf"):
        log_density = (_special("xlogy")(a - 1, z) + _special("xlog1py")(b - 1, -z) - _special("betaln")(a, b)
                       - np.log(scale))
        value = _density(method, ~(below | above), log_density)
    else:  # sf = betaincc(a, b, z), SciPy's spelling, is betainc(b, a, 1 - z)
        value = _tail(method, below, above, lambda: _special("betainc")(a, b, z),
                      lambda: _special("betainc")(b, a, 1 - z))
    return _valid(value, a > 0, b > 0, scale > 0)


_COUNT = ("scipy.stats.poisson is not differentiable in k or loc (a count: its functions jump at every "
          "integer). Differentiate it in mu only")


def _poisson(method: str, k, mu, loc=0):
    """scipy.stats.poisson; pmf at non-integer k is 0, as SciPy's. cdf(k) is
    gammaincc(floor(k) + 1, mu), differentiable in mu."""
    k = k - loc
    if isinstance(k, Tracer):
        k = bind("no_derivative", k, reason=_COUNT)
    counted = np.maximum(k, 0)
    if method in ("logpmf", "pmf"):
        inside = (k >= 0) & (np.floor(k) == k)
        value = _density(method, inside, _special("xlogy")(counted, mu) - _special("gammaln")(counted + 1) - mu)
    else:
        a = np.floor(counted) + 1
        value = _tail(method, k < 0, None, lambda: _special("gammaincc")(a, mu), lambda: _special("gammainc")(a, mu))
    return _valid(value, mu >= 0)


def _quantiles(x, dim: int):
    """x as SciPy's multivariate distributions read it: rows of `dim` components."""
    if np.ndim(x) == 0:
        return np.reshape(x, (1,))
    return np.reshape(x, (-1, 1) if dim == 1 else (1, -1)) if np.ndim(x) == 1 else x


# SciPy's `_PSD` cutoff: eigenvalues at most this times the largest count as zero (float64)
_PSD_CUTOFF = 1e6 * np.finfo(np.float64).eps
_SINGULAR_COV = (
    "scipy.stats.multivariate_normal with allow_singular=True is not differentiable in cov (its pseudo-inverse "
    "and pseudo-determinant jump where the rank of cov changes, which a trace cannot know). Differentiate it in "
    "x and mean only, or differentiate a nonsingular cov with allow_singular=False"
)


def _pseudo_normal_logpdf(x, mean, cov):
    """SciPy's logpdf with `allow_singular=True` (its `_PSD`): the pseudo-inverse and
    pseudo-determinant over the eigenvalues of cov above the cutoff, -inf off the
    subspace cov spans, NaN where cov has a negative eigenvalue (SciPy raises)."""
    dim = np.shape(cov)[-1]
    values, vectors = np.linalg.eigh(bind("no_derivative", cov, reason=_SINGULAR_COV))
    cutoff = _PSD_CUTOFF * np.max(np.abs(values))
    kept = values > cutoff
    inverse_root = np.sqrt(np.where(kept, 1 / np.where(kept, values, 1), 0))
    d = _quantiles(x, dim) if mean is None else _quantiles(x, dim) - mean
    mahalanobis = np.sum(np.square(d @ (vectors * inverse_root)), axis=-1)
    log_pdet = np.sum(np.where(kept, np.log(np.where(kept, values, 1)), 0))
    logpdf = -0.5 * (np.sum(kept) * _LOG_2PI + log_pdet + mahalanobis)
    residual = np.sqrt(np.sum(np.square(d @ np.where(kept, 0, vectors)), axis=-1))
    logpdf = np.where(residual < 1e3 * cutoff, logpdf, -np.inf)
    return np.squeeze(np.where(np.min(values) < -cutoff, np.nan, logpdf))


def _multivariate_normal(method: str, x, mean=None, cov=1, allow_singular=False):
    if method not in ("logpdf", "pdf"):
        return None
    if np.ndim(cov) < 2:
        return None  # a scalar or diagonal covariance: SciPy's own broadcasting rules, not repeated here
    if allow_singular:
        logpdf = _pseudo_normal_logpdf(x, mean, cov)
        return logpdf if method == "logpdf" else np.exp(logpdf)
    d = x if mean is None else x - mean
    solved = np.linalg.solve(cov, np.swapaxes(np.atleast_2d(d), -1, -2))
    mahalanobis = np.sum(np.atleast_2d(d) * np.swapaxes(solved, -1, -2), axis=-1)
    logpdf = np.squeeze(-0.5 * (mahalanobis + np.linalg.slogdet(cov)[1] + np.shape(cov)[-1] * _LOG_2PI))  # as SciPy
    return logpdf if method == "logpdf" else np.exp(logpdf)


def _dirichlet(method: str, x, alpha):
    """scipy.stats.dirichlet; x holds one point per column (its last component may be
    left out); NaN where SciPy raises on the values (x off the simplex, alpha <= 0)."""
    if np.ndim(alpha) != 1 or np.shape(x)[0] not in (np.shape(alpha)[0], np.shape(alpha)[0] - 1):
        raise ValueError(f"scipy.stats.dirichlet: x of shape {np.shape(x)} does not match alpha of shape "
                         f"{np.shape(alpha)} (x has as many rows as alpha has entries, or one fewer)")
    if np.shape(x)[0] != np.shape(alpha)[0]:
        x = np.concatenate([x, np.expand_dims(1 - np.sum(x, axis=0), 0)], axis=0)
    points = np.transpose(x)  # components last, against alpha
    log_beta = np.sum(_special("gammaln")(alpha)) - _special("gammaln")(np.sum(alpha))
    logpdf = np.sum(_special("xlogy")(alpha - 1, points), axis=-1) - log_beta
    invalid = (np.any(alpha <= 0) | np.any(points < 0) | np.any(points > 1)
               | np.any(np.abs(np.sum(x, axis=0) - 1) > 10e-10) | np.any((points == 0) & (alpha < 1)))
    logpdf = np.where(invalid, np.nan, logpdf)
    return logpdf if method == "logpdf" else np.exp(logpdf)


# --- scipy.linalg -----------------------------------------------------------------

def _array(value):
    return value if isinstance(value, Tracer) else np.asarray(value)


def sqrtm(A, disp=None, blocksize=None):
    """The principal square root of one real matrix (compiler/primitives/scipy_linalg.py)."""
    if disp is not None or blocksize is not None:
        raise _unsupported("scipy.linalg.sqrtm with disp or blocksize", "they are deprecated; pass A only")
    return bind("sqrtm", _array(A))


def solve_sylvester(a, b, q):
    """X with aX + Xb = q, for one real matrix each (no batch axes)."""
    return bind("solve_sylvester", _array(a), _array(b), _array(q))


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """A linear solve with A in SciPy's banded storage (A[i, j] = ab[u + i - j, j]):
    A is spread into a dense matrix by indexing ab, and solved by np.linalg.solve,
    O(n^3) where SciPy's LAPACK banded solver is O(n); the same solution."""
    if _holds_tracer((l_and_u,), {}):
        raise _unsupported("scipy.linalg.solve_banded", "the numbers of diagonals (l, u) must be static")
    lower, upper = (int(v) for v in l_and_u)
    ab = _array(ab)
    if np.ndim(ab) != 2 or np.shape(ab)[0] != lower + upper + 1:
        raise ValueError(f"scipy.linalg.solve_banded: ab of shape {np.shape(ab)} does not hold l + u + 1 = "
                         f"{lower + upper + 1} diagonals")
    if np.ndim(b) not in (1, 2):
        raise _unsupported("scipy.linalg.solve_banded", f"b must be a vector or a matrix, not {np.ndim(b)}-d")
    rows, cols = np.indices((np.shape(ab)[1],) * 2)
    diagonal = upper + rows - cols
    inside = (diagonal >= 0) & (diagonal <= lower + upper)
    dense = np.where(inside, ab[np.clip(diagonal, 0, lower + upper), cols], 0)
    return np.linalg.solve(dense, b)


# --- scipy.signal -----------------------------------------------------------------

def _full_convolution(in1, in2):
    """The full n-d convolution as one 1-d np.convolve (a traced primitive): both
    arrays embedded in the output's shape and flattened, row-major index sums of
    points that fit in the output carry no digit, so the flat convolution is the n-d
    one, flattened. Each is cut after its last entry (the lengths then add up to the
    output's size)."""
    if np.ndim(in1) == 1:
        return np.convolve(in1, in2)
    full = tuple(n1 + n2 - 1 for n1, n2 in zip(np.shape(in1), np.shape(in2)))

    def embedded(v):
        shape = np.shape(v)
        flat = np.reshape(np.pad(v, [(0, f - n) for f, n in zip(full, shape)]), (-1,))
        return flat[:np.ravel_multi_index(tuple(n - 1 for n in shape), full) + 1]

    return np.reshape(np.convolve(embedded(in1), embedded(in2)), full)


def convolve(in1, in2, mode="full", method="auto"):
    """scipy.signal.convolve of real arrays for every `method` (they differ only in rounding)."""
    in1, in2 = _array(in1), _array(in2)
    if mode not in ("full", "same", "valid"):
        raise ValueError("scipy.signal.convolve: acceptable mode flags are 'valid', 'same', or 'full'")
    if np.ndim(in1) != np.ndim(in2):
        raise ValueError("scipy.signal.convolve: in1 and in2 should have the same dimensionality")
    if np.ndim(in1) == 0:
        return in1 * in2
    s1, s2 = np.shape(in1), np.shape(in2)
    if mode == "valid" and not (all(map(int.__ge__, s1, s2)) or all(map(int.__ge__, s2, s1))):
        raise ValueError("scipy.signal.convolve: for 'valid' mode, one must be at least as large as the other "
                         "in every dimension")
    full = _full_convolution(in1, in2)
    kept = s1 if mode == "same" else tuple(abs(n1 - n2) + 1 for n1, n2 in zip(s1, s2)) if mode == "valid" else None
    if kept is None:
        return full
    starts = [(f - k) // 2 for f, k in zip(np.shape(full), kept)]  # SciPy's `_centered`
    return full[tuple(slice(start, start + k) for start, k in zip(starts, kept))]


def correlate(in1, in2, mode="full", method="auto"):
    """scipy.signal.correlate of real arrays: the convolution with in2 reversed."""
    in2 = _array(in2)
    return convolve(in1, in2[(slice(None, None, -1),) * np.ndim(in2)], mode, method)


_METHODS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")
_DISCRETE_METHODS = ("logpmf", "pmf", "cdf", "logcdf", "sf", "logsf")
_DISTRIBUTIONS: dict[str, Callable[..., Any]] = {
    "norm": _norm, "t": _t, "gamma": _gamma, "chi2": _chi2, "beta": _beta, "poisson": _poisson,
}

# what traces, for docs/numpy-support.md
SUPPORTED = (
    *(f"scipy.special.{name}" for name in ("logsumexp", "softmax", "log_softmax", "polygamma", "multigammaln")),
    *(f"scipy.stats.{name}.{method}" for name in ("norm", "t", "gamma", "chi2", "beta") for method in _METHODS),
    *(f"scipy.stats.poisson.{method}" for method in _DISCRETE_METHODS),
    *(f"scipy.stats.{name}.{method}" for name in ("multivariate_normal", "dirichlet") for method in ("logpdf", "pdf")),
    *(f"scipy.linalg.{name}" for name in ("sqrtm", "solve_sylvester", "solve_banded")),
    *(f"scipy.signal.{name}" for name in ("convolve", "correlate")),
)


def _unsupported(name: str, reason: str = "it has no closed form in traceable NumPy") -> UnsupportedError:
    return at_user_line(
        UnsupportedError,
        f"{name} on traced values is not supported ({reason}); compute it outside the differentiated "
        "function, or write the formula with NumPy and scipy.special's ufuncs (gammaln, xlogy, ndtr, ...), "
        "which trace",
    )


def _dispatching(original: Callable, traced: Callable) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        if _holds_tracer(args, kwargs):
            return traced(*args, **kwargs)
        return original(*args, **kwargs)

    return call


# The dispatchers, by the key a trampoline's code names; SciPy's module globals hold
# this table under _TABLE_NAME, where the trampolines look it up.
_DISPATCHERS: dict[str, Callable] = {}
_TABLE_NAME = "__adjoint_dispatchers__"
_KEY = "<key>"


@functools.lru_cache(maxsize=None)
def _trampoline(free: int) -> types.CodeType:
    """The code of `def f(*args, **kwargs): return __adjoint_dispatchers__["<key>"](...)`
    with `free` free variables (a function's code can only be swapped for code that
    takes as many closure cells; the trampoline reads them and ignores them)."""
    names = [f"cell{k}" for k in range(free)]
    source = "def outer():\n" + "".join(f"    {name} = None\n" for name in names) + (
        "    def trampoline(*args, **kwargs):\n"
        + (f"        ({', '.join(names)},)\n" if names else "")
        + f"        return {_TABLE_NAME}[{_KEY!r}](*args, **kwargs)\n"
        "    return trampoline\n")
    namespace: dict[str, Any] = {}
    exec(compile(source, __file__, "exec"), namespace)
    return namespace["outer"]().__code__


def _make_dispatch(function: Callable, traced: Callable) -> None:
    """Make SciPy's `function` dispatch on tracers, in place: every reference to it,
    however early it was bound, now traces. Its code runs on from a copy (the
    `__wrapped__` that `inspect.signature` and untraced calls read)."""
    if hasattr(function, "__adjoint_original__"):
        return
    original = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                                  function.__defaults__, function.__closure__)
    original.__kwdefaults__ = function.__kwdefaults__
    original.__dict__.update(function.__dict__)  # a decorator's own __wrapped__, for inspect.signature
    original.__qualname__, original.__module__, original.__doc__ = (
        function.__qualname__, function.__module__, function.__doc__)
    key = f"{function.__module__}.{function.__qualname__}"
    _DISPATCHERS[key] = _dispatching(original, traced)
    function.__globals__[_TABLE_NAME] = _DISPATCHERS
    trampoline = _trampoline(len(function.__code__.co_freevars))
    consts = tuple(key if c == _KEY else c for c in trampoline.co_consts)
    function.__code__ = trampoline.replace(co_consts=consts, co_name=function.__code__.co_name,
                                           co_qualname=function.__code__.co_qualname)
    function.__defaults__ = function.__kwdefaults__ = None
    function.__wrapped__ = function.__adjoint_original__ = original


def _distribution_method(method: str) -> Callable:
    """rv_continuous.<method>(self, x, *args, **kwds) for the distributions in the table."""

    def traced(self, *args: Any, **kwargs: Any) -> Any:
        formula = _DISTRIBUTIONS.get(getattr(self, "name", None))
        if formula is None:
            names = ", ".join([*_DISTRIBUTIONS, *_MULTIVARIATE])
            raise _unsupported(f"scipy.stats.{getattr(self, 'name', type(self).__name__)}.{method}",
                               f"adjoint traces scipy.stats {names} only")
        result = formula(method, *args, **kwargs)
        if result is None:
            raise _unsupported(f"scipy.stats.{self.name}.{method}")
        return result

    return traced


# multivariate distributions: the formula, and the parameters a frozen one holds
_MULTIVARIATE: dict[str, tuple[Callable[..., Any], Callable[[Any], dict]]] = {
    "multivariate_normal": (_multivariate_normal,
                            lambda self: {"mean": self.mean, "cov": self.cov, "allow_singular": self.allow_singular}),
    "dirichlet": (_dirichlet, lambda self: {"alpha": self.alpha}),
}


def _multivariate_method(name: str, method: str, frozen: bool) -> Callable:
    formula, parameters = _MULTIVARIATE[name]

    def traced(self, x, *args: Any, **kwargs: Any) -> Any:
        if frozen:
            args, kwargs = (), parameters(self)
        result = formula(method, x, *args, **kwargs)
        if result is None:
            raise _unsupported(f"scipy.stats.{name}.{method} with this covariance")
        return result

    return traced


def dispatch_functions(module: ModuleType, functions: dict[str, Callable]) -> None:
    """Make each of `module`'s functions `name` dispatch to `functions[name]` on traced values."""
    for name, traced in functions.items():
        function = getattr(module, name, None)
        if isinstance(function, types.FunctionType):
            _make_dispatch(function, traced)


def _install_special(module: ModuleType) -> None:
    dispatch_functions(module, {"logsumexp": logsumexp, "softmax": softmax, "log_softmax": log_softmax,
                                 "polygamma": polygamma, "multigammaln": multigammaln})


def _install_stats(module: ModuleType) -> None:
    from scipy.stats import _distn_infrastructure, _multivariate  # loaded with scipy.stats

    for generic, methods in ((_distn_infrastructure.rv_continuous, _METHODS),
                             (_distn_infrastructure.rv_discrete, _DISCRETE_METHODS)):
        for method in methods:
            _make_dispatch(getattr(generic, method), _distribution_method(method))
    for name in _MULTIVARIATE:
        for suffix, frozen in (("_gen", False), ("_frozen", True)):
            for method in ("logpdf", "pdf"):
                _make_dispatch(getattr(getattr(_multivariate, name + suffix), method),
                               _multivariate_method(name, method, frozen))


def _install_linalg(module: ModuleType) -> None:
    dispatch_functions(module, {"sqrtm": sqrtm, "solve_banded": solve_banded, "solve_sylvester": solve_sylvester})


def _install_signal(module: ModuleType) -> None:
    dispatch_functions(module, {"convolve": convolve, "correlate": correlate})


_INSTALLERS: dict[str, Callable[[ModuleType], None]] = {
    "scipy.special": _install_special, "scipy.stats": _install_stats, "scipy.linalg": _install_linalg,
    "scipy.signal": _install_signal,
}
_LOCK = threading.Lock()


def _install(name: str) -> None:
    module = sys.modules.get(name)
    if module is not None:
        with _LOCK:
            _INSTALLERS[name](module)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Installs the wrappers right after scipy.special or scipy.stats finishes loading,
    before any `from scipy.special import ...` can bind the originals."""

    def find_spec(self, fullname: str, path: Any, target: Optional[ModuleType] = None) -> Any:
        if fullname not in _INSTALLERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _InstallingLoader(spec.loader)
                return spec
        return None


class _InstallingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        with _LOCK:
            _INSTALLERS[module.__name__](module)


def add_installer(name: str, installer: Callable[[ModuleType], None]) -> None:
    """Make SciPy module `name`'s functions dispatch with `installer` when it loads (at
    once, if it has): how a higher layer (compiler.ode) adds SciPy functions."""
    _INSTALLERS[name] = installer
    _install(name)


for _name in _INSTALLERS:
    _install(_name)
if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterImport())

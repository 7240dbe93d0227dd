"""SciPy's Python functions on traced values: a table of the callables models use
most, each with its meaning written in traceable NumPy.

`scipy.special.logsumexp / softmax / log_softmax` and the densities and
distribution functions of `scipy.stats.norm`, `t` and `multivariate_normal` start
with `np.asarray(x)`, which a traced value cannot answer. For those, SciPy's public
objects are given dispatching wrappers when SciPy's modules load: a call whose
arguments hold no tracer runs SciPy's own function, unchanged (one scan of the
arguments is the whole cost); a call with a tracer computes the same value from the
formulas below, so it traces, differentiates and prints as NumPy. The wrappers keep
no state, so threads share them safely. Nothing here imports SciPy: the wrappers are
installed by an import hook when the user's program imports scipy.special or
scipy.stats (at once, if it already has), and cost nothing when SciPy is absent.

A module that bound `logsumexp` by `from scipy.special import logsumexp` before
adjoint was imported keeps SciPy's original; a traced call there gets the advice of
compiler/numpy_functions/scipy_functions.py, which names the replacement.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import math
import sys
import threading
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


def _multivariate_normal(method: str, x, mean=None, cov=1, allow_singular=False):
    if method not in ("logpdf", "pdf"):
        return None
    if np.ndim(cov) < 2:
        return None  # a scalar or diagonal covariance: SciPy's own broadcasting rules, not repeated here
    d = x if mean is None else x - mean
    solved = np.linalg.solve(cov, np.swapaxes(np.atleast_2d(d), -1, -2))
    mahalanobis = np.sum(np.atleast_2d(d) * np.swapaxes(solved, -1, -2), axis=-1)
    logpdf = np.squeeze(-0.5 * (mahalanobis + np.linalg.slogdet(cov)[1] + np.shape(cov)[-1] * _LOG_2PI))  # as SciPy
    return logpdf if method == "logpdf" else np.exp(logpdf)


_METHODS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")
_DISTRIBUTIONS: dict[str, Callable[..., Any]] = {"norm": _norm, "t": _t}

# what traces, for docs/numpy-support.md
SUPPORTED = (
    *(f"scipy.special.{name}" for name in ("logsumexp", "softmax", "log_softmax")),
    *(f"scipy.stats.norm.{method}" for method in _METHODS),
    *(f"scipy.stats.t.{method}" for method in _METHODS),
    *(f"scipy.stats.multivariate_normal.{method}" for method in ("logpdf", "pdf")),
)


def _unsupported(name: str, reason: str = "it has no closed form in traceable NumPy") -> UnsupportedError:
    return at_user_line(
        UnsupportedError,
        f"{name} on traced values is not supported ({reason}); compute it outside the differentiated "
        "function, or write the formula with NumPy and scipy.special's ufuncs (gammaln, xlogy, ndtr, ...), "
        "which trace",
    )


def _dispatching(original: Callable, traced: Callable) -> Callable:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _holds_tracer(args, kwargs):
            return traced(*args, **kwargs)
        return original(*args, **kwargs)

    call.__adjoint_original__ = original
    return call


def _distribution_method(method: str, original: Callable) -> Callable:
    """rv_continuous.<method>(self, x, *args, **kwds) for the distributions in the table."""

    def traced(self, *args: Any, **kwargs: Any) -> Any:
        formula = _DISTRIBUTIONS.get(getattr(self, "name", None))
        if formula is None:
            raise _unsupported(f"scipy.stats.{getattr(self, 'name', type(self).__name__)}.{method}",
                               "adjoint traces scipy.stats.norm, t and multivariate_normal only")
        result = formula(method, *args, **kwargs)
        if result is None:
            raise _unsupported(f"scipy.stats.{self.name}.{method}")
        return result

    return _dispatching(original, traced)


def _multivariate_method(method: str, original: Callable, frozen: bool) -> Callable:
    def traced(self, x, *args: Any, **kwargs: Any) -> Any:
        if frozen:
            args, kwargs = (self.mean, self.cov), {}
        result = _multivariate_normal(method, x, *args, **kwargs)
        if result is None:
            raise _unsupported(f"scipy.stats.multivariate_normal.{method} with this covariance")
        return result

    return _dispatching(original, traced)


def _install_special(module: ModuleType) -> None:
    for name, traced in (("logsumexp", logsumexp), ("softmax", softmax), ("log_softmax", log_softmax)):
        original = getattr(module, name, None)
        if original is not None and not hasattr(original, "__adjoint_original__"):
            setattr(module, name, _dispatching(original, traced))


def _install_stats(module: ModuleType) -> None:
    from scipy.stats import _distn_infrastructure, _multivariate  # loaded with scipy.stats

    generic = _distn_infrastructure.rv_continuous
    for method in _METHODS:
        original = getattr(generic, method)
        if not hasattr(original, "__adjoint_original__"):
            setattr(generic, method, _distribution_method(method, original))
    for cls, frozen in ((_multivariate.multivariate_normal_gen, False), (_multivariate.multivariate_normal_frozen, True)):
        for method in ("logpdf", "pdf"):
            original = getattr(cls, method)
            if not hasattr(original, "__adjoint_original__"):
                setattr(cls, method, _multivariate_method(method, original, frozen))


_INSTALLERS: dict[str, Callable[[ModuleType], None]] = {"scipy.special": _install_special, "scipy.stats": _install_stats}
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


for _name in _INSTALLERS:
    _install(_name)
if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterImport())

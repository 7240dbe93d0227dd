"""SciPy's Python functions on traced values that cannot trace: what to write instead.

scipy.special's ufuncs trace like NumPy's (compiler/primitives/scipy_special.py), and
the Python functions models call most (`scipy.special.logsumexp`, `scipy.stats.norm
.logpdf`, ...) trace through the wrappers of compiler/scipy_dispatch.py. Any other
SciPy function (or one a module bound by name before adjoint was loaded) starts with
`np.asarray(x)` on the traced value, which `Tracer.__array__` cannot answer. This
module says what to do then: `scipy_advice` finds the SciPy function the user's line
called (the outermost SciPy frame on the stack below the user's frame), names it as
the user knows it (`scipy.stats.norm.logpdf`, not a line inside SciPy) and spells
the replacement with the user's own arguments: `runtime.nn.logsumexp(z, axis=1)`,
or the density's formula in NumPy and traceable scipy.special ufuncs.
compiler/concretization.py asks it (through `ADVISORS`) when a traced value meets
`__array__`, `float()` and the like.

Nothing here imports SciPy: frames are recognised by their file, under the
directory `importlib.util.find_spec("scipy")` reports (found, never imported).
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import linecache
import os
import sys
from types import FrameType
from typing import Any, Callable, Optional

from compiler import concretization
from compiler.errors import source_line


@functools.lru_cache(maxsize=1)
def scipy_dir() -> Optional[str]:
    """SciPy's package directory, or None when SciPy is not installed."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(os.path.abspath(spec.origin))


_WRAPPERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scipy_dispatch.py")


def is_scipy(frame: FrameType, wrappers: bool = True) -> bool:
    """A frame of SciPy's code, or (with `wrappers`) of compiler/scipy_dispatch.py's
    wrappers, which stand between the user's line and the SciPy function it called."""
    root = scipy_dir()
    path = os.path.abspath(frame.f_code.co_filename)
    return root is not None and (path.startswith(root + os.sep) or wrappers and path == _WRAPPERS)


def scipy_entry(user: FrameType, start: Optional[FrameType] = None) -> Optional[FrameType]:
    """The outermost SciPy frame among those `user` called that are still running
    (walking out from `start`, default the caller): the SciPy function the user's
    line called, or None when no SciPy frame lies between."""
    frame, entry = start or sys._getframe(1), None
    while frame is not None and frame is not user:
        if is_scipy(frame, wrappers=False):
            entry = frame
        frame = frame.f_back
    return entry if frame is user else None


def user_of(frame: FrameType) -> FrameType:
    """`frame` itself, or, for a SciPy frame, the first frame outside SciPy that led to it."""
    while frame.f_back is not None and is_scipy(frame):
        frame = frame.f_back
    return frame


def _class_names(obj: Any) -> list[str]:
    return [cls.__name__ for cls in type(obj).__mro__]


def public_name(entry: FrameType) -> tuple[str, str, bool]:
    """(`scipy.stats.norm.logpdf` as the user spells it, the key of the advice
    table, whether the callee is a frozen distribution)."""
    module = entry.f_globals.get("__name__", "scipy")
    package = ".".join(part for part in module.split(".") if not part.startswith("_")) or "scipy"
    method = entry.f_code.co_name
    owner = entry.f_locals.get("self")
    if owner is None:
        name = f"{package}.{method}"
        return name, name, False
    classes = _class_names(owner)
    frozen = "rv_frozen" in classes or "multi_rv_frozen" in classes
    dist = getattr(owner, "dist", owner) if frozen and "rv_frozen" in classes else owner
    label = getattr(dist, "name", None) if "rv_generic" in _class_names(dist) else None
    if label is None:
        label = type(dist).__name__.removesuffix("_frozen").removesuffix("_gen")
    key = f"{package}.{label}.{method}"
    return (f"{package}.{label}(...).{method}" if frozen else key), key, frozen


# --- replacements, built as expressions so that ast.unparse adds the parentheses ---

def _e(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


def _call(fn: str, *args: ast.expr, **kwargs: ast.expr) -> ast.expr:
    return ast.Call(_e(fn), list(args), [ast.keyword(k, v) for k, v in kwargs.items()])


def _bin(a: ast.expr, op: ast.operator, b: ast.expr) -> ast.expr:
    return ast.BinOp(a, op, b)


def _num(value: float) -> ast.expr:
    return ast.Constant(value)


def _standardized(x: ast.expr, loc: Optional[ast.expr], scale: Optional[ast.expr]) -> ast.expr:
    z = x if loc is None else _bin(x, ast.Sub(), loc)
    return z if scale is None else _bin(z, ast.Div(), scale)


_LOG_2PI = _e("np.log(2 * np.pi)")


def _norm(method: str, a: dict) -> Optional[ast.expr]:
    z = _standardized(a["x"], a.get("loc"), a.get("scale"))
    if method in ("logpdf", "pdf"):
        logpdf = _bin(_bin(_num(-0.5), ast.Mult(), _bin(z, ast.Pow(), _num(2))), ast.Sub(),
                      _bin(_num(0.5), ast.Mult(), _LOG_2PI))
        if a.get("scale") is not None:
            logpdf = _bin(logpdf, ast.Sub(), _call("np.log", a["scale"]))
        return logpdf if method == "logpdf" else _call("np.exp", logpdf)
    if method in ("cdf", "logcdf", "sf", "logsf"):
        arg = z if method in ("cdf", "logcdf") else ast.UnaryOp(ast.USub(), z)
        return _call("scipy.special.ndtr" if method in ("cdf", "sf") else "scipy.special.log_ndtr", arg)
    return None


def _t(method: str, a: dict) -> Optional[ast.expr]:
    if method not in ("logpdf", "pdf") or "df" not in a:
        return None
    df, z = a["df"], _standardized(a["x"], a.get("loc"), a.get("scale"))
    half_up = _bin(_bin(df, ast.Add(), _num(1)), ast.Div(), _num(2))
    logpdf = _bin(_call("scipy.special.gammaln", half_up), ast.Sub(),
                  _call("scipy.special.gammaln", _bin(df, ast.Div(), _num(2))))
    logpdf = _bin(logpdf, ast.Sub(), _bin(_num(0.5), ast.Mult(), _call("np.log", _bin(df, ast.Mult(), _e("np.pi")))))
    if a.get("scale") is not None:
        logpdf = _bin(logpdf, ast.Sub(), _call("np.log", a["scale"]))
    tail = _call("np.log1p", _bin(_bin(z, ast.Pow(), _num(2)), ast.Div(), df))
    logpdf = _bin(logpdf, ast.Sub(), _bin(half_up, ast.Mult(), tail))
    return logpdf if method == "logpdf" else _call("np.exp", logpdf)


def _multivariate_normal(method: str, a: dict) -> Optional[ast.expr]:
    if method not in ("logpdf", "pdf") or "cov" not in a:
        return None
    cov = a["cov"]
    d = a["x"] if a.get("mean") is None else _bin(a["x"], ast.Sub(), a["mean"])
    transposed = ast.Attribute(d, "T", ast.Load())
    solved = ast.Attribute(_call("np.linalg.solve", cov, transposed), "T", ast.Load())
    mahalanobis = _call("np.sum", _bin(d, ast.Mult(), solved), axis=_num(-1))
    logdet = ast.Subscript(_call("np.linalg.slogdet", cov), _num(1), ast.Load())
    k = ast.Subscript(ast.Attribute(cov, "shape", ast.Load()), _num(-1), ast.Load())
    total = _bin(_bin(mahalanobis, ast.Add(), logdet), ast.Add(), _bin(k, ast.Mult(), _LOG_2PI))
    logpdf = _bin(_num(-0.5), ast.Mult(), total)
    return logpdf if method == "logpdf" else _call("np.exp", logpdf)


def _lse_axis(a: dict) -> dict:
    return {k: a[k] for k in ("axis", "keepdims") if a.get(k) is not None}


def _logsumexp(method: str, a: dict) -> Optional[ast.expr]:
    if a.get("return_sign") is not None:
        return None
    x = a["a"] if a.get("b") is None else _bin(a["a"], ast.Add(), _call("np.log", a["b"]))  # b > 0
    return _call("runtime.nn.logsumexp", x, **_lse_axis(a))


def _is_one_axis(axis: Optional[ast.expr]) -> bool:
    return isinstance(axis, (ast.Constant, ast.Name, ast.UnaryOp))


def _softmax(method: str, a: dict) -> ast.expr:
    x, axis = a["x"], a.get("axis")
    if _is_one_axis(axis):
        return _call(f"runtime.nn.{method}", x, axis=axis)
    kept = {"axis": axis, "keepdims": ast.Constant(True)} if axis is not None else {}
    log = _bin(x, ast.Sub(), _call("runtime.nn.logsumexp", x, **kept))
    return log if method == "log_softmax" else _call("np.exp", log)


# key -> (parameter names in SciPy's order, builder(method, {name: argument expr}))
_DISTRIBUTIONS = ("logpdf", "pdf", "cdf", "logcdf", "sf", "logsf")
REPLACEMENTS: dict[str, tuple[tuple[str, ...], Callable[[str, dict], Optional[ast.expr]]]] = {
    "scipy.special.logsumexp": (("a", "axis", "b", "keepdims", "return_sign"), _logsumexp),
    "scipy.special.softmax": (("x", "axis"), _softmax),
    "scipy.special.log_softmax": (("x", "axis"), _softmax),
    **{f"scipy.stats.norm.{m}": (("x", "loc", "scale"), _norm) for m in _DISTRIBUTIONS},
    **{f"scipy.stats.t.{m}": (("x", "df", "loc", "scale"), _t) for m in _DISTRIBUTIONS},
    **{f"scipy.stats.multivariate_normal.{m}": (("x", "mean", "cov"), _multivariate_normal)
       for m in _DISTRIBUTIONS},
}

_FUSED_INSTEAD = {
    "scipy.special.logsumexp": "runtime.nn.logsumexp(x, axis=..., keepdims=...)",
    "scipy.special.softmax": "runtime.nn.softmax(x, axis=...)",
    "scipy.special.log_softmax": "runtime.nn.log_softmax(x, axis=...)",
}

# table entries compiler/scipy_dispatch.py refuses too: no closed form to trace
_WITHOUT_FORMULA = {f"scipy.stats.multivariate_normal.{m}" for m in ("cdf", "logcdf", "sf", "logsf")}


def _call_text(frame: FrameType) -> str:
    """The source of the expression `frame` is executing (the call into SciPy), from
    the code's positions where Python records them (3.11+; they span lines), else
    the whole line."""
    code, lasti = frame.f_code, frame.f_lasti
    positions = list(code.co_positions()) if hasattr(code, "co_positions") and lasti >= 0 else []
    if lasti // 2 < len(positions) and None not in positions[lasti // 2]:
        start, end, col, end_col = positions[lasti // 2]
        lines = [line.encode() for line in linecache.getlines(code.co_filename)[start - 1:end]]
        if len(lines) == end - start + 1:
            lines[-1] = lines[-1][:end_col]
            lines[0] = lines[0][col:]
            return b"".join(lines).decode(errors="replace")
    return source_line(code.co_filename, frame.f_lineno)


def _user_call(frame: FrameType, method: str) -> Optional[ast.Call]:
    """The call the user's frame is making whose callee ends in `.method` (or is `method`)."""
    text = _call_text(frame).strip()
    try:
        tree = ast.parse(f"(\n{text}\n)", mode="eval")
    except SyntaxError:  # the position spans less than an expression: try the line
        try:
            tree = ast.parse(source_line(frame.f_code.co_filename, frame.f_lineno).removesuffix(":"))
        except SyntaxError:
            return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name == method:
                return node
    return None


def _arguments(call: Optional[ast.Call], names: tuple[str, ...], frozen: bool) -> Optional[dict]:
    """The user's arguments by SciPy's parameter names; generic names for a frozen
    distribution (its parameters were given when it was made)."""
    if frozen or call is None:
        return {n: _e(n) for n in names} if frozen else None
    if any(isinstance(arg, ast.Starred) for arg in call.args) or any(k.arg is None for k in call.keywords):
        return None
    if len(call.args) > len(names):
        return None
    given = dict(zip(names, call.args))
    for keyword in call.keywords:
        if keyword.arg not in names:
            return None
        given[keyword.arg] = keyword.value
    return given


def replacement(user: FrameType, entry: FrameType) -> tuple[str, Optional[str]]:
    """(the SciPy function as the user knows it, the code to write instead or None)."""
    name, key, frozen = public_name(entry)
    method = key.rsplit(".", 1)[-1]
    known = REPLACEMENTS.get(key)
    if known is None:
        return name, None
    names, build = known
    args = _arguments(_user_call(user, method), names, frozen)
    if args is None or names[0] not in args:
        return name, None
    expr = build(method, args)
    return name, None if expr is None else ast.unparse(expr)


def scipy_advice(frame: Optional[FrameType], value: Any = None) -> Optional[tuple[str, str]]:
    """(what was needed, what to write instead) when the traced value met NumPy
    inside a SciPy function called from the user's `frame`, else None."""
    if frame is None or scipy_dir() is None:
        return None
    user = user_of(frame)
    entry = scipy_entry(user, sys._getframe(1))
    if entry is None:
        return None
    name, instead = replacement(user, entry)
    what = f"a concrete array ({name} converts its arguments to NumPy arrays)"
    key = public_name(entry)[1]
    early = (" This one traces when called through SciPy's module after adjoint is loaded: import compiler "
             "before binding it by name (`from scipy.special import logsumexp`), or call it as "
             "`scipy.special.logsumexp(...)`." if key in REPLACEMENTS and key not in _WITHOUT_FORMULA else "")
    if instead is not None:
        return what, (f"SciPy's Python functions cannot be traced (its scipy.special ufuncs can): "
                      f"write `{instead}` instead.{early}")
    if name in _FUSED_INSTEAD:
        return what, f"SciPy's Python functions cannot be traced: write `{_FUSED_INSTEAD[name]}` instead.{early}"
    method = name.rsplit(".", 1)[-1]
    reason = " (it has no closed form in traceable NumPy)" if key in _WITHOUT_FORMULA else ""
    return what, (f"SciPy's Python functions cannot be traced{reason}: write it with NumPy operations and "
                  "scipy.special ufuncs (erf, ndtr, log_ndtr, gammaln, xlogy, expit, ...), which trace, "
                  "or compute it outside the compiled function and pass the result in.")


concretization.ADVISORS.append(scipy_advice)

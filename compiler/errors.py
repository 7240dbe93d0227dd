"""Error classes for user mistakes, and the user frame they are reported at.

Every error a user can cause derives from `AdjointError`. Messages name the user's
file and line (the innermost frame outside the compiler, NumPy and the runtime
library) and say what to do instead.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import linecache
import os
import sys
import tokenize
from types import FrameType
from typing import Optional

_COMPILER_DIR = os.path.dirname(os.path.abspath(__file__))
_RUNTIME_DIR = os.path.join(os.path.dirname(_COMPILER_DIR), "runtime")
_NUMPY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__import__("numpy").__file__)))
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__))
_FUSED_FILE = os.path.join(_RUNTIME_DIR, "fused.py")  # dispatch plumbing, never a user's line
_NETWORKX_DIR = os.path.dirname(os.path.abspath(__import__("networkx").__file__))  # the IR's graph library


def _package_dir(name: str) -> Optional[str]:
    """An installed package's directory, found without importing it; None when absent."""
    spec = importlib.util.find_spec(name)
    return os.path.dirname(os.path.abspath(spec.origin)) if spec is not None and spec.origin else None


# SciPy's frames are never the user's line: a traced value refused inside
# scipy.stats.norm.logpdf is reported at the user's call of it.
_SCIPY_DIR = _package_dir("scipy")


class AdjointError(Exception):
    """Base class of every error adjoint raises for a user's mistake."""


class TracingError(AdjointError):
    """The function cannot be traced into a static graph (data-dependent control flow)."""


class UnsupportedError(AdjointError):
    """The function uses a NumPy function or feature adjoint does not support."""


class ShapeError(AdjointError):
    """Operands of an operation have incompatible shapes."""


class UnsupportedAttributeError(UnsupportedError, AttributeError):
    """An array attribute or method that traced values do not have (still an
    AttributeError, so `hasattr` and `getattr(x, name, default)` keep working)."""


class UnsizedError(ShapeError, TypeError):
    """`len()` of a 0-d traced value (a TypeError, as for a 0-d NumPy array)."""


class GradError(AdjointError):
    """The gradient request itself is invalid (argnums, non-scalar output, int input)."""


class ArgumentError(AdjointError, TypeError):
    """A compiled function was called with arguments its Python function does not take."""


class SolverError(AdjointError, RuntimeError):
    """A solver the compiled code calls (scipy.integrate.solve_ivp) failed when it ran."""


class NonFiniteError(AdjointError, FloatingPointError):
    """Under `debug_nans`, a computed value held a NaN or an infinity."""


@functools.lru_cache(maxsize=None)
def is_internal(filename: str) -> bool:
    """True for frames of the compiler itself, NumPy, functools and similar plumbing."""
    path = os.path.abspath(filename)
    return (
        path == _FUSED_FILE
        or path.startswith(_COMPILER_DIR + os.sep)
        or path.startswith(_NETWORKX_DIR + os.sep)
        or path.startswith(os.path.join(_NUMPY_DIR, "numpy") + os.sep)
        or (path.startswith(_STDLIB_DIR + os.sep) and "site-packages" not in path)
        or filename.startswith("<frozen")
    )


@functools.lru_cache(maxsize=None)
def is_library(filename: str) -> bool:
    """True for compiler, NumPy, runtime and SciPy frames: never the user's own line."""
    path = os.path.abspath(filename)
    return (
        is_internal(filename)
        or path.startswith(_RUNTIME_DIR + os.sep)
        or (_SCIPY_DIR is not None and path.startswith(_SCIPY_DIR + os.sep))
    )


def user_frame() -> Optional[FrameType]:
    """The innermost frame on the stack that belongs to the user."""
    frame = sys._getframe(1)
    while frame is not None and is_library(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def where(frame: Optional[FrameType]) -> str:
    """`file.py:LINE` for a frame, or a placeholder when there is none."""
    if frame is None:
        return "<unknown>"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def source_line(filename: str, line: int) -> str:
    """The code on one line of a user's file, without indentation or a trailing comment."""
    text = linecache.getline(filename, line).strip()
    if "#" not in text:
        return text
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                return text[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # a fragment of a longer statement
        pass
    return text


def definition_site(fn) -> str:
    """`file.py:LINE` of a function's `def`, or a placeholder."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"


def at_user_line(cls: type[AdjointError], message: str) -> AdjointError:
    """An error of class `cls` whose message starts with the user's file and line."""
    return cls(f"{where(user_frame())}: {message}")


def api_boundary(fn):
    """Decorate a public entry point: an AdjointError leaves it with the internal
    frames cut, so the user sees their own call and the message naming their line."""

    @functools.wraps(fn)
    def boundary(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AdjointError as err:
            raise err.with_traceback(None) from None

    return boundary

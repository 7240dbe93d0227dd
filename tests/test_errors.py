"""User mistakes are reported at the user's line, in the user's terms.

Each error is an `AdjointError` subclass whose message starts with this file's name
and the line of the mistake (found by the `# <-` marker comment on it), says what to do
instead, and whose traceback holds no compiler frames beyond the one public boundary
frame in compiler/api.py.
"""
import os
import re
import traceback
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler import AdjointError, GradError, ShapeError, TracingError, UnsupportedError, grad, value_and_grad

THIS = Path(__file__).resolve()
LINES = THIS.read_text().splitlines()
COMPILER_DIR = str(Path(compiler.__file__).resolve().parent) + os.sep


def line_of(marker: str) -> int:
    """The line of this file carrying `# <- marker`."""
    hits = [k for k, line in enumerate(LINES, 1) if line.rstrip().endswith(f"# <- {marker}")]
    assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
    return hits[0]


def check(excinfo, cls, marker: str, *phrases: str) -> str:
    """The error is a `cls` at the marked line naming `phrases`, with a clean traceback."""
    err = excinfo.value
    assert isinstance(err, cls) and isinstance(err, AdjointError), type(err)
    message = str(err)
    assert message.startswith(f"{THIS.name}:{line_of(marker)}: "), message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    compiler_frames = [f for f in traceback.extract_tb(excinfo.tb) if f.filename.startswith(COMPILER_DIR)]
    assert len(compiler_frames) <= 1, [f"{f.filename}:{f.lineno}" for f in compiler_frames]
    boundary = tuple(os.path.join("compiler", name) for name in ("api.py", "errors.py", "step.py", "tracing.py"))
    assert all(f.filename.endswith(boundary) for f in compiler_frames)
    assert err.__cause__ is None
    return message


# --- concrete values of traced data --------------------------------------------------

def test_decisions_on_traced_values_are_taken_per_call_and_guarded():
    """`if`, `while` and conversions on traced values work (tests/test_control_flow.py
    has the rest); the truth of an array of several elements is refused at the
    user's line, with the np.where advice."""
    def f(a):
        if a > 0:
            return a
        return -a

    assert grad(f)(1.0) == 1.0 and grad(f)(-1.0) == -1.0
    assert "PathMiss('test_errors.py:" in grad(f).source(1.0)

    def g(x):
        if x > 0:  # <- array if
            return np.sum(x)
        return -np.sum(x)

    with pytest.raises(TracingError) as excinfo:
        grad(g)(np.ones(2))
    check(excinfo, TracingError, "array if", "is traced", "np.where(x > 0, ")


@pytest.mark.parametrize("convert, arg, expected", [
    (lambda x: x * float(x), 2.0, 2.0),  # a Python number: a constant to the derivative (as in PyTorch)
    (lambda x: x * int(x), 2.5, 2.0),
    (lambda x: x * x.item(), 3.0, 3.0),
    (lambda x: np.sum(x[: int(np.sum(x))]), np.ones(3), np.ones(3)),
], ids=["float", "int", "item", "slice"])
def test_conversions_of_traced_values(convert, arg, expected):
    np.testing.assert_array_equal(grad(convert)(arg), expected)


@pytest.mark.parametrize("convert, arg, marker, phrase", [
    (lambda x: np.sum(np.asarray(x)), np.ones(3), "asarray", "np.asarray"),  # <- asarray
    (lambda x: np.sum(np.array(x)), np.ones(3), "array", "np.asarray"),  # <- array
], ids=["asarray", "array"])
def test_concretizing_a_traced_value(convert, arg, marker, phrase):
    with pytest.raises(TracingError) as excinfo:
        grad(convert)(arg)
    message = check(excinfo, TracingError, marker, phrase, "is traced")
    assert "instead" in message or "not needed" in message or "NumPy operations" in message


# --- unsupported NumPy ---------------------------------------------------------------

def test_unsupported_function_names_it_and_close_supported_ones():
    def f(x):
        return np.sum(np.nancumsum(x))  # <- nancumsum

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones(3))
    message = check(excinfo, UnsupportedError, "nancumsum", "np.nancumsum is not supported")
    assert re.search(r"[Cc]lose supported ones: .*np\.sum", message), message


def test_unsupported_lexsort():
    def f(x):
        return np.sum(np.lexsort((x, x)) * x)  # <- lexsort

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, UnsupportedError, "lexsort", "np.lexsort is not supported", "supported")


def test_unsupported_ufunc():
    def f(x):
        return np.sum(np.spacing(x))  # <- spacing

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, UnsupportedError, "spacing", "np.spacing is not supported")


def test_unknown_attribute_is_an_adjoint_error_and_still_an_attribute_error():
    def f(x):
        return np.sum(x.byteswap())  # <- attribute

    with pytest.raises(AttributeError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, UnsupportedError, "attribute", "byteswap")


def test_assigning_into_a_traced_array_that_a_live_view_would_see():
    def f(x):
        y = x[0]
        x[0] = 1.0  # <- setitem
        return np.sum(x) + y

    with pytest.raises(UnsupportedError) as excinfo:
        grad(f)(np.ones(3))
    check(excinfo, UnsupportedError, "setitem", "is a view of", ".copy()")


# --- shapes ----------------------------------------------------------------------------

def test_shape_mismatch_names_both_shapes_and_the_op():
    def f(x, y):
        z = x + y  # <- broadcast
        return np.sum(z)

    with pytest.raises(ShapeError) as excinfo:
        grad(f)(np.ones(3), np.ones(4))
    check(excinfo, ShapeError, "broadcast", "np.add", "(3,)", "(4,)")


def test_matmul_mismatch_inside_a_helper_is_reported_at_the_helper_line():
    def layer(W, h):
        return W @ h  # <- matmul

    def f(W, x):
        return np.sum(layer(W, x))

    with pytest.raises(ShapeError) as excinfo:
        grad(f)(np.ones((2, 3)), np.ones(4))
    check(excinfo, ShapeError, "matmul", "np.matmul", "(2, 3)", "(4,)")


def test_len_of_a_scalar():
    def f(x):
        return x * len(x)  # <- len

    with pytest.raises(TypeError) as excinfo:
        grad(f)(1.0)
    check(excinfo, ShapeError, "len", "len()")


# --- the gradient request --------------------------------------------------------------

def test_non_scalar_output_names_the_shape():
    def f(x):
        return x * 2.0  # <- vector output

    with pytest.raises(GradError) as excinfo:
        grad(f)(np.ones((2, 3)))
    check(excinfo, GradError, "vector output", "scalar", "float64[2,3]", "np.sum")


def test_argnums_out_of_range():
    def f(x, y):
        return x * y

    with pytest.raises(GradError) as excinfo:
        grad(f, argnums=2)(1.0, 2.0)  # <- out of range
    check(excinfo, GradError, "out of range", "argnums=2", "2 positional")


def test_differentiating_an_integer_array():
    def f(x, labels):
        return np.sum(x[labels])

    with pytest.raises(GradError) as excinfo:
        grad(f, argnums=1)(np.ones(3), np.array([0, 2]))  # <- int input
    check(excinfo, GradError, "int input", "labels", "int64", "argnums")


def test_differentiating_a_static_int():
    def f(x, n):
        return x * n

    with pytest.raises(GradError) as excinfo:
        value_and_grad(f, argnums=(0, 1))(2.0, 3)  # <- static int
    check(excinfo, GradError, "static int", "static int", "float")


@pytest.mark.parametrize("argnums, phrase", [("0", "'0'"), (1.0, "1.0"), (True, "True"), ((0, 0), "repeats"),
                                             ((), "()")])
def test_bad_argnums_message(argnums, phrase):
    def f(x, y):
        return x * y

    with pytest.raises(GradError) as excinfo:
        grad(f, argnums=argnums)  # <- bad argnums
    message = str(excinfo.value)
    assert message.startswith(f"{THIS.name}:{line_of('bad argnums')}: "), message
    assert phrase in message and "argnums" in message


def test_bad_argnums_traceback_is_clean():
    with pytest.raises(GradError) as excinfo:
        grad(lambda x: x, argnums=True)  # <- bool argnums
    check(excinfo, GradError, "bool argnums", "argnums")


def test_source_errors_have_a_clean_traceback():
    def f(a):
        return np.sum(np.asarray(a))  # <- source asarray

    with pytest.raises(TracingError) as excinfo:
        grad(f).source(np.ones(2))
    check(excinfo, TracingError, "source asarray", "np.asarray")


def test_error_is_raised_again_on_the_next_call():
    """A failed compile is not cached as a success."""
    def f(x):
        return np.sum(np.nancumsum(x))

    g = grad(f)
    for _ in range(2):
        with pytest.raises(UnsupportedError):
            g(np.ones(3))


def test_unsupported_keyword_of_an_array_method_is_an_adjoint_error():
    with pytest.raises(UnsupportedError, match="dtype"):
        grad(lambda x: x.mean(dtype=np.float32))(np.ones(3))


def test_unsupported_function_in_a_numpy_submodule_is_named_in_full():
    with pytest.raises(UnsupportedError, match=r"np\.linalg\.qr"):
        grad(lambda x: np.sum(np.linalg.qr(x)[0]))(np.eye(3))

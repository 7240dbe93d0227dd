"""A catalogue of user mistakes, each reported at the user's line in the user's terms.

As in test_errors.py (whose cases are not repeated here), every mistake raises an
`AdjointError` subclass whose message starts with `test_misuse.py:<line>: `, the line
marked `# <- marker` below, and says what to do instead; its traceback holds no
compiler frame but the public entry point the user called.
"""
import contextlib
import math
import signal
import time
from dataclasses import dataclass

import numpy as np
from numpy import array
import pytest

from compiler import (
    AdjointError, GradError, ShapeError, TracingError, UnsupportedError, compile_step, grad, jit, value_and_grad,
)
from error_checks import checks_for
from runtime import optim

line_of, check = checks_for(__file__)


def loss(params, x, y):
    return np.mean((x @ params["w"] - y) ** 2)


def data():
    """Fresh params and a batch for `loss` (a training step updates params in place)."""
    return {"w": np.ones(3)}, np.ones((4, 3)), np.ones(4)


class Result:
    """A user's own class: not one of the dicts, lists and tuples adjoint rebuilds."""

    def __init__(self, value):
        self.value = value


# --- calling a compiled function with the wrong arguments ------------------------------

TRANSFORMS = {
    "grad": grad,
    "value_and_grad": value_and_grad,
    "jit": jit,
    "compile_step": lambda fn: compile_step(fn, optim.SGD(lr=0.1)),
}
each_transform = pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())


@each_transform
def test_too_many_positional_arguments(transform):
    compiled = transform(loss)
    params, x, y = data()
    with pytest.raises(TypeError) as excinfo:
        compiled(params, x, y, y)  # <- too many
    check(excinfo, AdjointError, "too many", "loss(params, x, y)", "positional")


@each_transform
def test_too_few_positional_arguments(transform):
    compiled = transform(loss)
    params, x, _ = data()
    with pytest.raises(TypeError) as excinfo:
        compiled(params, x)  # <- too few
    check(excinfo, AdjointError, "too few", "loss(params, x, y)", "'y'")


@each_transform
def test_unexpected_keyword_argument(transform):
    compiled = transform(loss)
    params, x, y = data()
    with pytest.raises(TypeError) as excinfo:
        compiled(params, x, y, weights=y)  # <- unexpected keyword
    check(excinfo, AdjointError, "unexpected keyword", "loss(params, x, y)", "'weights'")


# --- traced values that escape their trace ---------------------------------------------

def leak_a_tracer():
    """The traced argument a function stored in a list while it was being compiled."""
    leaked = []

    def f(x):
        leaked.append(x)
        return np.sum(x)

    grad(f)(np.ones(3))
    return leaked[0]


@pytest.mark.parametrize("use, marker", [
    (lambda t: t + 1.0, "leaked add"),  # <- leaked add
    (lambda t: np.sin(t), "leaked sin"),  # <- leaked sin
    (lambda t: float(t), "leaked float"),  # <- leaked float
    (lambda t: t.ravel(), "leaked ravel"),  # <- leaked ravel
    (lambda t: jit(lambda v: v * 2.0)(t), "leaked into jit"),  # <- leaked into jit
], ids=["add", "sin", "float", "ravel", "jit"])
def test_leaked_tracer_used_after_its_trace(use, marker):
    leaked = leak_a_tracer()
    with pytest.raises(UnsupportedError) as excinfo:
        use(leaked)
    check(excinfo, UnsupportedError, marker, "escaped", "Return the value")


def test_jit_returning_a_set():
    with pytest.raises(UnsupportedError) as excinfo:
        jit(lambda x: {x * 2.0})(np.ones(3))  # <- set result
    check(excinfo, UnsupportedError, "set result", "a set", "Return a dict")


def test_jit_returning_an_instance_of_a_custom_class():
    with pytest.raises(UnsupportedError) as excinfo:
        jit(lambda x: Result(x * 2.0))(np.ones(3))  # <- class result
    check(excinfo, UnsupportedError, "class result", "Result", "Return a dict")


def test_aux_holding_an_instance_of_a_custom_class():
    with pytest.raises(UnsupportedError) as excinfo:
        value_and_grad(lambda x: (np.sum(x), Result(x)), has_aux=True)(np.ones(3))  # <- class aux
    check(excinfo, UnsupportedError, "class aux", "Result", "aux", "Return a dict")


def test_returning_loss_and_metrics_without_has_aux():
    with pytest.raises(GradError) as excinfo:
        value_and_grad(lambda x: (np.sum(x), np.mean(x)))(np.ones(3))  # <- missing has_aux
    check(excinfo, GradError, "missing has_aux", "has_aux=True")


# --- random numbers drawn while tracing ------------------------------------------------

rng = np.random.default_rng(0)


@pytest.mark.parametrize("noisy, marker, name", [
    (lambda x: np.sum(x + np.random.normal(size=3)), "global normal", "np.random.normal"),  # <- global normal
    (lambda x: np.sum(x * np.random.rand(3)), "global rand", "np.random.rand"),  # <- global rand
], ids=["normal", "rand"])
def test_numpy_global_random_state(noisy, marker, name):
    with pytest.raises(UnsupportedError) as excinfo:
        grad(noisy)(np.ones(3))
    check(excinfo, UnsupportedError, marker, name, "trace time", "pass", "Generator")


def test_generator_read_from_a_global():
    def noisy(x):
        return np.sum(x + rng.normal(size=3))  # <- global generator

    with pytest.raises(UnsupportedError) as excinfo:
        grad(noisy)(np.ones(3))
    check(excinfo, UnsupportedError, "global generator", "trace time", "pass", "Generator")


def test_generator_captured_by_a_closure():
    noise = np.random.default_rng(1)

    def noisy(x):
        return np.sum(x + noise.normal(size=3))  # <- closure generator

    with pytest.raises(UnsupportedError) as excinfo:
        grad(noisy)(np.ones(3))
    check(excinfo, UnsupportedError, "closure generator", "trace time", "pass", "Generator")


# --- recursion -------------------------------------------------------------------------

@contextlib.contextmanager
def hang_guard(seconds: float):
    """Fail the test, rather than hang the suite, when the block runs past `seconds`."""
    def expire(signum, frame):
        pytest.fail(f"still running after {seconds} s", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_unbounded_recursion_fails_fast():
    def forever(x):
        return forever(x * 2.0)  # <- recursion

    start = time.perf_counter()
    with hang_guard(30), pytest.raises(TracingError) as excinfo:
        grad(forever)(1.0)
    assert time.perf_counter() - start < 5
    check(excinfo, TracingError, "recursion", "recursion", "static")


# --- what is differentiated -------------------------------------------------------------

@pytest.mark.parametrize("result", [None, 3, "loss"], ids=["None", "int", "str"])
def test_grad_of_a_function_returning_a_non_array(result):
    with pytest.raises(GradError) as excinfo:
        grad(lambda x: result)(np.ones(3))  # <- non-array result
    check(excinfo, GradError, "non-array result", "scalar float")


@pytest.mark.parametrize("transform, cls, marker", [
    (lambda value: grad(value), GradError, "grad of a value"),  # <- grad of a value
    (lambda value: value_and_grad(value), GradError, "value_and_grad of a value"),  # <- value_and_grad of a value
    (lambda value: grad(argnums=0)(value), GradError, "decorator on a value"),  # <- decorator on a value
    (lambda value: jit(value), UnsupportedError, "jit of a value"),  # <- jit of a value
    (lambda value: compile_step(value, optim.SGD(lr=0.1)), UnsupportedError, "step of a value"),  # <- step of a value
], ids=["grad", "value_and_grad", "grad_decorator", "jit", "compile_step"])
def test_transforming_a_value_instead_of_a_function(transform, cls, marker):
    with pytest.raises(cls) as excinfo:
        transform(loss(*data()))
    check(excinfo, cls, marker, "function")


def test_negative_argnums_out_of_range():
    with pytest.raises(GradError) as excinfo:
        grad(loss, argnums=-4)(*data())  # <- negative argnums
    check(excinfo, GradError, "negative argnums", "argnums=-4", "3 positional")


def test_argnums_of_an_argument_passed_by_keyword():
    params, x, y = data()
    with pytest.raises(GradError) as excinfo:
        grad(loss)(params=params, x=x, y=y)  # <- keyword argnums
    check(excinfo, GradError, "keyword argnums", "argnums=0", "positional")


def test_has_aux_with_a_function_returning_only_the_loss():
    with pytest.raises(GradError) as excinfo:
        grad(loss, has_aux=True)(*data())  # <- no aux
    check(excinfo, GradError, "no aux", "(loss, aux)")


# --- arguments adjoint cannot take ------------------------------------------------------

@dataclass
class Config:
    scale: float


def test_custom_object_as_an_argument():
    with pytest.raises(UnsupportedError) as excinfo:
        grad(lambda x, config: np.sum(x) * config.scale)(np.ones(3), Config(2.0))  # <- config object
    check(excinfo, UnsupportedError, "config object", "Config", "dicts/lists/tuples")


def test_ragged_object_array_as_an_argument():
    ragged = np.array([np.ones(2), np.ones(3)], dtype=object)
    with pytest.raises(UnsupportedError) as excinfo:
        jit(lambda x: x)(ragged)  # <- ragged
    check(excinfo, UnsupportedError, "ragged", "numeric arrays")


# --- shapes and indexing ----------------------------------------------------------------

@pytest.mark.parametrize("fn, marker, phrases", [
    (lambda x: np.concatenate([x, x.T]), "concatenate", ("np.concatenate", "(2, 3)", "(3, 2)")),  # <- concatenate
    (lambda x: x.reshape(4, 2), "reshape", ("np.reshape", "(2, 3)", "(4, 2)")),  # <- reshape
    (lambda x: np.sum(x, axis=5), "sum axis", ("axis 5", "dimension 2")),  # <- sum axis
    (lambda x: np.stack([x, x.T]), "stack", ("np.stack", "(2, 3)", "(3, 2)")),  # <- stack
    (lambda x: np.broadcast_to(x, (3, 3)), "broadcast_to", ("np.broadcast_to", "(2, 3)", "(3, 3)")),  # <- broadcast_to
    (lambda x: x @ 2.0, "matmul scalar", ("np.matmul", "use *")),  # <- matmul scalar
    (lambda x: x[2], "index", ("out of bounds", "size 2")),  # <- index
], ids=["concatenate", "reshape", "sum_axis", "stack", "broadcast_to", "matmul_scalar", "index"])
def test_shape_mistake(fn, marker, phrases):
    with pytest.raises(ShapeError) as excinfo:
        jit(fn)(np.ones((2, 3)))
    check(excinfo, ShapeError, marker, *phrases)


def test_indexing_with_a_traced_boolean_mask():
    """The number of elements a traced mask selects is decided per call
    (tests/test_data_dependent_shapes.py)."""
    np.testing.assert_array_equal(grad(lambda x: np.sum(x[x > 0] ** 2))(np.array([1.0, -2.0, 3.0])), [2.0, 0.0, 6.0])


def test_indexing_with_a_float():
    def middle(x):
        return x[len(x) / 2]  # <- float index

    with pytest.raises(UnsupportedError) as excinfo:
        grad(middle)(np.ones(4))
    check(excinfo, UnsupportedError, "float index", "integers")


def test_assigning_a_shape():
    def column_sum(x):
        x.shape = (3, 1)  # <- shape assignment
        return np.sum(x)

    with pytest.raises(AttributeError) as excinfo:
        grad(column_sum)(np.ones(3))
    check(excinfo, UnsupportedError, "shape assignment", "reshape")


# --- Python code that needs the value of traced data ----------------------------------

def test_tolist():
    with pytest.raises(TracingError) as excinfo:
        jit(lambda x: sum(x.tolist()))(np.ones(3))  # <- tolist
    check(excinfo, TracingError, "tolist", "is traced", "NumPy operations")


def test_math_function_on_a_traced_value():
    with pytest.raises(TracingError) as excinfo:
        grad(lambda x: math.exp(x))(1.0)  # <- math.exp
    check(excinfo, TracingError, "math.exp", "is traced", "np.exp")


def test_builtin_max_on_a_traced_value():
    def relu(z):
        return max(z, 0.0)  # <- builtin max

    with pytest.raises(TracingError) as excinfo:
        grad(lambda x: np.sum(relu(x)))(np.ones(3))
    check(excinfo, TracingError, "builtin max", "is traced", "np.maximum")
    assert grad(lambda x: relu(x) * x)(2.0) == 4.0 and grad(lambda x: relu(x) * x)(-2.0) == 0.0  # a scalar decides


def test_np_array_of_traced_values():
    """np.array([a, b]) traces (it is stacked); a name bound by `from numpy import
    array` is NumPy's own constructor, which cannot take traced values."""
    assert grad(lambda a, b: np.sum(np.array([a, b]) ** 2), argnums=(0, 1))(1.0, 2.0) == (2.0, 4.0)
    with pytest.raises(TracingError) as excinfo:
        grad(lambda a, b: np.sum(array([a, b]) ** 2), argnums=(0, 1))(1.0, 2.0)  # <- bound array of traced
    check(excinfo, TracingError, "bound array of traced", "is traced", "np.stack")


def test_formatting_a_traced_value():
    def logged_loss(x):
        value = np.sum(x ** 2)
        print(f"loss {value:.3f}")  # <- format
        return value

    with pytest.raises(TracingError) as excinfo:
        grad(logged_loss)(np.ones(3))
    check(excinfo, TracingError, "format", "is traced", "has_aux")


def test_loop_count_passed_as_a_numpy_integer():
    def power(x, n):
        for _ in range(n):  # <- numpy count
            x = x * x
        return x

    assert grad(power)(2.0, np.int64(3)) == 8 * 2.0 ** 7  # x ** 8: the count is decided, and guarded


def test_iterating_a_0d_traced_value():
    with pytest.raises(TypeError) as excinfo:
        grad(lambda x: sum(v * v for v in x))(1.0)  # <- iterate scalar
    check(excinfo, ShapeError, "iterate scalar", "iteration over a 0-d")


def test_if_on_a_traced_value_inside_a_helper():
    def absolute(v):
        if v > 0:  # <- helper if
            return v
        return -v

    doubled = grad(lambda x: absolute(x) * 2.0)
    assert (doubled(1.0), doubled(-1.0), doubled(3.0)) == (2.0, -2.0, 2.0)
    assert doubled.trace_count == 2


# --- NumPy that adjoint does not support ------------------------------------------------

@pytest.mark.parametrize("fn, marker, name", [
    (lambda x: np.linalg.matrix_rank(x), "matrix_rank", "np.linalg.matrix_rank"),  # <- matrix_rank
    (lambda x: np.linalg.qr(x), "qr", "np.linalg.qr"),  # <- qr
], ids=["matrix_rank", "qr"])
def test_unsupported_function_is_named_in_full(fn, marker, name):
    with pytest.raises(UnsupportedError) as excinfo:
        jit(fn)(np.ones((2, 2)))
    check(excinfo, UnsupportedError, marker, f"{name} is not supported")


@pytest.mark.parametrize("fn, marker, method, instead", [
    (lambda x: np.add.reduce(x), "add.reduce", "np.add.reduce", "np.sum"),  # <- add.reduce
    (lambda x: np.maximum.reduce(x), "maximum.reduce", "np.maximum.reduce", "np.max"),  # <- maximum.reduce
], ids=["add_reduce", "maximum_reduce"])
def test_ufunc_method_suggests_the_function(fn, marker, method, instead):
    with pytest.raises(UnsupportedError) as excinfo:
        grad(fn)(np.ones(3))
    message = check(excinfo, UnsupportedError, marker, f"{method} is not supported")
    assert instead in message.replace(method, ""), message  # np.max is also a prefix of np.maximum.reduce


@pytest.mark.parametrize("fn, marker", [
    (lambda x: np.sum(np.exp(x, out=x)), "ufunc out"),  # <- ufunc out
    (lambda x: np.sum(np.clip(x, 0.0, 1.0, out=x)), "clip out"),  # <- clip out
], ids=["exp", "clip"])
def test_out_keyword(fn, marker):
    with pytest.raises(UnsupportedError) as excinfo:
        grad(fn)(np.ones(3))
    check(excinfo, UnsupportedError, marker, "out=", "new variable")


@pytest.mark.parametrize("fn, marker", [
    (lambda x: x.data, "data"),  # <- data
    (lambda x: x.ctypes, "ctypes"),  # <- ctypes
], ids=["data", "ctypes"])
def test_memory_attribute_of_a_traced_array(fn, marker):
    with pytest.raises(AttributeError) as excinfo:
        jit(fn)(np.ones(3))
    check(excinfo, UnsupportedError, marker, f".{marker}", "not supported")


def test_casting_to_object_dtype():
    with pytest.raises(UnsupportedError) as excinfo:
        jit(lambda x: x.astype(object))(np.ones(3))  # <- astype object
    check(excinfo, UnsupportedError, "astype object", "object", "numeric")


# --- compile_step ------------------------------------------------------------------------

def test_step_with_integer_params():
    step = compile_step(loss, optim.SGD(lr=0.1))
    _, x, y = data()
    with pytest.raises(GradError) as excinfo:
        step({"w": np.arange(3)}, x, y)  # <- int params
    check(excinfo, GradError, "int params", "params['w']", "floating")


def test_step_with_params_of_a_new_structure():
    step = compile_step(loss, optim.SGD(lr=0.1, momentum=0.9))
    params, x, y = data()
    step(params, x, y)
    with pytest.raises(GradError) as excinfo:
        step({"w": params["w"], "b": np.zeros(1)}, x, y)  # <- new structure
    check(excinfo, GradError, "new structure", "structure", "one compile_step per model")


def test_step_with_a_per_example_loss():
    def per_example_loss(params, x, y):
        return (x @ params["w"] - y) ** 2  # <- per-example loss

    step = compile_step(per_example_loss, optim.SGD(lr=0.1))
    with pytest.raises(GradError) as excinfo:
        step(*data())
    check(excinfo, GradError, "per-example loss", "scalar", "np.mean")

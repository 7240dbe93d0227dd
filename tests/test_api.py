"""The public transformations: decorator forms, argnums, pytrees, aux outputs, the
compile cache, dtypes, static arguments, aliasing, and the printed IR."""
import functools
import re

import numpy as np
import pytest

from compiler import grad, value_and_grad
from compiler.errors import GradError
from runtime.check import numerical_grad
from compiler.tracing import Tracer


def assert_numpy(value):
    """A NumPy array or NumPy scalar: never a tracer, never a Python float."""
    assert isinstance(value, (np.ndarray, np.generic)), type(value)
    assert not isinstance(value, Tracer)


# --- decorator forms and argnums ---------------------------------------------------

def test_bare_decorator():
    @grad
    def f(x):
        return np.sum(x ** 3)

    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(f(x), 3 * x ** 2)


def test_decorator_with_argnums():
    @grad(argnums=1)
    def f(x, y):
        return np.sum(np.sin(x) * y ** 2)

    x, y = np.array([0.3, 1.2]), np.array([2.0, -1.0])
    np.testing.assert_allclose(f(x, y), 2 * np.sin(x) * y)


def test_int_argnums_gives_one_gradient_tuple_gives_tuple():
    def f(x, y):
        return x * y ** 2

    one = grad(f, argnums=0)(3.0, 2.0)
    assert_numpy(one)
    assert one == 4.0
    both = grad(f, argnums=(0, 1))(3.0, 2.0)
    assert isinstance(both, tuple) and len(both) == 2
    assert both == (4.0, 12.0)
    single_tuple = grad(f, argnums=(1,))(3.0, 2.0)
    assert isinstance(single_tuple, tuple) and single_tuple == (12.0,)
    assert grad(f, argnums=(1, 0))(3.0, 2.0) == (12.0, 4.0)  # in the order asked


def test_negative_argnums():
    def f(x, y, z):
        return x * y + z ** 3

    assert grad(f, argnums=-1)(1.0, 2.0, 3.0) == 27.0
    assert grad(f, argnums=(-3, -2))(1.0, 2.0, 3.0) == (2.0, 1.0)


# --- pytrees -------------------------------------------------------------------------

def test_pytree_arguments_give_gradients_of_the_same_structure():
    def loss(params, scale):
        h = np.tanh(params["layers"][0]["W"] @ params["x"]) + params["layers"][0]["b"]
        h = params["layers"][1][0] * h + params["layers"][1][1]
        return scale * np.sum(h ** 2)

    rng = np.random.default_rng(0)
    params = {
        "layers": [{"W": rng.normal(size=(2, 3)), "b": np.array([0.1, -0.2])}, (1.5, np.array([0.3, 0.4]))],
        "x": rng.normal(size=3),
    }
    g = grad(loss)(params, 2.0)
    assert list(g) == ["layers", "x"]
    assert isinstance(g["layers"], list) and isinstance(g["layers"][0], dict) and isinstance(g["layers"][1], tuple)
    assert list(g["layers"][0]) == ["W", "b"]

    W, b, x = params["layers"][0]["W"], params["layers"][0]["b"], params["x"]
    s, c = params["layers"][1]
    t = np.tanh(W @ x)
    h = s * (t + b) + c
    g_h = 2 * 2.0 * h
    g_pre = g_h * s * (1 - t ** 2)
    np.testing.assert_allclose(g["layers"][0]["W"], np.outer(g_pre, x), rtol=1e-13)
    np.testing.assert_allclose(g["layers"][0]["b"], g_h * s, rtol=1e-13)
    np.testing.assert_allclose(g["layers"][1][0], np.sum(g_h * (t + b)), rtol=1e-13)
    np.testing.assert_allclose(g["layers"][1][1], g_h, rtol=1e-13)
    np.testing.assert_allclose(g["x"], W.T @ g_pre, rtol=1e-13)
    for leaf in [g["layers"][0]["W"], g["layers"][0]["b"], g["layers"][1][0], g["layers"][1][1], g["x"]]:
        assert_numpy(leaf)
    assert_numpy(g["layers"][1][0])
    assert np.shape(g["layers"][1][0]) == ()


# --- has_aux ---------------------------------------------------------------------------

def loss_with_aux(w, x):
    pred = x @ w
    loss = np.mean(pred ** 2)
    return loss, {"pred": pred, "note": "static"}


W = np.array([0.5, -1.0])
XS = np.array([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]])


def test_grad_has_aux():
    g, aux = grad(loss_with_aux, has_aux=True)(W, XS)
    pred = XS @ W
    np.testing.assert_allclose(g, 2 * XS.T @ pred / 3, rtol=1e-14)
    np.testing.assert_allclose(aux["pred"], pred, rtol=1e-14)
    assert aux["note"] == "static"
    assert_numpy(aux["pred"])


def test_value_and_grad_has_aux():
    (value, aux), g = value_and_grad(loss_with_aux, has_aux=True)(W, XS)
    pred = XS @ W
    assert value == pytest.approx(np.mean(pred ** 2), rel=1e-14)
    np.testing.assert_allclose(g, 2 * XS.T @ pred / 3, rtol=1e-14)
    np.testing.assert_allclose(aux["pred"], pred, rtol=1e-14)


# --- metadata and the cache ------------------------------------------------------------

def test_wraps_metadata():
    def energy(x):
        """The energy of x."""
        return np.sum(x ** 2)

    for g in [grad(energy), value_and_grad(energy), grad(argnums=0)(energy)]:
        assert g.__name__ == "energy"
        assert g.__doc__ == "The energy of x."
        assert g.__wrapped__ is energy
        assert g.__qualname__ == energy.__qualname__
    assert functools.wraps  # the contract is functools.update_wrapper's


def test_cache_same_signature_never_retraces():
    calls = []

    def f(x, n, p):
        calls.append(1)
        return np.sum(x ** n) * p["a"]

    g = grad(f)
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(g(x, 2, {"a": 3.0}), [6.0, 12.0])
    np.testing.assert_allclose(g(x + 1, 2, {"a": 1.0}), [4.0, 6.0])  # new values, same signature
    np.testing.assert_allclose(g(np.array([5.0, 6.0]), 2, {"a": 1.0}), [10.0, 12.0])
    assert g.trace_count == 1 and len(calls) == 1
    g.source(x, 2, {"a": 3.0})
    assert g.trace_count == 1

    g(np.ones(3), 2, {"a": 1.0})                       # new shape
    assert g.trace_count == 2
    g(np.ones(3, np.float32), 2, {"a": 1.0})           # new dtype
    assert g.trace_count == 3
    np.testing.assert_allclose(g(x, 3, {"a": 1.0}), [3.0, 12.0])  # an int used in arithmetic is traced
    assert g.trace_count == 3
    g(x, 3, {"a": 1.0, "b": 0.0})                      # new pytree structure
    assert g.trace_count == 4
    g(x, 3, {"b": 0.0, "a": 1.0})                      # key order is structure too
    assert g.trace_count == 5
    g(x, True, {"a": 1.0})                             # a bool is static, and True is not 1
    assert g.trace_count == 6
    g(x, 2, {"a": 1.0})                                # back to a known signature
    assert g.trace_count == 6 and len(calls) == 6


def test_list_and_tuple_are_different_structures():
    g = grad(lambda p: np.sum(p[0] * p[1]))
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    as_list, as_tuple = g([a, b]), g((a, b))
    assert isinstance(as_list, list) and isinstance(as_tuple, tuple)
    np.testing.assert_allclose(as_list[0], b)
    np.testing.assert_allclose(as_tuple[1], a)
    assert g.trace_count == 2


# --- dtypes and result types -----------------------------------------------------------

def test_float32_in_float32_out():
    def f(x, w):
        return np.sum(np.tanh(x * w) * 0.5)

    x, w = np.linspace(-1, 1, 5, dtype=np.float32), np.float32(1.5)
    value, (gx, gw) = value_and_grad(f, argnums=(0, 1))(x, w)
    assert value.dtype == np.float32 and gx.dtype == np.float32 and gw.dtype == np.float32
    assert_numpy(value), assert_numpy(gx), assert_numpy(gw)
    t = np.tanh(x * w)
    np.testing.assert_allclose(gx, 0.5 * (1 - t ** 2) * w, rtol=1e-6)
    np.testing.assert_allclose(gw, np.sum(0.5 * (1 - t ** 2) * x), rtol=1e-5)


def test_results_are_numpy_scalars_for_python_floats():
    value, (dx, dy) = value_and_grad(lambda x, y: x * y + 1.0, argnums=(0, 1))(2.0, 5.0)
    for r in (value, dx, dy):
        assert_numpy(r)
        assert not type(r) is float
    assert (value, dx, dy) == (11.0, 5.0, 2.0)


# --- static arguments ---------------------------------------------------------------------

def test_static_int_bool_str_args_unroll_python_control_flow():
    def f(x, power: int, negate: bool, mode: str):
        y = x
        for _ in range(power - 1):   # a loop over a static range unrolls
            y = y * x
        if negate:
            y = -y
        if mode == "mean":
            return np.mean(y)
        return np.sum(y)

    g = grad(f)
    x = np.array([1.0, 2.0, -1.5])
    np.testing.assert_allclose(g(x, 3, False, "sum"), 3 * x ** 2)
    np.testing.assert_allclose(g(x, 4, True, "sum"), -4 * x ** 3)
    np.testing.assert_allclose(g(x, 2, False, "mean"), 2 * x / 3)
    assert g.trace_count == 3
    assert g.source(x, 4, True, "sum").count(" * ") >= 3  # unrolled, no loop in the code
    assert "for " not in g.source(x, 4, True, "sum")


def test_static_kwargs_and_none():
    def f(x, scale=None):
        y = np.sum(x ** 2)
        return y if scale is None else y * scale

    g = grad(f)
    x = np.array([1.0, 3.0])
    np.testing.assert_allclose(g(x), 2 * x)
    np.testing.assert_allclose(g(x, scale=3), 6 * x)
    np.testing.assert_allclose(g(x, scale=2.5), 5 * x)  # a float kwarg is traced


# --- aliasing and mutation --------------------------------------------------------------

def test_inputs_are_not_mutated():
    def f(x, y):
        z = x * y
        return np.sum(z * z) + np.sum(np.exp(x))

    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    x0, y0 = x.copy(), y.copy()
    for transform in (grad(f, argnums=(0, 1)), value_and_grad(f, argnums=(0, 1))):
        out = transform(x, y)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)
        gx, gy = out if transform.kind == "grad" else out[1]
        gx += 1.0  # writing to a returned gradient never touches the inputs
        gy *= 0.0
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)


def test_gradient_does_not_alias_an_input():
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx = grad(lambda x, y: np.sum(x * y))(x, y)
    np.testing.assert_array_equal(gx, y)
    assert gx is not y and not np.shares_memory(gx, y)


def test_pytree_gradient_does_not_alias_inputs():
    p = {"w": np.ones(2), "b": np.full(2, 2.0)}
    g = grad(lambda p: np.sum(p["w"] * p["b"]))(p)
    assert not np.shares_memory(g["w"], p["b"]) and not np.shares_memory(g["b"], p["w"])


def test_gradient_with_no_path_is_zeros():
    def f(x, y, labels):
        return np.sum(y ** 2)

    x32 = np.ones((2, 3), np.float32)
    y = np.array([1.0, -2.0])
    gx, gy = grad(f, argnums=(0, 1))(x32, y, np.array([0, 1]))
    assert gx.shape == (2, 3) and gx.dtype == np.float32
    np.testing.assert_array_equal(gx, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(gy, 2 * y)
    gx[0, 0] = 5.0  # a real, writable array
    assert grad(f, argnums=0)(x32, y, np.array([0, 1]))[0, 0] == 0.0


def test_integer_array_args_are_traced_not_differentiated():
    def nll(logits, labels):
        m = np.max(logits, axis=1, keepdims=True)
        logp = logits - m - np.log(np.sum(np.exp(logits - m), axis=1, keepdims=True))
        return -np.mean(logp[np.arange(logits.shape[0]), labels])

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 3))
    g = grad(nll)
    labels = np.array([0, 2, 1, 2])
    p = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True)
    want = (p - np.eye(3)[labels]) / 4
    np.testing.assert_allclose(g(logits, labels), want, rtol=1e-12, atol=1e-15)
    other = np.array([1, 1, 0, 0])
    np.testing.assert_allclose(g(logits, other), (p - np.eye(3)[other]) / 4, rtol=1e-12, atol=1e-15)
    assert g.trace_count == 1  # labels are traced (by shape and dtype), not baked in
    assert "labels" in g.source(logits, labels).split(")")[0]


# --- the printed IR ------------------------------------------------------------------------

def test_ir_printout_shows_names_types_ops_operands_and_lines():
    def f(x, w):
        h = x * w  # IR-LINE
        return np.sum(np.tanh(h))

    line = f.__code__.co_firstlineno + 1
    text = str(value_and_grad(f).ir(np.ones(3), np.ones(3)))
    lines = text.splitlines()
    assert re.search(r"%\d+:x: float64\[3\] = input\(index=0\)", text)
    mul = [ln for ln in lines if ":h: float64[3] = multiply(" in ln]
    assert len(mul) == 1
    assert re.search(r"multiply\(%\d+:x, %\d+:w\)", mul[0])
    assert mul[0].endswith(f"# test_api.py:{line}")
    assert any("= tanh(%" in ln for ln in lines)
    assert any("float64[] = sum(" in ln for ln in lines)
    assert lines[-1].startswith("return %")


def test_keyword_order_is_not_a_new_signature():
    def f(x, *, a, b):
        return np.sum(x * a - b)

    g = grad(f)
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(g(x, a=3.0, b=1.0), [3.0, 3.0])
    np.testing.assert_allclose(g(x, b=1.0, a=4.0), [4.0, 4.0])
    assert g.trace_count == 1


# --- one-element outputs -------------------------------------------------------------------

def test_grad_takes_the_one_element_of_a_single_element_output():
    """autograd and PyTorch's backward() accept any one-element output; the gradient
    is that element's, and value_and_grad returns the value as the function did."""
    A = np.array([[0.5], [-1.0], [2.0]])
    x = np.array([1.0, 2.0, 3.0])
    acquisition = lambda x: np.tanh(x @ A) ** 2  # noqa: E731  (shape (1,), as a Bayesian-optimisation acquisition)
    value, gradient = value_and_grad(acquisition)(x)
    assert value.shape == (1,)
    np.testing.assert_allclose(value, acquisition(x))
    np.testing.assert_allclose(gradient, numerical_grad(lambda x: acquisition(x)[0], x), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(grad(lambda x: np.sin(x[None, None, :1]))(x), [np.cos(1.0), 0.0, 0.0])
    with pytest.raises(GradError, match=r"single element.*float64\[2\]"):
        grad(lambda x: x[:2])(x)

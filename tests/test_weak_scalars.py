"""Python numbers exactly as NumPy treats them (NEP 50): a NumPy function applied to
Python floats returns a NumPy scalar, which is strong (it widens float32); an
operator on them returns a Python float, which is weak (it bends to float32). And no
generated line assumes an array where a Python number arrives (`a.max()` on a float
raises AttributeError)."""
import numpy as np
import pytest

from compiler import grad, jit, jvp, value_and_grad
from runtime import nn
from runtime.check import numerical_grad

W32 = np.array(0.3486, dtype=np.float32)

# f(a) for a Python float a; each is multiplied by a float32 array, where weak and strong differ
ON_PYTHON_FLOATS = {
    "np.subtract": lambda a: np.subtract(a, -0.565),
    "operator -": lambda a: a - -0.565,
    "np.multiply of two": lambda a: np.multiply(a, a),
    "operators": lambda a: 2.0 * a * a - 1.0,
    "np.exp": lambda a: np.exp(a),
    "np.maximum": lambda a: np.maximum(a, 0.25),
    "abs": lambda a: abs(a) + 1.0,
    "np.absolute": lambda a: np.absolute(a),
    "np.sum": lambda a: np.sum(a),
    "np.max": lambda a: np.max(a),
    "np.mean": lambda a: np.mean(a * 3.0),
    "np.prod": lambda a: np.prod(a),
    "np.cumsum": lambda a: np.cumsum(a),
    "np.reshape": lambda a: np.reshape(a, (1, 1)),
    "np.transpose": lambda a: np.transpose(a),
    "nn.logsumexp": lambda a: nn.logsumexp(a),
    "nn.softmax": lambda a: nn.softmax(a),
    "nn.sigmoid": lambda a: nn.sigmoid(a),
    "np.where": lambda a: np.where(a > 0, a, 0.5 * a),
    "divmod": lambda a: divmod(a, 0.75)[1] + np.divmod(a, 0.75)[1],
}


@pytest.mark.parametrize("name", sorted(ON_PYTHON_FLOATS))
def test_python_float_arguments_give_numpys_dtypes_and_values(name):
    f = ON_PYTHON_FLOATS[name]
    program = lambda a: 1.456 * np.sum(f(a) * W32)  # noqa: E731
    for a in (-1.82, 0.943):
        eager = program(a)
        value, gradient = value_and_grad(program)(a)
        assert value.dtype == np.asarray(eager).dtype, (name, value.dtype, np.asarray(eager).dtype)
        np.testing.assert_allclose(value, eager, rtol=1e-6)
        np.testing.assert_allclose(gradient, numerical_grad(program, a), rtol=2e-4, atol=1e-6)
        compiled = jit(f)(a)
        assert np.asarray(compiled).dtype == np.asarray(f(a)).dtype and np.shape(compiled) == np.shape(f(a))


def test_the_fuzzers_python_float_programs():
    """The two programs of the report, found by random programs with Python-float arguments."""
    first = lambda a: 1.456 * np.sum(np.subtract(a, -0.565) * W32)  # noqa: E731
    value, _ = value_and_grad(first)(-1.82)
    assert type(value) is type(first(-1.82)) is np.float64
    W0 = np.array(0.5, dtype=np.float32)
    second = lambda a: 0.975 * np.sum(nn.logsumexp(a) * W0)  # noqa: E731
    value, gradient = value_and_grad(second)(-0.943)
    assert value == pytest.approx(second(-0.943), rel=1e-12) and gradient == pytest.approx(0.4875, rel=1e-6)
    code = "\n".join(line.split("#")[0] for line in value_and_grad(second).source(-0.943).splitlines())
    assert "a.max(" not in code and "np.max(a" in code, code


def test_methods_on_python_float_operands_print_as_functions():
    source = grad(lambda a: nn.logsumexp(a * 2.0)).source(0.5)
    assert "np.max(t1, " in source and "t1.max(" not in source, source
    assert grad(lambda a: nn.logsumexp(a * 2.0))(0.5) == pytest.approx(2.0)


def test_items_of_python_number_values_and_their_tangents():
    """Found by the fuzzer: a tangent that is a Python number at run time, indexed."""
    assert jvp(lambda s: np.sum(np.divide(s, 2.0)[None]), (1.5,), (1.0,))[1] == pytest.approx(0.5)
    assert jvp(lambda s: np.sum(np.negative(s)[()]), (1.5,), (1.0,))[1] == pytest.approx(-1.0)


def test_a_python_number_base_keeps_a_float32_exponent_float32():
    """Found by the fuzzer: d/dy s ** y with s a Python float took log(s) in float64."""
    x = np.array([0.3, 0.6], dtype=np.float32)
    g = grad(lambda x, s: np.sum(s ** np.tanh(x)))(x, 1.7)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 1.7 ** np.tanh(x) * np.log(1.7) * (1 - np.tanh(x) ** 2), rtol=1e-5)

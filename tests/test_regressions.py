"""Minimised programs that once gave wrong answers or crashed, one test each.

Every failure the random-program fuzzer (tests/fuzzing.py) finds ends up here.
"""
import numpy as np
import pytest

from compiler import UnsupportedError, compile_step, grad, jit, value_and_grad
from runtime import nn, optim
from runtime.check import numerical_grad


def test_python_float_argument_keeps_float32_work_float32():
    x = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    value, (g_x, g_a) = value_and_grad(lambda x, a: np.sum(x * a), (0, 1))(x, 2.0)
    assert value.dtype == np.float32 and g_x.dtype == np.float32
    np.testing.assert_allclose(value, np.sum(x * 2.0))
    np.testing.assert_allclose(g_x, np.full(3, 2.0))
    np.testing.assert_allclose(g_a, np.sum(x))
    assert jit(lambda x, a: x * a)(x, 2.0).dtype == np.float32


def test_python_float_results_are_numpy_scalars():
    value, g = value_and_grad(lambda a, b: a * b + 1.0)(2.0, 5.0)
    for result in (value, g):
        assert isinstance(result, (np.ndarray, np.generic)) and result.dtype == np.float64
    assert (value, g) == (11.0, 5.0)
    assert isinstance(jit(lambda a: a * 2.0)(3.0), np.float64)
    assert grad(lambda a: np.sum(np.float32([1.0, 2.0]) * a))(2.0) == 3.0


def test_scatter_add_keeps_the_reshape_that_shapes_its_cotangent():
    x = np.array([1.5, -2.0, 0.5])
    y = np.array([2.0, 3.0])
    c = np.array([[1.0, 2.0]])
    cases = [
        (lambda x: np.sum(x[0].reshape(1) * np.ones(1)), np.eye(3)[0]),
        (lambda x: np.sum(np.outer(x[0], y)), np.eye(3)[0] * 5.0),
        (lambda x: np.sum(x[-2].flatten() * 3.0), np.eye(3)[1] * 3.0),
        (lambda x: np.sum(x[np.array([0, 0])].reshape(1, 2) * c), np.eye(3)[0] * 3.0),
    ]
    for f, expected in cases:
        np.testing.assert_allclose(grad(f)(x), expected)
    m = np.arange(12.0).reshape(4, 3)
    idx = np.array([2, 0])
    ones = np.ones((2, 1, 2))
    expected = np.zeros((4, 3))
    expected[np.ix_([0, 2], [0, 2])] = 1.0
    np.testing.assert_allclose(grad(lambda m: np.sum(np.expand_dims(m[::2, idx], -2) * ones))(m), expected)


def test_bce_with_logits_labels_that_broadcast_the_logits():
    f = lambda z, y: nn.binary_cross_entropy_with_logits(z, y)  # noqa: E731
    z, y = np.array([0.5, -1.0]), np.array([[0.3, 0.7]])
    for argnums in (0, 1):
        expected = numerical_grad(f, z, y, argnums=argnums)
        np.testing.assert_allclose(grad(f, argnums=argnums)(z, y), expected, rtol=1e-6, atol=1e-8)


def test_bce_with_logits_python_float_label_keeps_float32():
    x = np.array([[0.5]], np.float32)
    f = lambda v: nn.binary_cross_entropy_with_logits(v, 0.5).astype(np.float64)  # noqa: E731
    assert jit(f)(x).dtype == f(x).dtype == np.float64
    assert grad(lambda v: nn.binary_cross_entropy_with_logits(v, -0.28))(x).dtype == np.float32


def test_compile_step_updates_a_parameter_only_after_its_last_read():
    W1, W2 = np.array(0.5), np.array([2.0])

    def loss(p):
        return 0.4 * np.sum(p["b"] * W1) + np.sum(p["a"] * p["b"] * W2)

    p = {"a": np.array([1.35]), "b": np.array(-2.2)}
    value = compile_step(loss, optim.SGD(lr=0.1))(p)
    np.testing.assert_allclose(value, 0.2 * -2.2 + 1.35 * -2.2 * 2.0)
    np.testing.assert_allclose(p["a"], [1.35 - 0.1 * (-2.2 * 2.0)])
    np.testing.assert_allclose(p["b"], -2.2 - 0.1 * (0.2 + 1.35 * 2.0))


def test_complex_values_on_a_differentiated_path_are_refused_not_wrong():
    # verified rules (tests/test_complex.py): PyTorch's convention, dL/dx + i dL/dy
    np.testing.assert_allclose(grad(lambda z: np.sum(np.abs(z * z)))(np.array([1 + 2j])), [2 + 4j])
    # |(x + i) x| = |x| sqrt(x² + 1): d/dx = (2x² + 1) / sqrt(x² + 1) for x > 0
    np.testing.assert_allclose(grad(lambda x: np.sum(np.abs((x + 1j) * x)))(np.array([1.0, 2.0])),
                               [3 / np.sqrt(2), 9 / np.sqrt(5)])
    # rules written only for real numbers are refused on complex values
    with pytest.raises(UnsupportedError, match="complex"):
        grad(lambda z: np.sum(np.abs(np.sort(z * z))))(np.array([1 + 2j]))
    # np.sign(z) = z / |z| for complex z: not the real sign's zero derivative
    with pytest.raises(UnsupportedError, match="complex"):
        grad(lambda z: np.sum(np.real(np.sign(z * z))))(np.array([1 + 2j]))
    # values NumPy defines differently for complex input
    z = np.array([1 + 2j, -0.5 + 1j, 2 - 1j])
    np.testing.assert_allclose(jit(lambda a, b: np.vdot(a, b))(z, z[::-1]), np.vdot(z, z[::-1]))
    for fn in (np.var, np.std):
        assert jit(fn)(z).dtype == fn(z).dtype
        np.testing.assert_allclose(jit(fn)(z), fn(z))
    np.testing.assert_allclose(jit(lambda z: z * z)(np.array([1 + 2j])), [-3 + 4j])


def test_a_gradient_never_aliases_an_argument_after_simplification():
    g = grad(lambda a, c: np.sum(np.reshape(a, (1,)) * np.reshape(c, (1,))), argnums=(0, 1))
    a, c = np.array(2.0), np.array(3.0)
    g_a, g_c = g(a, c)
    assert (g_a, g_c) == (3.0, 2.0)
    assert not np.shares_memory(g_a, c) and not np.shares_memory(g_c, a)


def test_results_never_share_memory_with_arguments_or_each_other():
    m = np.arange(9.0).reshape(3, 3)
    r = jit(lambda m: np.diagonal(m))(m)
    r[0] = 100.0
    assert m[0, 0] == 0.0
    x = np.array([1.0, 2.0])
    assert not np.shares_memory(jit(lambda x: np.einsum("i", x))(x), x)
    f = grad(lambda z, x, y: np.sum(np.sin(z + np.concatenate([x, y]))), argnums=(0, 1, 2))
    g_z, g_x, g_y = f(np.zeros(3), np.array([0.1, 0.2]), np.array([0.3]))
    assert not np.shares_memory(g_z, g_x) and not np.shares_memory(g_z, g_y)
    a, b = jit(lambda x: (np.reshape(x * 2.0, (1, 1)), np.roll(x * 2.0, -1)))(np.array([1.5]))
    assert not np.shares_memory(a, b)


def test_a_python_int_exponent_keeps_float32_gradients_float32():
    g = grad(lambda x, n: np.sum(x ** n))
    x = np.float32([1.5, 2.0])
    assert g(x, 2).dtype == np.float32
    assert all(n.dtype != np.float64 for n in g.ir(x, 2).nodes() if n.dtype.kind == "f" and not n.aval.weak)


def test_large_steps_write_bias_adds_and_activations_in_place_and_stay_exact():
    """At sizes where the memory pass reuses arrays (`z1 = x @ W1; z1 += b1`,
    `np.maximum(z1, 0, out=z1)`, masks into the dying cotangent) and the backward pass
    is seeded with the learning rate (`W1 -= lr_g_W1`), a step equals eager SGD."""
    rng = np.random.default_rng(0)
    params = nn.init_mlp([32, 128, 64, 10], rng=rng)
    x, y = rng.normal(size=(64, 32)), rng.integers(0, 10, 64)

    def loss(p, x, y):
        return nn.softmax_cross_entropy(nn.mlp(p, x, activation=nn.relu), y)

    step = compile_step(loss, optim.SGD(lr=0.1))
    source = step.source(params, x, y)
    assert "z1 += b1" in source and "out=z1" in source and "out=lr_g_a1" in source, source
    assert "W1 -= lr_g_W1" in source and "*= lr" not in source and "lr *" not in source, source
    expected_grads = grad(loss)(params, x, y)
    expected = {k: params[k] - 0.1 * expected_grads[k] for k in params}
    expected_loss = loss(params, x, y)
    np.testing.assert_allclose(step(params, x, y), expected_loss)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-12)

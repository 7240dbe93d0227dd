"""The lecture's two differentiation quizzes, solved by the compiler.

Quiz 1: y = exp(xz) + xz/log(x) + sin(log(x))/(xz) at x=2, z=3; the answer is
E: [dy/dx, dy/dz] = [1208, 810]. Quiz 2: the gradients of a two-hidden-layer
sigmoid network y = σ(βᵀσ(α⁽²⁾ᵀσ(α⁽¹⁾ᵀx))) with respect to every α and β.
"""
import numpy as np
import pytest

from compiler import grad, value_and_grad
from runtime.check import check_grad, numerical_grad
from quiz_functions import quiz, quiz2, quiz_one_liner

X, Z = 2.0, 3.0
CHOICES = {"A": [42, -72], "B": [72, -42], "C": [100, 127], "D": [127, 100],
           "E": [1208, 810], "F": [810, 1208], "G": [1505, 94], "H": [94, 1505]}


def exact_quiz1(x, z):
    """The quiz's derivatives worked out by hand with the chain rule."""
    y = np.exp(x * z) + x * z / np.log(x) + np.sin(np.log(x)) / (x * z)
    dy_dx = (z * np.exp(x * z) + z / np.log(x) - z / np.log(x) ** 2
             + np.cos(np.log(x)) / (x * x * z) - np.sin(np.log(x)) / (x * x * z))
    dy_dz = x * np.exp(x * z) + x / np.log(x) - np.sin(np.log(x)) / (x * z * z)
    return y, dy_dx, dy_dz


def lecture_backward(x, z):
    """The lecture's own backward pass, line by line (g_y = g_d = g_e = g_f = 1)."""
    a = x * z
    b = np.log(x)
    c = np.sin(b)
    d = np.exp(a)
    g_c = 1 / a
    g_b = g_c * np.cos(b) - a / b ** 2
    g_a = d + 1 / b - c / a ** 2
    return g_a * z + g_b / x, g_a * x


@pytest.mark.parametrize("f", [quiz, quiz_one_liner], ids=["lecture_style", "one_liner"])
def test_quiz1_gradient_is_answer_E(f):
    dx, dz = grad(f, argnums=(0, 1))(X, Z)
    _, want_dx, want_dz = exact_quiz1(X, Z)
    np.testing.assert_allclose([dx, dz], [want_dx, want_dz], rtol=1e-13)
    np.testing.assert_allclose([dx, dz], lecture_backward(X, Z), rtol=1e-13)
    assert dx == pytest.approx(1208.3812151266, rel=1e-12)
    assert dz == pytest.approx(809.7074792186, rel=1e-12)
    rounded = [int(np.rint(dx)), int(np.rint(dz))]
    assert [letter for letter, answer in CHOICES.items() if answer == rounded] == ["E"]


@pytest.mark.parametrize("f", [quiz, quiz_one_liner], ids=["lecture_style", "one_liner"])
def test_quiz1_value_and_grad(f):
    value, (dx, dz) = value_and_grad(f, argnums=(0, 1))(X, Z)
    want_y, want_dx, want_dz = exact_quiz1(X, Z)
    assert value == pytest.approx(412.19145728412, rel=1e-12)
    np.testing.assert_allclose([value, dx, dz], [want_y, want_dx, want_dz], rtol=1e-13)
    assert value == f(X, Z)  # the fused function computes the forward value exactly as NumPy does


def test_quiz1_single_argnums_and_finite_differences():
    assert grad(quiz)(X, Z) == pytest.approx(1208.3812151266, rel=1e-12)
    assert grad(quiz, argnums=1)(X, Z) == pytest.approx(809.7074792186, rel=1e-12)
    result = check_grad(quiz, X, Z, argnums=(0, 1), rtol=1e-6)
    assert result.ok, str(result)


def test_quiz1_at_other_points_and_as_arrays():
    """The same compiled function holds at other points, and elementwise on arrays."""
    xs, zs = np.array([1.5, 2.0, 3.0]), np.array([0.5, 3.0, -1.0])
    dx, dz = grad(lambda x, z: np.sum(quiz(x, z)), argnums=(0, 1))(xs, zs)
    _, want_dx, want_dz = exact_quiz1(xs, zs)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12)
    np.testing.assert_allclose(dz, want_dz, rtol=1e-12)


# --- quiz 2 --------------------------------------------------------------------------

def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def backprop_quiz2(alpha1, alpha2, beta, x):
    """Quiz 2 by hand: forward, then the chain rule with σ'(a) = σ(a)(1 - σ(a))."""
    z1 = sigmoid(alpha1.T @ x)
    z2 = sigmoid(alpha2.T @ z1)
    y = sigmoid(beta @ z2)
    g_b = y * (1 - y)               # dy/d(βᵀz2)
    g_beta = g_b * z2
    g_a2 = g_b * beta * z2 * (1 - z2)   # dy/d(α⁽²⁾ᵀz1)
    g_alpha2 = np.outer(z1, g_a2)
    g_a1 = (alpha2 @ g_a2) * z1 * (1 - z1)  # dy/d(α⁽¹⁾ᵀx)
    g_alpha1 = np.outer(x, g_a1)
    return y, (g_alpha1, g_alpha2, g_beta)


@pytest.fixture
def quiz2_args():
    rng = np.random.default_rng(7)
    d0, d1, d2 = 3, 4, 2  # non-square everywhere, so a wrong transpose cannot pass
    return (rng.normal(size=(d0, d1)), rng.normal(size=(d1, d2)), rng.normal(size=d2),
            rng.normal(size=d0))


def test_quiz2_matches_hand_written_backprop(quiz2_args):
    value, grads = value_and_grad(quiz2, argnums=(0, 1, 2))(*quiz2_args)
    want_y, want_grads = backprop_quiz2(*quiz2_args)
    assert value == pytest.approx(want_y, rel=1e-14)
    assert 0 < value < 1
    for got, want, arg in zip(grads, want_grads, quiz2_args):
        assert got.shape == arg.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_quiz2_matches_finite_differences(quiz2_args):
    grads = grad(quiz2, argnums=(0, 1, 2))(*quiz2_args)
    numeric = numerical_grad(quiz2, *quiz2_args, argnums=(0, 1, 2))
    for got, want in zip(grads, numeric):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert check_grad(quiz2, *quiz2_args, argnums=(0, 1, 2)).ok


def test_quiz2_gradient_wrt_input(quiz2_args):
    """dy/dx too: the chain continues through α⁽¹⁾ᵀ."""
    alpha1, alpha2, beta, x = quiz2_args
    g_x = grad(quiz2, argnums=3)(*quiz2_args)
    z1 = sigmoid(alpha1.T @ x)
    z2 = sigmoid(alpha2.T @ z1)
    y = sigmoid(beta @ z2)
    g_a1 = (alpha2 @ (y * (1 - y) * beta * z2 * (1 - z2))) * z1 * (1 - z1)
    np.testing.assert_allclose(g_x, alpha1 @ g_a1, rtol=1e-12)


def test_example_script_prints_answer_E(capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "quiz.py"
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "rounded: [1208, 810]  ->  answer E" in out
    assert "def f_value_and_grad(x, z):" in out and "return (y, (g_x, g_z))" in out

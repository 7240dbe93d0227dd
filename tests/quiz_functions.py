"""The lecture's quiz functions, kept in their own module so that the `# file:LINE`
comments in generated code (and so the golden file) do not move when tests change.
Do not reorder or edit these lines without regenerating tests/golden/."""
import numpy as np


def quiz(x, z):
    a = x * z
    b = np.log(x)
    c = np.sin(b)
    d = np.exp(a)
    e = a / b
    f = c / a
    y = d + e + f
    return y


def quiz_one_liner(x, z):
    return np.exp(x * z) + x * z / np.log(x) + np.sin(np.log(x)) / (x * z)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def quiz2(alpha1, alpha2, beta, x):
    """y = σ(βᵀ σ(α⁽²⁾ᵀ σ(α⁽¹⁾ᵀ x))) with α⁽ⁱ⁾ of shape D⁽ⁱ⁻¹⁾ × D⁽ⁱ⁾ (the lecture's
    matrix form, α⁽²⁾ ∈ R^{D1×D2}, which is what makes α⁽¹⁾ᵀx well defined)."""
    z1 = sigmoid(alpha1.T @ x)
    z2 = sigmoid(alpha2.T @ z1)
    y = sigmoid(beta @ z2)
    return y


def shadowing(sum, list):
    """User variables named like builtins, and one named like the NumPy alias."""
    import numpy

    np = numpy.sin(sum * list)
    len = np + list
    max = numpy.exp(len)
    return numpy.sum(max)

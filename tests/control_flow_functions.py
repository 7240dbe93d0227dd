"""Functions with Python control flow on traced values, kept in their own file so that
line numbers in generated code (and so tests/golden/quiz_branch_value_and_grad.py)
do not move when tests change. Do not reorder or edit these lines without
regenerating tests/golden/."""
import numpy as np


def quiz_branch(x, z):
    a = x * z
    if a > 1.0:
        y = np.exp(a) + a / np.log(x)
    else:
        y = np.sin(np.log(x)) / a
    return y


def piecewise(x):
    if np.sum(x) > 0:
        return np.sum(np.sin(x) * x)
    return np.sum(x ** 3)


def newton_sqrt(a):
    x = a / 2.0
    x_prev = x + 1.0
    while np.abs(x - x_prev) > 1e-10:
        x_prev, x = x, 0.5 * (x + a / x)
    return x


def taylor_exp(x):
    total, term, n = 0.0, 1.0, 0
    while True:
        total = total + term
        n += 1
        term = term * x / n
        if float(np.abs(term)) < 1e-12:
            break
    return total

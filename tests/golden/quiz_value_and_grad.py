import numpy as np


def quiz_value_and_grad(x, z):
    a = x * z  # quiz_functions.py:8
    b = np.log(x)  # quiz_functions.py:9
    c = np.sin(b)  # quiz_functions.py:10
    d = np.exp(a)  # quiz_functions.py:11
    e = a / b  # quiz_functions.py:12
    f = c / a  # quiz_functions.py:13
    y = d + e + f  # quiz_functions.py:14
    # grad of: quiz_functions.py:13  f = c / a
    g_c = 1.0 / a
    # grad of: quiz_functions.py:9  b = np.log(x)
    g_b = g_c * np.cos(b) - e / b
    # grad of: quiz_functions.py:8  a = x * z
    g_a = d + 1.0 / b - f / a
    g_z = g_a * x
    g_x = g_a * z + g_b / x
    return (y, (g_x, g_z))

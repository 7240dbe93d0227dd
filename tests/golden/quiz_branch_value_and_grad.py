import numpy as np
from runtime.paths import PathMiss


def quiz_branch_value_and_grad(x, z):
    a = x * z  # control_flow_functions.py:9
    if not bool(a > 1.0):  # control_flow_functions.py:10
        raise PathMiss('control_flow_functions.py:10: if a > 1.0:')
    t2 = np.exp(a)  # control_flow_functions.py:11
    t3 = np.log(x)  # control_flow_functions.py:11
    t4 = a / t3  # control_flow_functions.py:11
    y = t2 + t4  # control_flow_functions.py:11
    # grad of: control_flow_functions.py:9  a = x * z
    g_a = t2 + 1.0 / t3
    g_z = g_a * x
    g_x = g_a * z - t4 / t3 / x
    return (y, (g_x, g_z))

"""The lecture's differentiation quiz #1, solved by adjoint.

    Suppose x = 2 and z = 3. What are dy/dx and dy/dz for
    y = exp(xz) + xz/log(x) + sin(log(x))/(xz)?  Round to the nearest integer.

Run: make quiz   (or: python examples/quiz.py)
"""
import numpy as np

from compiler import grad, value_and_grad

CHOICES = {"A": [42, -72], "B": [72, -42], "C": [100, 127], "D": [127, 100],
           "E": [1208, 810], "F": [810, 1208], "G": [1505, 94], "H": [94, 1505]}


def f(x, z):
    a = x * z
    b = np.log(x)
    c = np.sin(b)
    d = np.exp(a)
    e = a / b
    f = c / a
    y = d + e + f
    return y


def main() -> None:
    print(__doc__.split("Run:")[0].rstrip())
    dy_dx, dy_dz = grad(f, argnums=(0, 1))(2.0, 3.0)
    answer = [int(np.rint(dy_dx)), int(np.rint(dy_dz))]
    letter = next(k for k, v in CHOICES.items() if v == answer)
    print(f"\ndy/dx = {dy_dx:.4f}, dy/dz = {dy_dz:.4f}")
    print(f"rounded: {answer}  ->  answer {letter}")
    print("\nThe generated value_and_grad, plain NumPy:\n")
    print(value_and_grad(f, argnums=(0, 1)).source(2.0, 3.0))


if __name__ == "__main__":
    main()

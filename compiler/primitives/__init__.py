"""The primitive table: one registry, one module per family.

Each primitive states, side by side, its shape/dtype rule (`abstract`), how it prints
as NumPy (`emit`) and its vector-Jacobian product written with traced values, so
every rule builds IR. Importing this package registers every family.
"""
from compiler.primitives.registry import Primitive, get, register, registered  # noqa: F401
from compiler.primitives import elementwise, reduce, shape, indexing, linalg, decompositions, nn, random, scipy_special, custom  # noqa: F401,E402
from compiler.primitives import fft  # noqa: F401,E402
from compiler.primitives import scipy_linalg  # noqa: F401,E402
from compiler.primitives import control  # noqa: F401,E402

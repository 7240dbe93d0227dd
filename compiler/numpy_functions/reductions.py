"""NumPy's reductions functions on traced values (see compiler/numpy_functions/__init__.py)."""

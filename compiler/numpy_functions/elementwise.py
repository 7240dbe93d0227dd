"""NumPy's elementwise functions on traced values (see compiler/numpy_functions/__init__.py)."""

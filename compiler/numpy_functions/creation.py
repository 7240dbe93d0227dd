"""Array creation and assignment on traced values (see compiler/numpy_functions/__init__.py)."""

"""Run-time support for adjoint: NumPy building blocks that need no compiler."""

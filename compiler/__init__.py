"""adjoint: a gradient compiler for NumPy.

Trace a NumPy function into an SSA graph, build its adjoint program, optimize it and
emit plain NumPy source for one fused forward+backward function.
"""
from compiler import primitives as _primitives  # noqa: F401  (registers every primitive)
from compiler import fused_dispatch as _fused_dispatch  # noqa: F401  (installs NumPy dispatch for tracers)
from compiler import numpy_functions as _numpy_functions  # noqa: F401  (registers NumPy function handlers)
from compiler import scipy_dispatch as _scipy_dispatch  # noqa: F401  (SciPy's Python functions on traced values)
from compiler.api import grad, jit, value_and_grad
from compiler.step import compile_step
from compiler.derivatives import hessian, hvp, jacfwd, jacobian, jacrev, jvp, linearize, vjp
from compiler.custom import custom_jvp, custom_vjp, stop_gradient
from compiler.structured import cond, fori_loop, scan, while_loop
from compiler import pictures as _pictures, standalone as _standalone  # noqa: F401  (register .graph and .save)
from compiler import ode as _ode  # noqa: F401  (scipy.integrate's solvers on traced values)
from compiler.config import clear_cache, debug_nans, explain_retraces, set_cache_size
from compiler.errors import (
    AdjointError, ArgumentError, GradError, NonFiniteError, ShapeError, SolverError, TracingError, UnsupportedError,
)
from runtime import check as _check

_check.use_gradient(lambda f, argnums: grad(f, argnums=argnums))
_check.use_derivatives(jvp, vjp)

def __dir__() -> list[str]:
    return list(__all__)


__all__ = [
    "grad", "value_and_grad", "jit", "compile_step", "jvp", "vjp", "linearize", "jacfwd", "jacrev", "jacobian",
    "hessian", "hvp", "custom_vjp", "custom_jvp", "stop_gradient", "cond", "fori_loop", "while_loop", "scan",
    "clear_cache", "set_cache_size", "debug_nans", "explain_retraces",
    "AdjointError", "ArgumentError", "GradError", "NonFiniteError", "ShapeError", "SolverError", "TracingError",
    "UnsupportedError",
]

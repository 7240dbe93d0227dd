"""Writes docs/numpy-support.md from the compiler's own tables: the primitive registry
(ufuncs and operators), the NumPy function handlers, and the array methods of traced
values. `make docs` runs it; tests/test_docs.py fails when the page is out of date.

    python docs/numpy_support.py            # print the page
    python docs/numpy_support.py --write    # rewrite docs/numpy-support.md
"""
from __future__ import annotations

import sys
from pathlib import Path

import compiler  # noqa: F401  (registers every primitive and handler)
from compiler.numpy_dispatch import FUNCTIONS, NO_GRADIENT
from compiler.primitives import registry
from compiler.primitives.scipy_special import SCIPY_UFUNCS
from compiler.scipy_dispatch import SUPPORTED
from compiler.tracing import Tracer

PAGE = Path(__file__).with_name("numpy-support.md")

_OPERATORS = {
    "add": "+", "subtract": "-", "multiply": "*", "divide": "/", "power": "**", "matmul": "@",
    "remainder": "%", "floor_divide": "//", "negative": "unary -", "absolute": "abs()",
    "greater": ">", "greater_equal": ">=", "less": "<", "less_equal": "<=", "equal": "==", "not_equal": "!=",
}

LIMITS = """\
## Known limits

- **Data-dependent control flow** (`if x > 0:` on a traced scalar, `while`, `float()`,
  `.item()`) works: each decision is a guard and each path the values take compiles
  once (see the README's "Control flow and dynamic shapes"); the truth of an array of several
  elements is refused, as NumPy refuses it. **Data-dependent sizes** (`x[mask]` with a
  traced mask, read and written, `np.nonzero`, `flatnonzero`, `argwhere`,
  `where(c)`, `compress`, `extract`, `unique`) work the same way: the number of
  elements selected is a decision, and each count compiles one path.
- **Complex values**: `grad` of a real loss through complex arithmetic (`+ - * /`,
  `**` and `float_power` with an exponent that is not differentiated), the
  holomorphic functions (`exp`, `exp2`, `expm1`, `log`, `log2`, `log10`, `log1p`,
  `sqrt`, `square`, `reciprocal`, the trigonometric and hyperbolic functions and
  their inverses, on NumPy's principal branches), `abs`, `real`, `imag`, `conj`,
  `angle`, `where`, casts, the shape, indexing and padding functions, assignment
  `x[i] = v`, `sum`, `mean`, `nansum`, `nanmean`, `cumsum`, `tril`, `triu`, `diag`,
  the products (`@`, `dot`, `einsum`, `tensordot`, `inner`, `outer`, `kron`,
  `cross`, `convolve`, `prod`, `cumprod`) and `linalg.inv`, `solve`, `det`,
  `slogdet` follows PyTorch's convention (the gradient in z = x + iy is
  dL/dx + i dL/dy, so `z -= lr * g` descends; JAX's is its conjugate). Other
  operations on complex values on a differentiated path (orderings such as
  `maximum`, `max`, `sort`, `median`; `linalg.norm`, `cholesky`, `eigh`, `svd`,
  `pinv`) are refused at your line (differentiate the real and imaginary parts as
  float arrays), as are complex outputs of `grad`. Forward mode (`jvp`, `hvp`,
  `jacfwd`, `hessian`) goes through the same operations: a tangent t of z moves
  `f(z)` by `f'(z) t` (not conjugated), `abs`, `angle`, `real`, `imag` give real
  tangents, and real inputs may pass through complex values; `jacfwd` and `hessian`
  with respect to a complex input are refused (their basis spans only the real
  directions: use `jacrev`, `hvp` or `jvp`), as is a complex tangent of a real input.
- **Code that leaves NumPy** (C code, `np.asarray(x)` handed to a library, a
  simulator) cannot be traced: wrap it in `custom_vjp` / `custom_jvp` with your rule,
  and the generated code calls it when it runs. `np.array([a, b])` of traced values
  traces when called as an attribute of the numpy module (`np.array`); a name bound
  by `from numpy import array` is NumPy's own constructor and is refused (use
  `np.stack`). A NumPy array the function makes itself (`table = np.cos(...)`) cannot
  be indexed with traced indices (NumPy's own indexing runs): make it with
  `np.zeros(shape, like=i) + table`; arrays read from globals and closures can.
- **Non-differentiable points** follow JAX's conventions: `abs`, `sign`-like functions
  and `relu` have gradient 0 at 0; ties in `max`, `min`, `maximum`, `minimum`,
  `median` share the gradient evenly; piecewise-constant functions (`floor`, `round`,
  ...) cut the gradient. `np.where` masks the unselected branch's cotangent, so a NaN
  or infinity there never reaches the gradient.
- **Linear algebra**: gradients of `inv`, `solve`, `det`, `slogdet` need a
  non-singular matrix (NumPy raises at run time otherwise); repeated eigenvalues or
  singular values give the gradient of the basis-independent part (their divided
  differences are taken as 0); `svd(full_matrices=True)` of a non-square matrix is
  refused when U or Vh is differentiated.
- **Assignment** `x[i] = v` is a functional update that rebinds `x`; it is refused
  while another variable still holds a view of `x` that NumPy would update too
  (`.copy()` the view).
- **Random numbers** come from a `np.random.Generator` argument (`rng.random`,
  `rng.uniform`, `rng.normal`, `rng.standard_normal`, `rng.integers`); NumPy's global
  random state is refused while tracing.
- **Keywords** `out=`, `where=`, `initial=` and a `dtype=` that changes precision are
  refused where NumPy has them.
"""


def _function_name(fn) -> str:
    module = getattr(fn, "__module__", None) or "numpy"
    prefix = module[len("numpy."):] + "." if module.startswith("numpy.") and "._" not in module else ""
    return f"np.{prefix}{fn.__name__}"


def _ufunc_rows() -> list[str]:
    rows = []
    for name, prim in sorted(registry.registered().items()):
        if not prim.ufunc or name in SCIPY_UFUNCS:
            continue
        gradient = "yes" if prim.differentiable else "no (integer, boolean or piecewise constant)"
        operator = f"`{_OPERATORS[name]}`" if name in _OPERATORS else ""
        rows.append(f"| `np.{name}` | {operator} | {gradient} |")
    return rows


def _special_gradient(prim: registry.Primitive) -> str:
    if not prim.differentiable:
        return "no (piecewise constant)"
    if getattr(prim.vjp, "last_operand_only", False):
        return "in its last argument (the order or shape parameters are refused)"
    return "yes"


def _scipy_rows() -> list[str]:
    spelled = {"psi": "digamma (psi)"}
    ufuncs = [f"| `scipy.special.{spelled.get(name, name)}` | {_special_gradient(registry.get(name))} |"
              for name in sorted(SCIPY_UFUNCS)]
    return ufuncs + [f"| `{name}` | yes |" for name in SUPPORTED]


def _function_rows() -> list[str]:
    rows = []
    for fn in sorted(FUNCTIONS, key=_function_name):
        gradient = "no" if fn in NO_GRADIENT else "yes"
        rows.append(f"| `{_function_name(fn)}` | {gradient} |")
    return sorted(set(rows))


def _methods() -> list[str]:
    return sorted(
        name for name, member in vars(Tracer).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
        and name not in ("apply", "same_value")
    )


def page() -> str:
    ufuncs, functions = _ufunc_rows(), _function_rows()
    lines = [
        "# NumPy on traced values",
        "",
        "Generated by `python docs/numpy_support.py --write` (`make docs`) from the primitive",
        "registry and the function handlers; `tests/test_docs.py` keeps it current. Every",
        "gradient listed (and its forward-mode tangent) is checked against finite differences in the test suite, float32",
        "stays float32, and the generated code calls the same NumPy function.",
        "",
        f"{len(ufuncs)} ufuncs, {len(functions)} functions, {len(_methods())} array methods and attributes.",
        "",
        "## Ufuncs and operators",
        "",
        "| ufunc | operator | gradient |",
        "|---|---|---|",
        *ufuncs,
        "",
        "## SciPy (when installed, in your own code)",
        "",
        "scipy.special's ufuncs reach traced values through NumPy's ufunc protocol. SciPy's",
        "Python functions convert their arguments with `np.asarray`; the ones models call",
        "most (below) are made to dispatch when SciPy loads (SciPy's function objects",
        "themselves, so the order of imports does not matter), so they trace as written and",
        "untraced calls run SciPy's own code (compiler/scipy_dispatch.py). `scipy.integrate",
        ".odeint` and `solve_ivp` run SciPy's solver and differentiate by the adjoint method",
        "(compiler/ode.py). Any other SciPy function on a traced value is an error that names",
        "your line and the SciPy function and shows an equivalent that traces where there is one.",
        "",
        "| function | gradient |",
        "|---|---|",
        *_scipy_rows(),
        "",
        "## Functions",
        "",
        "| function | gradient |",
        "|---|---|",
        *functions,
        "",
        "## Array methods and attributes",
        "",
        ", ".join(f"`.{m}`" for m in _methods()),
        "",
        LIMITS,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        PAGE.write_text(page())
    else:
        sys.stdout.write(page())

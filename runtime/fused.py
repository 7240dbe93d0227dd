"""The protocol that lets a compiler see a runtime function as one primitive.

`runtime` must not import `compiler`, yet numerically delicate functions such as
`logsumexp` or `softmax_cross_entropy` should compile to a single primitive with its
own stable gradient instead of being traced op by op. Like NumPy's
`__array_function__` (NEP 18), the decision is left to the argument types: when any
positional argument's type defines `__adjoint_fused__`, the call is handed to it as
`type(arg).__adjoint_fused__(name, impl, args, kwargs)`; otherwise the plain NumPy
implementation runs eagerly.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

F = Callable[..., Any]


def fused(fn: F) -> F:
    """Mark `fn` as a fused primitive named `runtime.<module>.<name>`."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        for arg in args:
            handler = getattr(type(arg), "__adjoint_fused__", None)
            if handler is not None:
                return handler(name, fn, args, kwargs)
        return fn(*args, **kwargs)

    dispatch.__adjoint_fused_name__ = name
    return dispatch


def named(value: Any, name: str) -> Any:
    """`value` itself, with a name hint for generated code when it is traced: a
    library function names its intermediates the way a reader would (`z1`, `a1`,
    `logits`), where its loop variables alone would give `h`, `h_1`, ... A name the
    caller gives the same value still wins. Eagerly this does nothing."""
    hint = getattr(type(value), "__adjoint_name__", None)
    if hint is not None:
        hint(value, name)
    return value

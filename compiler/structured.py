"""JAX's structured control flow, `cond`, `fori_loop`, `while_loop` and `scan`, with
JAX's signatures, for code written for JAX (or written to be explicit).

They run their functions as Python: on plain NumPy values they simply compute, and
inside a transform their decisions are decisions on traced values (an `if` or a
`while` on data is a guard, compiler/evaluation.py), so they differentiate in both
modes, reverse through `while_loop` included (JAX refuses that), as the path the
values take. Loops are unrolled into the compiled path: the generated code does not
keep them as loops yet.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import UnsupportedError, at_user_line
from runtime import tree


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`."""
    return true_fun(*operands) if pred else false_fun(*operands)


def fori_loop(lower: int, upper: int, body_fun: Callable[[int, Any], Any], init_val: Any) -> Any:
    """`val = body_fun(i, val)` for i in range(lower, upper), from `init_val`."""
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def while_loop(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any) -> Any:
    """`val = body_fun(val)` while `cond_fun(val)`, from `init_val`."""
    val = init_val
    while cond_fun(val):
        val = body_fun(val)
    return val


def scan(f: Callable[[Any, Any], tuple], init: Any, xs: Any = None, length: Optional[int] = None,
         reverse: bool = False) -> tuple:
    """`carry, y = f(carry, x)` over the leading axis of `xs` (a pytree), returning the
    final carry and the `y`s stacked along a new leading axis, as jax.lax.scan."""
    leaves, treedef = tree.flatten(xs)
    if leaves:
        length = np.shape(leaves[0])[0]
    elif length is None:
        raise at_user_line(UnsupportedError, "scan needs xs or a length")
    carry, ys = init, []
    for i in (reversed(range(length)) if reverse else range(length)):
        x = tree.unflatten(treedef, [leaf[i] for leaf in leaves]) if leaves else None
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        return carry, None
    y_leaves = [tree.flatten(y)[0] for y in ys]
    stacked = [np.stack([row[k] for row in y_leaves]) for k in range(len(y_leaves[0]))]
    return carry, tree.unflatten(tree.flatten(ys[0])[1], stacked)

"""The fast path of a training step's call.

A training loop calls `step(params, x, y)` with the same params and state objects,
holding the same arrays (updated in place), and batches of one shape. The general
path flattens every pytree and rebuilds a cache key each call (about 17 us for an MLP);
this one checks, by identity, that every container of params and state still holds
exactly the objects it held at the last call and that the batch has the same types,
shapes and dtypes, then calls the generated function directly. Anything else takes
the general path.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from runtime import tree


@dataclass
class LastCall:
    """What the previous call looked like, and how to make the next one."""

    params: Any
    state: Any
    containers: list[tuple[Any, tuple]]  # each dict/list/tuple of params and state, and its items
    leaves: list[Any]  # the arrays of params and state, in the generated function's order
    batch_key: tuple
    structure: tuple
    debug: bool
    compiled: Any  # api.Compiled
    fn: Callable = None  # the generated function
    lock: Any = None  # held while a call uses the function's kept arrays; None when it keeps none
    plain: bool = False  # the function returns the loss itself (no aux to rebuild)

    def __post_init__(self) -> None:
        self.fn, self.lock = self.compiled.generated.fn, self.compiled.kept_arrays_lock


def batch_key(batch: tuple) -> Optional[tuple]:
    """Types, shapes and dtypes of a batch of arrays and Python floats; None for
    anything else (ints and other static values take the general path)."""
    key = []
    for b in batch:
        kind = type(b)
        if kind is np.ndarray:
            key.append((b.shape, b.dtype))
        elif kind is float:
            key.append(float)
        else:
            return None
    return tuple(key)


def _items(container: Any) -> tuple:
    return tuple(container.values()) if isinstance(container, dict) else tuple(container)


def _containers(tree_: Any, out: list) -> None:
    if isinstance(tree_, (dict, list, tuple)):
        items = _items(tree_)
        out.append((tree_, items))
        for item in items:
            _containers(item, out)


def record(params: Any, state: Any, batch: tuple, structure: tuple, debug: bool, compiled: Any,
           traced_count: int, hyper_count: int, plain: bool = False) -> Optional[LastCall]:
    """A LastCall for this call, or None when its leaves are not all traced arrays
    (then the fast path's argument order would not be the generated function's)."""
    key = batch_key(batch)
    leaves = tree.flatten((params, state))[0]
    if key is None or not all(type(leaf) is np.ndarray for leaf in leaves):
        return None
    if traced_count != len(leaves) + hyper_count + len(batch):
        return None
    containers: list = []
    _containers(params, containers)
    _containers(state, containers)
    return LastCall(params, state, containers, leaves, key, structure, debug, compiled, plain=plain)


def arguments(last: LastCall, params: Any, state: Any, batch: tuple, structure: tuple, debug: bool,
              hyper: list) -> Optional[list]:
    """The generated function's arguments for this call, or None to take the general
    path: the same params and state objects, every container holding the same items
    (so the same arrays), the same optimizer structure, the same batch types, and
    guards that still hold."""
    if params is not last.params or state is not last.state or debug != last.debug:
        return None
    for container, items in last.containers:  # parents hold their children: one level checks the next
        now = container.values() if isinstance(container, dict) else container
        if len(now) != len(items) or not all(map(operator.is_, now, items)):
            return None
    if structure != last.structure or not _same_batch(batch, last.batch_key) or not last.compiled.current():
        return None
    return [*last.leaves, *hyper, *batch]


def _same_batch(batch: tuple, key: tuple) -> bool:
    """`batch_key(batch) == key`, without building the key."""
    if len(batch) != len(key):
        return False
    for b, k in zip(batch, key):
        kind = type(b)
        if kind is np.ndarray:
            if k is float or b.shape != k[0] or b.dtype != k[1]:
                return False
        elif kind is not float or k is not float:
            return False
    return True


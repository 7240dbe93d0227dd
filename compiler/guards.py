"""Guards: the global and closure values a trace read, so that a compiled function
never runs with stale ones.

While a function is traced, every user frame that starts has its globals (the names
its code reads) and the traced function's closure cells looked at. Numbers and
arrays there, and dicts, lists and tuples of them, are recorded by identity. A
compiled function checks its guards on every call; when the user has rebound one
(`W = new_W`, `scale = 0.5`), the function is traced again. Arrays themselves are
referenced, never copied, so in-place changes (`W[...] = 0`, `W -= 0.1`) are seen
by the next call without a retrace.
"""
from __future__ import annotations

import pickle
from types import CellType, CodeType, FrameType
from typing import Any, Callable, Optional

import numpy as np

from runtime import tree

_NUMBERS = (bool, int, float, complex, np.ndarray, np.generic)
_CONTAINERS = (dict, list, tuple)
MAX_CONTAINER_LEAVES = 256  # larger containers are guarded only by identity


def _guardable(value: Any) -> bool:
    if isinstance(value, _NUMBERS):
        return True
    if isinstance(value, _CONTAINERS) and value:
        leaves, _ = tree.flatten(value)
        return all(isinstance(leaf, _NUMBERS) for leaf in leaves)
    return False


def _snapshot(value: Any) -> Any:
    """What must stay the same: the object, and for a small container its structure
    and the identity of each leaf."""
    if isinstance(value, _CONTAINERS):
        leaves, treedef = tree.flatten(value)
        if len(leaves) <= MAX_CONTAINER_LEAVES:
            return value, treedef, tuple(map(id, leaves))
    return value, None, None


def _unchanged(current: Any, snapshot: Any) -> bool:
    value, treedef, leaf_ids = snapshot
    if current is not value:
        return False
    if treedef is None:
        return True
    leaves, now = tree.flatten(current)
    return now == treedef and tuple(map(id, leaves)) == leaf_ids


_MISSING = object()


class Guards:
    """The values one trace read from globals and closures."""

    def __init__(self) -> None:
        self.globals: dict[tuple[int, str], tuple[dict, str, Any]] = {}
        self.cells: dict[int, tuple[CellType, Any]] = {}
        self.names: dict[int, str] = {}  # id of a watched array -> the user's name for it
        self._seen_code: set[tuple[int, CodeType]] = set()
        self._aliases: dict[int, dict] = {}  # id of a globals copy a trace runs in -> the module's own dict

    def watch_function(self, fn: Callable) -> None:
        """The closure cells of the traced function itself."""
        code, closure = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
        if code is None or not closure:
            return
        for name, cell in zip(code.co_freevars, closure):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if _guardable(value):
                self.cells[id(cell)] = (cell, _snapshot(value))
                self._name(value, name)

    def watch_frame(self, frame: FrameType) -> None:
        """The globals a starting user frame's code reads."""
        namespace = self._aliases.get(id(frame.f_globals), frame.f_globals)
        key = (id(namespace), frame.f_code)
        if key in self._seen_code:
            return
        self._seen_code.add(key)
        for name in frame.f_code.co_names:
            self.watch_global(namespace, name)

    def watch_global(self, namespace: dict, name: str) -> None:
        """The value of global `name` of `namespace`, if it is a number or an array."""
        value = namespace.get(name, _MISSING)
        if value is not _MISSING and (id(namespace), name) not in self.globals and _guardable(value):
            self.globals[(id(namespace), name)] = (namespace, name, _snapshot(value))
            self._name(value, name)

    def alias(self, copy: dict, namespace: dict) -> None:
        """Frames running in `copy` (a copy of the module dict `namespace` in which a
        trace runs a function) read `namespace`'s names: guard those."""
        self._aliases[id(copy)] = namespace

    def _name(self, value: Any, name: str) -> None:
        if isinstance(value, np.ndarray):
            self.names.setdefault(id(value), name)
        elif isinstance(value, _CONTAINERS):
            leaves, _ = tree.flatten(value)
            paths = tree.leaf_paths(value)
            for leaf, path in zip(leaves, paths):
                if isinstance(leaf, np.ndarray):
                    self.names.setdefault(id(leaf), "_".join([name, *map(str, path)]))

    def captured_name(self, array: Any) -> Optional[str]:
        """The user's name for an array read from a global or closure, else None."""
        return self.names.get(id(array))

    def absorb(self, other: "Guards") -> None:
        """Take on the guards of a compiled function inlined into this trace."""
        self.globals.update(other.globals)
        self.cells.update(other.cells)
        for key, name in other.names.items():
            self.names.setdefault(key, name)

    def freeze(self) -> "Check":
        return Check([entry for entry in self.globals.values()], list(self.cells.values()))


class Check:
    """The compiled function's side of the guards: `holds()` on every call."""

    __slots__ = ("globals", "cells")

    def __init__(self, globals_: list[tuple[dict, str, Any]], cells: list[tuple[CellType, Any]]):
        self.globals = globals_
        self.cells = cells

    def __bool__(self) -> bool:
        return bool(self.globals or self.cells)

    def holds(self) -> bool:
        for namespace, name, snapshot in self.globals:
            if not _unchanged(namespace.get(name, _MISSING), snapshot):
                return False
        for cell, snapshot in self.cells:
            try:
                current = cell.cell_contents
            except ValueError:
                return False
            if not _unchanged(current, snapshot):
                return False
        return True


def _random_token(generator: Any) -> bytes:
    """The state of a NumPy Generator or RandomState, comparable with ==."""
    bit_generator = generator.bit_generator if isinstance(generator, np.random.Generator) else generator._bit_generator
    return pickle.dumps(bit_generator.state)


class RandomStates:
    """NumPy's global random state and the Generators a traced function can reach
    through its globals and closure, as they were when its trace began. A trace that
    draws from them would freeze the draw into the compiled code (dropout that never
    changes), so a change is refused."""

    def __init__(self, fn: Callable) -> None:
        sources = [np.random.mtrand._rand]
        closure = getattr(fn, "__closure__", None) or ()
        for cell in closure:
            try:
                sources.append(cell.cell_contents)
            except ValueError:
                pass
        sources.extend(getattr(fn, "__globals__", {}).values())
        seen: set[int] = set()
        self.generators = []
        for obj in sources:
            if isinstance(obj, (np.random.Generator, np.random.RandomState)) and id(obj) not in seen:
                seen.add(id(obj))
                self.generators.append((obj, _random_token(obj)))

    def changed(self) -> bool:
        return any(_random_token(generator) != token for generator, token in self.generators)

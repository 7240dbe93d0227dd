"""Abstract signatures: which argument leaves are traced, which are static, and the
cache key that says when a compiled function can be reused.

Floats and arrays are traced (by shape and dtype), and so are Python ints until a
trace needs one's value; bools, strings, None, Ellipsis, slices and such ints are
static (by value: a slice by its start, stop and step, since slices are not hashable
before Python 3.12).
Pytrees of dicts, lists and tuples are flattened with `runtime.tree`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from compiler.errors import ArgumentError, UnsupportedError, at_user_line
from compiler.ir import Aval
from compiler.naming import sanitize
from compiler.tracing import Tracer
from runtime import tree

STATIC_TYPES = (bool, int, str, type(None), type(Ellipsis))


@dataclass
class Signature:
    """A call's arguments seen abstractly."""

    treedef: tree.TreeDef
    leaves: list[Any]
    traced: list[int]  # leaf positions that are traced
    avals: list[Aval]
    names: list[str]  # a readable name per traced leaf
    key: Hashable

    @property
    def positional_count(self) -> int:
        """How many positional arguments the call had."""
        return len(tree.children(self._args_def))

    def argument_def(self, k: int) -> tree.TreeDef:
        """The structure of positional argument `k`."""
        return tree.children(self._args_def)[k]

    def argument_leaves(self, k: int) -> range:
        """The leaf positions (indices into `leaves`) of positional argument `k`."""
        counts = [tree.leaf_count(d) for d in tree.children(self._args_def)]
        start = sum(counts[:k])
        return range(start, start + counts[k])

    @property
    def _args_def(self) -> tree.TreeDef:
        return tree.children(self.treedef)[0]  # the call is flattened as (args, kwargs)


def _leaf_key(leaf: Any, static: bool) -> tuple[Hashable, Aval | None]:
    if isinstance(leaf, Tracer):
        return ("traced", leaf.aval), leaf.aval
    if isinstance(leaf, (float, complex)) and not isinstance(leaf, np.generic):
        # A Python number stays weak (NEP 50): `float32_array * 2.0` is float32.
        aval = Aval((), np.result_type(type(leaf)), weak=True)
        return ("traced", aval), aval
    if isinstance(leaf, (np.ndarray, np.generic)):
        if leaf.dtype == object:
            raise at_user_line(UnsupportedError, "object arrays cannot be arguments; use numeric arrays")
        aval = Aval(np.shape(leaf), leaf.dtype)
        return ("traced", aval), aval
    if isinstance(leaf, np.random.Generator):
        # drawn from at run time (see tracing.TracedGenerator); object dtype marks it
        aval = Aval((), np.dtype(object))
        return ("traced", aval), aval
    if type(leaf) is int and not static:
        # An int is traced as a weak integer until the trace needs its value (a range,
        # a shape, an index, an `if`); then it becomes static (see api.Transformed).
        aval = Aval((), np.dtype(np.int64), weak=True)
        return ("traced", aval), aval
    if isinstance(leaf, STATIC_TYPES):
        return ("static", type(leaf).__name__, leaf), None
    if isinstance(leaf, slice):
        return ("static", "slice", _slice_key(leaf)), None
    raise at_user_line(
        UnsupportedError,
        f"cannot pass a {type(leaf).__name__} as an argument; use NumPy arrays, floats, "
        "static ints/bools/strings, or dicts/lists/tuples of them",
    )


def _slice_key(leaf: slice) -> tuple:
    """A static slice argument's (start, stop, step): ints or None, as in an index."""
    bounds = (leaf.start, leaf.stop, leaf.step)
    if not all(b is None or (isinstance(b, (int, np.integer)) and not isinstance(b, bool)) for b in bounds):
        raise at_user_line(UnsupportedError, f"cannot pass {leaf!r} as an argument: "
                           "a slice argument needs int or None bounds")
    return tuple(None if b is None else int(b) for b in bounds)


def arg_names(fn: Callable, count: int) -> list[str]:
    """Names for the first `count` positional parameters of `fn`."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"arg{k}" for k in range(len(names), count)]


def leaf_names(args: list[str], bases: list[str], paths: list[tuple]) -> list[str]:
    """A readable name per traced leaf from its argument's name `bases[k]` and its path
    inside that argument: a dict leaf is named by its key (`p["W1"]` -> `W1`) when no
    other leaf or argument has that name, else by its whole path (`p_layers_0_W`)."""
    full = ["_".join([base, *map(str, path)]) for base, path in zip(bases, paths)]
    keys = [path[-1] if path and isinstance(path[-1], str) and sanitize(path[-1]) == path[-1] else None for path in paths]
    names = []
    for k, key in enumerate(keys):
        clash = key is None or keys.count(key) > 1 or key in args or key in full
        names.append(full[k] if clash else key)
    return names


def check_call(fn: Callable, args: tuple, kwargs: dict) -> None:
    """Raise ArgumentError at the caller's line unless `fn` accepts these arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as err:
        name = getattr(fn, "__name__", "the function")
        raise at_user_line(
            ArgumentError, f"{name}{sig} cannot be called with these arguments: {err}. "
            "Call the compiled function with the arguments the function itself takes."
        ) from None


def signature(fn: Callable, args: tuple, kwargs: dict, static_ints: frozenset[int] = frozenset(),
              positional_names: list[str] | None = None) -> Signature:
    """`args` and `kwargs` seen abstractly. `static_ints` are leaf positions of ints
    to treat as static; `positional_names` overrides the names read from `fn`."""
    structure = (tuple(args), dict(sorted(kwargs.items())))  # keyword order is not part of a call
    leaves, treedef = tree.flatten(structure)
    paths = tree.leaf_paths(structure)
    arg_list = positional_names or arg_names(fn, len(args))
    keys, traced, avals, bases, subpaths = [], [], [], [], []
    for k, (leaf, path) in enumerate(zip(leaves, paths)):
        leaf_key, aval = _leaf_key(leaf, k in static_ints)
        keys.append(leaf_key)
        if aval is not None:
            traced.append(k)
            avals.append(aval)
            bases.append(arg_list[path[1]] if path[0] == 0 else str(path[1]))
            subpaths.append(path[2:])
    names = leaf_names(arg_list + sorted(kwargs), bases, subpaths)
    return Signature(treedef, leaves, traced, avals, names, (treedef, tuple(keys)))


def retrace_reason(new: Signature, cached: list[Signature], fn: Callable) -> str:
    """Why `new` matches none of the `cached` signatures, in the user's terms: the
    argument of `fn` whose shape, dtype or static value changed against the closest one."""
    same_structure = [old for old in cached if old.treedef == new.treedef]
    if not same_structure:
        return "the arguments' structure changed (pytree structure, keyword names or number of arguments)"
    old = same_structure[-1]
    paths = tree.leaf_paths(tree.unflatten(new.treedef, list(new.leaves)))
    names = arg_names(fn, new.positional_count)
    changes = []
    for k, (before, after) in enumerate(zip(old.key[1], new.key[1])):
        if before != after:
            changes.append(f"{_leaf_label(paths[k], names)}: {_describe(before)} -> {_describe(after)}")
    return "; ".join(changes) or "the same signature was evicted from the cache or a traced int became static"


def _leaf_label(path: tuple, names: list[str]) -> str:
    """`x`, `params['W1']`, `scale` (a keyword): a leaf as the user would name it."""
    base = names[path[1]] if path[0] == 0 else str(path[1])
    return base + "".join(f"[{p!r}]" for p in path[2:])


def _describe(leaf_key: Hashable) -> str:
    if leaf_key[0] == "traced":
        return str(leaf_key[1])
    return f"static {leaf_key[1]} {leaf_key[2]!r}"

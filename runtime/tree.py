"""Pytrees: nested dicts, lists and tuples whose leaves are arrays or scalars.

Both the compiler (to flatten arguments and rebuild gradients) and the runtime (to
map optimizer updates over parameters) use this one small implementation. Dict keys
keep their insertion order, so structure and generated source stay deterministic.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

PathEntry = Hashable
TreeDef = tuple


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Leaves in a fixed order and a hashable description of the structure."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    if isinstance(tree, dict):
        keys = tuple(tree)
        return ("dict", keys, tuple(_flatten(tree[k], leaves) for k in keys))
    if isinstance(tree, (list, tuple)):
        kind = "list" if isinstance(tree, list) else "tuple"
        return (kind, None, tuple(_flatten(v, leaves) for v in tree))
    leaves.append(tree)
    return ("leaf", None, ())


def children(treedef: TreeDef) -> tuple[TreeDef, ...]:
    """The structures of a node's children (none for a leaf)."""
    return treedef[2]


def leaf_count(treedef: TreeDef) -> int:
    """How many leaves a structure holds."""
    kind, _, subtrees = treedef
    return 1 if kind == "leaf" else sum(leaf_count(c) for c in subtrees)


def unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Inverse of `flatten`."""
    it = iter(leaves)
    tree = _unflatten(treedef, it)
    if next(it, _END) is not _END:
        raise ValueError("more leaves than the tree structure holds")
    return tree


_END = object()


def _unflatten(treedef: TreeDef, it) -> Any:
    kind, keys, children = treedef
    if kind == "leaf":
        return next(it)
    values = [_unflatten(c, it) for c in children]
    if kind == "dict":
        return dict(zip(keys, values))
    return values if kind == "list" else tuple(values)


def leaf_paths(tree: Any) -> list[tuple[PathEntry, ...]]:
    """The key/index path of each leaf, in `flatten` order."""
    paths: list[tuple[PathEntry, ...]] = []
    _paths(tree, (), paths)
    return paths


def _paths(tree: Any, prefix: tuple, out: list) -> None:
    if isinstance(tree, dict):
        for k in tree:
            _paths(tree[k], prefix + (k,), out)
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            _paths(v, prefix + (i,), out)
    else:
        out.append(prefix)


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply `fn` leaf-wise over trees of the same structure."""
    leaves, treedef = flatten(tree)
    others = []
    for other in rest:
        other_leaves, other_def = flatten(other)
        if other_def != treedef:
            raise ValueError("tree_map needs trees of the same structure")
        others.append(other_leaves)
    return unflatten(treedef, [fn(*args) for args in zip(leaves, *others)])

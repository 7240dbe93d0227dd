"""Liveness for memory: where each large temporary of a generated function is read
for the last time, so codegen can `del` it there.

A NumPy function written by hand frees an intermediate as soon as its name is
rebound; generated code gives every value its own name, which would keep every
activation and cotangent alive to the end of the call. Releasing large arrays right
after their last use keeps peak memory at the hand-written level and lets NumPy
reuse warm buffers (on small MLPs that halves the time of a training step).
"""
from __future__ import annotations

import ast
from typing import Iterable

MIN_DEL_SIZE = 4096  # elements: smaller arrays cost less to keep than a `del` line costs to read


_LEAVES = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def names_read(stmts: Iterable[ast.stmt]) -> set[str]:
    """Every name a statement reads (subscript targets like `g[i] -= 1` included).

    What `ast.walk` would find, by one explicit stack over the nodes' fields: no
    recursion (any nesting depth) and no generator per node."""
    out: set[str] = set()
    stack: list = list(stmts)
    pop, push, extend = stack.pop, stack.append, stack.extend
    AST, Name, Store, AugAssign = ast.AST, ast.Name, ast.Store, ast.AugAssign
    while stack:
        node = pop()
        kind = type(node)
        if kind is Name:
            if not isinstance(node.ctx, Store):
                out.add(node.id)
            continue
        if kind is AugAssign and type(node.target) is Name:
            out.add(node.target.id)
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, AST):
                if not isinstance(value, _LEAVES):
                    push(value)
            elif isinstance(value, list):
                extend(v for v in value if isinstance(v, AST))
    return out


def release_points(reads: list[set[str]], releasable: set[str]) -> dict[int, list[str]]:
    """For statement index k, the releasable names whose last read is statement k."""
    last: dict[str, int] = {}
    for k, names in enumerate(reads):
        for name in names & releasable:
            last[name] = k
    points: dict[int, list[str]] = {}
    for name, k in sorted(last.items(), key=lambda item: (item[1], item[0])):
        points.setdefault(k, []).append(name)
    return points

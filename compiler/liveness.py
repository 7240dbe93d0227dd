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


def names_read(stmts: Iterable[ast.stmt]) -> set[str]:
    """Every name a statement reads (subscript targets like `g[i] -= 1` included)."""
    out: set[str] = set()
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                out.add(node.target.id)
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

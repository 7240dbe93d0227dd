"""Random draws from a `np.random.Generator` passed as an argument.

A draw is a run-time operation of the generated code (`rng.standard_normal(size=(32,
10))`), so it is fresh on every call: dropout and noise injection work in compiled
functions. Draws carry no gradient and are `effectful`: never merged with an equal-
looking draw, never moved into another expression, kept in the order the function
made them.
"""
from __future__ import annotations

import ast

import numpy as np

from compiler.ir import Aval
from compiler.primitives.registry import Primitive, literal, register

def _abstract(rng: Aval, *, method: str, size: tuple[int, ...], dtype: np.dtype, args: tuple = ()) -> Aval:
    return Aval(tuple(size), np.dtype(dtype))


def _emit(rng: ast.expr, *, method: str, size: tuple[int, ...], dtype: np.dtype, args: tuple = ()) -> ast.expr:
    keywords = [ast.keyword("size", literal(tuple(size)))]
    if np.dtype(dtype) != np.dtype(np.int64 if method == "integers" else np.float64):
        keywords.append(ast.keyword("dtype", literal(np.dtype(dtype))))
    return ast.Call(ast.Attribute(rng, method, ast.Load()), [literal(a) for a in args], keywords)


register(Primitive("random", abstract=_abstract, emit=_emit, differentiable=False, effectful=True))

"""Concrete values of a trace's nodes, computed when a decision needs one.

A function compiled with Python control flow on traced values (`if np.sum(x) > 0:`,
`while err > tol:`, `float(x)`) is traced with the call's own arguments at hand, so
that every decision can be taken: when the code asks a traced value for its truth or
its number, the `Evaluator` computes it from the arguments by running each node the
value depends on, once, with the very NumPy code the compiled function prints for
it (its primitive's `emit`, methods on Python numbers spelled as functions, as in
compiler/codegen.py), so that the decision is the one the compiled code will take.
Nothing is evaluated for a function that takes no decision.
"""
from __future__ import annotations

import ast
import sys
from typing import Any, Callable

import numpy as np

from compiler.errors import TracingError
from compiler.ir import Graph
from compiler.primitives import registry
from compiler.primitives.registry import functions_for_methods


class Evaluator:
    """The values of `graph`'s nodes; `inputs[k]()` gives graph input k's value (a
    thunk: an input that is a value of an enclosing trace is evaluated there, and
    only if needed)."""

    def __init__(self, graph: Graph, inputs: list[Callable[[], Any]]):
        self.graph = graph
        self.inputs = inputs
        self.values: dict[int, Any] = {}

    def value(self, i: int) -> Any:
        """Node `i`'s value, computing the nodes it depends on that are not known yet."""
        if i in self.values:
            return self.values[i]
        pending, stack = set(), [i]
        while stack:
            j = stack.pop()
            if j in self.values or j in pending:
                continue
            pending.add(j)
            stack.extend(self.graph.node(j).inputs)
        for j in sorted(pending):  # a trace's operands are always older (smaller ids) than their users
            self.values[j] = self._compute(j)
        return self.values[i]

    def _compute(self, i: int) -> Any:
        node = self.graph.node(i)
        if node.is_input:
            return self.inputs[node.params["index"]]()
        if node.is_const:
            return node.params["value"]
        prim = registry.get(node.op)
        if prim.effectful:
            raise TracingError(
                f"{node.loc.user if node.loc else '<unknown>'}: a decision on traced values depends on a "
                f"{node.op} node, which has an effect (a random draw) and cannot be run while tracing; "
                "decide with np.where instead, or draw the values outside the compiled function."
            )
        namespace: dict[str, Any] = {"np": np, "scipy": sys.modules.get("scipy")}
        args: list[ast.expr] = []
        for k, j in enumerate(node.inputs):
            namespace[f"_{k}"] = self.values[j]
            args.append(ast.Name(f"_{k}", ast.Load()))
        params = dict(node.params)
        for key in prim.bound:
            namespace[f"_{key}"] = params[key].fn
            params[key] = ast.Name(f"_{key}", ast.Load())
        numbers = [arg for arg, j in zip(args, node.inputs) if self.graph.node(j).aval.weak]
        weak = prim.emit_weak is not None and len(numbers) == len(args)
        with np.errstate(all="ignore"):
            if prim.emit is not None:
                expr = (prim.emit_weak if weak else prim.emit)(*args, **params)
                expr = functions_for_methods(expr, numbers, args) if numbers and not weak else expr
                return eval(compile(ast.fix_missing_locations(ast.Expression(expr)), "<adjoint>", "eval"), namespace)
            stmts = prim.emit_stmts(ast.Name("_out", ast.Load()), *args, **params)
            stmts = [functions_for_methods(s, numbers, args) for s in stmts] if numbers else stmts
            module = ast.fix_missing_locations(ast.Module(stmts, []))
            exec(compile(module, "<adjoint>", "exec"), namespace)
            return namespace["_out"]

"""Algebraic simplification: the rewrites that make generated code read as if
written by hand. Multiplying by one, adding zero and pass-through cotangents vanish,
Python-scalar arithmetic folds, and negations move outward so that `x + -y`
prints as `x - y`. A rewrite applies only when the result keeps the node's exact
shape and dtype.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from compiler.ir import Aval, Graph, Node
from compiler.passes.rewrite import replace
from compiler.primitives import registry
from compiler.primitives.elementwise import result_dtype

_FOLDABLE = {"add", "subtract", "multiply", "divide", "power", "negative"}


def _weak_value(graph: Graph, i: int) -> Optional[object]:
    node = graph.node(i)
    return node.params["value"] if node.op == "const" and node.aval.weak else None


def _is(graph: Graph, i: int, value: float) -> bool:
    v = _weak_value(graph, i)
    return v is not None and not isinstance(v, bool) and v == value


def _identity_operand(graph: Graph, node: Node) -> Optional[int]:
    """The operand `node` merely passes through, if any (x*1, 1*x, x+0, x-0, x/1, x**1)."""
    op, ins = node.op, node.inputs
    candidates = []
    if op == "multiply":
        candidates = [ins[0]] if _is(graph, ins[1], 1) else [ins[1]] if _is(graph, ins[0], 1) else []
    elif op == "add":
        candidates = [ins[0]] if _is(graph, ins[1], 0) else [ins[1]] if _is(graph, ins[0], 0) else []
    elif op in ("subtract", "divide", "power"):
        unit = 0 if op == "subtract" else 1
        candidates = [ins[0]] if _is(graph, ins[1], unit) else []
    elif op in ("reshape", "broadcast_to", "astype", "copy") or (op == "sum" and not node.params["axis"]):
        candidates = [ins[0]] if op != "copy" else []
    elif op == "negative" and graph.node(ins[0]).op == "negative":
        candidates = [graph.node(ins[0]).inputs[0]]
    return next((c for c in candidates if graph.node(c).aval == node.aval), None)


_ELEMENTWISE_BINARY = {"add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where"}


def _drop_broadcast(graph: Graph, node: Node) -> bool:
    """An operand broadcast only to meet the other operands' shape needs no copy:
    elementwise ops broadcast by themselves (`broadcast_to(s, (5,)) * y` -> `s * y`)."""
    if node.op not in _ELEMENTWISE_BINARY:
        return False
    for k, i in enumerate(node.inputs):
        operand = graph.node(i)
        if operand.op != "broadcast_to":
            continue
        source = operand.inputs[0]
        new = node.inputs[:k] + (source,) + node.inputs[k + 1 :]
        avals = [graph.node(j).aval for j in new]
        if registry.get(node.op).abstract(*avals, **node.params) == node.aval:
            graph.set_inputs(node.id, new)
            return True
    return False


def _reassociate(graph: Graph, node: Node) -> bool:
    """c1 * (c2 * x) -> (c1 * c2) * x for Python scalars c1, c2."""
    if node.op != "multiply":
        return False
    for k in (0, 1):
        c1, inner = _weak_value(graph, node.inputs[k]), graph.node(node.inputs[1 - k])
        if c1 is None or inner.op != "multiply" or graph.use_count(inner.id) != 1:
            continue
        for j in (0, 1):
            c2, x = _weak_value(graph, inner.inputs[j]), inner.inputs[1 - j]
            value = _evaluate("multiply", [c1, c2]) if c2 is not None else None
            if value is None or graph.node(x).aval.weak:
                continue
            graph.set_inputs(node.id, (_constant(graph, value), x))
            return True
    return False


def _evaluate(op: str, values: list) -> Optional[object]:
    """`op` on Python scalars, or None when the result would not be a finite scalar
    of the first operand's type."""
    with np.errstate(all="ignore"):
        result = getattr(np, op)(*values).item()
    if not np.isfinite(result) or type(result) is not type(values[0]):
        return None
    return result


def _constant(graph: Graph, value: object) -> int:
    return graph.add("const", (), {"value": value}, Aval((), np.result_type(type(value)), weak=True))


def _fold(graph: Graph, node: Node) -> bool:
    """Evaluate arithmetic on Python scalars at compile time."""
    if node.op not in _FOLDABLE or not node.aval.weak:
        return False
    values = [_weak_value(graph, i) for i in node.inputs]
    if any(v is None for v in values):
        return False
    result = _evaluate(node.op, values)
    if result is None:
        return False
    replace(graph, node.id, _constant(graph, result))
    return True


def _pull_negation(graph: Graph, node: Node) -> bool:
    """(-a) * b -> -(a * b), (-a) / b -> -(a / b), a + (-b) -> a - b, (-a) + b -> b - a,
    a - (-b) -> a + b, for single-use negations."""
    if node.op not in ("multiply", "divide", "add", "subtract"):
        return False

    def neg_operand(k: int) -> Optional[int]:
        i = node.inputs[k]
        n = graph.node(i)
        return n.inputs[0] if n.op == "negative" and graph.use_count(i) == 1 else None

    if node.op in ("multiply", "divide"):
        inner = neg_operand(0)
        if inner is None or graph.use_count(node.id) != 1:
            return False
        graph.set_inputs(node.id, (inner, node.inputs[1]))
        _wrap_negative(graph, node)
        return True
    rewrites = {
        ("add", 1): ("subtract", lambda a, b: (a, b)),
        ("add", 0): ("subtract", lambda a, b: (node.inputs[1], a)),
        ("subtract", 1): ("add", lambda a, b: (node.inputs[0], b)),
    }
    for k in (1, 0):
        inner = neg_operand(k)
        if inner is None or (node.op, k) not in rewrites:
            continue
        op, operands = rewrites[(node.op, k)]
        new = operands(node.inputs[0], inner) if k == 1 else operands(inner, None)
        candidate = Aval(node.shape, result_dtype(op, tuple(graph.node(i).dtype for i in new)), node.aval.weak)
        if candidate != node.aval or any(graph.node(i).aval.weak for i in new):
            continue
        node.op = op
        graph.set_inputs(node.id, new)
        return True
    return False


def _wrap_negative(graph: Graph, node: Node) -> None:
    """Put a negation after `node`: its users read -node."""
    users = [u for u in graph.users(node.id)]
    outputs = list(graph.outputs)
    neg = graph.add("negative", (node.id,), {}, node.aval, loc=node.loc, grad_of=node.grad_of)
    neg_node = graph.node(neg)
    neg_node.name, neg_node.cotangent_of = node.name, node.cotangent_of
    node.name = node.cotangent_of = None
    for u in users:
        graph.set_inputs(u, (neg if j == node.id else j for j in graph.node(u).inputs))
    graph.outputs = [neg if j == node.id else j for j in outputs]


def simplify(graph: Graph) -> bool:
    changed = False
    for node in graph.nodes():
        if node.op in ("input", "const") or node.id not in graph:
            continue
        same = _identity_operand(graph, node)
        if same is not None:
            replace(graph, node.id, same)
            changed = True
        elif any(rule(graph, node) for rule in (_fold, _drop_broadcast, _reassociate, _pull_negation)):
            changed = True
    return changed

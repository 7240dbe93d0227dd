"""The reverse-mode transform: a forward graph becomes its joint forward+backward
(adjoint) graph, built only from the primitives' VJP rules.

Walking forward nodes in reverse topological order, each node's cotangent is the sum
of its consumers' contributions, summed in forward order so the backward pass reads
like the lecture's (`g_a = d + 1.0 / b - f / a`). Paths that carry no gradient stay
symbolic zeros (None): nothing is materialized for them. Contributions computed at a
broadcast shape are summed back to the operand's shape with reductions fixed at
compile time. Forward values are referenced, never recomputed.
"""
from __future__ import annotations

from typing import Optional

import networkx as nx
import numpy as np

from compiler.ir import Aval, Graph, Node
from compiler.primitives import registry
from compiler.passes.rewrite import aliases_argument
from compiler.primitives.reduce import unbroadcast
from compiler.tracing import Tracer, bind, rule_mode


def active_nodes(graph: Graph, wrt: list[int], output: int) -> set[int]:
    """Nodes on a differentiable path from some `wrt` input to `output`."""
    reach: set[int] = set()
    for i in wrt:
        reach |= nx.descendants(graph.dag, i) | {i}
    reach &= nx.ancestors(graph.dag, output) | {output}
    return {i for i in reach if _carries_gradient(graph.node(i))}


def _carries_gradient(node: Node) -> bool:
    if node.dtype.kind not in "fc":
        return False
    return node.op in ("input", "const") or registry.get(node.op).differentiable


def reverse(graph: Graph, wrt: list[int], output: int) -> tuple[Graph, list[int]]:
    """The joint graph and, for each `wrt` input, the node holding its gradient.

    `output` must be a scalar node of `graph`. The joint graph keeps every forward
    node (ids unchanged); the caller chooses the joint graph's outputs.
    """
    joint = graph.copy()
    active = active_nodes(joint, wrt, output)
    forward_ids = set(joint.dag.nodes)
    contributions: dict[int, list[tuple[int, Tracer]]] = {}
    grads: dict[int, Optional[Tracer]] = {}
    with rule_mode(joint) as mode:
        mode.at(loc=joint.node(output).loc, grad_of=output)
        seed = Tracer(joint, joint.add("const", (), {"value": 1.0}, Aval((), np.dtype(float), True)))
        contributions[output] = [(output, seed)]
        for node in reversed(joint.nodes()):
            if node.id not in forward_ids or node.id not in active or node.id not in contributions:
                continue
            mode.at(loc=node.loc, grad_of=node.id)
            g = _accumulate(joint, contributions.pop(node.id), node, forward_ids)
            if node.op == "input":
                grads[node.id] = g
                continue
            if node.op == "const":
                continue
            if g.aval.weak and g.dtype != node.dtype:
                # A Python-scalar cotangent (the seed) takes the primal's precision before
                # a rule reshapes or broadcasts it into an array.
                g = g.astype(node.dtype)
            operands = [Tracer(joint, i) for i in node.inputs]
            cts = registry.get(node.op).vjp(g, Tracer(joint, node.id), *operands, **node.params)
            for operand, ct in zip(node.inputs, cts):
                if ct is None or operand not in active:
                    continue
                ct = unbroadcast(ct, joint.node(operand).shape)
                contributions.setdefault(operand, []).append((node.id, ct))
        outputs: list[int] = []
        for i in wrt:
            source = joint.node(grads[i].id) if grads.get(i) is not None else None
            if source is not None and source.grad_of is not None:
                mode.at(loc=source.loc, grad_of=source.grad_of)
            else:
                mode.at(loc=joint.node(i).loc, grad_of=i)
            outputs.append(_as_gradient(joint, grads.get(i), joint.node(i), taken=outputs))
    return joint, outputs


def _accumulate(graph: Graph, parts: list[tuple[int, Tracer]], node: Node, forward_ids: set[int]) -> Tracer:
    parts.sort(key=lambda part: part[0])
    total = parts[0][1]
    for _, part in parts[1:]:
        total = total + part
    fresh = graph.node(total.id)
    if fresh.id not in forward_ids and fresh.op != "const" and fresh.cotangent_of is None:
        fresh.cotangent_of = node.id
    return total


def _as_gradient(graph: Graph, g: Optional[Tracer], primal: Node, taken: list[int]) -> int:
    """A node holding exactly the gradient for `primal`: its shape and dtype, a
    fresh writable array (never an alias of an input, a broadcast view, or a
    gradient already in `taken`), named as `primal`'s cotangent."""
    if g is None:
        result = bind("full", shape=primal.shape, value=0, dtype=primal.dtype)
    elif graph.node(g.id).op == "const" and g.aval.weak:
        result = bind("full", shape=primal.shape, value=graph.node(g.id).params["value"], dtype=primal.dtype)
    else:
        result = g
        if result.aval.weak:  # a Python-scalar expression: make it an array
            result = bind("copy", result)
        if result.dtype != primal.dtype:
            result = result.astype(primal.dtype)
        if result.shape != primal.shape:
            result = np.broadcast_to(result, primal.shape)
        if aliases_argument(graph, result.id) or result.id in taken:
            result = result.copy()
        if result.id != g.id and graph.node(g.id).cotangent_of == primal.id:
            graph.node(g.id).cotangent_of = None
    if graph.node(result.id).grad_of is not None:
        graph.node(result.id).cotangent_of = primal.id
    return result.id

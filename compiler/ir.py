"""The SSA intermediate representation: a `Graph` of `Node`s over a networkx DAG.

A node is one SSA value. Its ordered operands live in `Node.inputs` (networkx edges
only record dependencies: a `DiGraph` keeps one edge for `x * x`). Every node has an
insertion index; walking the graph in topological order keyed by that index makes
order, and therefore generated source, deterministic. Names are hints for the
printer, never identity, so no pass ever has to rename anything.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Optional

import networkx as nx
import numpy as np


class Aval(NamedTuple):
    """Abstract value: what is known about a value at compile time.

    `weak` marks a Python scalar: like NumPy's NEP 50 promotion, it does not upcast
    an array (`float32_array * 2.0` stays float32).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    weak: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"{'weak ' if self.weak else ''}{self.dtype}[{dims}]"


class Loc(NamedTuple):
    """Where a node came from in the user's code."""

    filename: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.line}"


@dataclass
class Node:
    """One SSA value: `op` applied to `inputs` with static `params`."""

    id: int
    op: str
    inputs: tuple[int, ...]
    params: dict[str, Any]
    aval: Aval
    name: Optional[str] = None
    loc: Optional[Loc] = None
    grad_of: Optional[int] = None
    cotangent_of: Optional[int] = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype


@dataclass
class Graph:
    """A DAG of nodes with ordered graph inputs and outputs."""

    dag: nx.DiGraph = field(default_factory=nx.DiGraph)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    next_id: int = 0

    def add(self, op: str, inputs: Iterable[int], params: dict[str, Any], aval: Aval, **meta: Any) -> int:
        """Append a node and return its id."""
        inputs = tuple(inputs)
        node = Node(self.next_id, op, inputs, dict(params), aval, **meta)
        self.next_id += 1
        self.dag.add_node(node.id, node=node)
        for i in inputs:
            self.dag.add_edge(i, node.id)
        return node.id

    def node(self, i: int) -> Node:
        return self.dag.nodes[i]["node"]

    def __contains__(self, i: int) -> bool:
        return i in self.dag

    def nodes(self) -> list[Node]:
        """All nodes in deterministic topological order."""
        return [self.node(i) for i in nx.lexicographical_topological_sort(self.dag, key=lambda i: i)]

    def python_scalar(self, i: int) -> Any:
        """The Python number node `i` is a constant of (weak-typed), else None."""
        node = self.node(i)
        return node.params["value"] if node.op == "const" and node.aval.weak else None

    def users(self, i: int) -> list[int]:
        """Nodes that read `i` (each once, in id order)."""
        return sorted(self.dag.successors(i))

    def use_count(self, i: int) -> int:
        """How many operand slots and graph outputs read `i`."""
        slots = sum(self.node(u).inputs.count(i) for u in self.dag.successors(i))
        return slots + self.outputs.count(i)

    def set_inputs(self, i: int, inputs: Iterable[int]) -> None:
        """Replace the operands of node `i`, keeping edges in sync."""
        node = self.node(i)
        for old in set(node.inputs):
            self.dag.remove_edge(old, i)
        node.inputs = tuple(inputs)
        for new in node.inputs:
            self.dag.add_edge(new, i)

    def replace_uses(self, old: int, new: int) -> None:
        """Make every reader of `old` (and the outputs) read `new` instead."""
        for user in list(self.dag.successors(old)):
            self.set_inputs(user, (new if j == old else j for j in self.node(user).inputs))
        self.outputs = [new if j == old else j for j in self.outputs]

    def remove(self, i: int) -> None:
        self.dag.remove_node(i)

    def copy(self) -> "Graph":
        """A deep copy of structure and nodes (params and constants are shared)."""
        g = Graph(nx.DiGraph(), list(self.inputs), list(self.outputs), self.next_id)
        for node in self.nodes():
            g.dag.add_node(node.id, node=dataclasses.replace(node, params=dict(node.params)))
        g.dag.add_edges_from(self.dag.edges)
        return g

    def __str__(self) -> str:
        from compiler.ir_tools import format_graph

        return format_graph(self)

    def validate(self) -> None:
        """Raise `AssertionError` unless the graph is well formed (see ir_tools.validate)."""
        from compiler.ir_tools import validate

        validate(self)

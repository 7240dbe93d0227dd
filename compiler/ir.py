"""The SSA intermediate representation: a `Graph` of `Node`s over a networkx DAG.

A node is one SSA value. Its ordered operands live in `Node.inputs` (networkx edges
only record dependencies: a `DiGraph` keeps one edge for `x * x`). Every node has an
insertion index; walking the graph in topological order keyed by that index makes
order, and therefore generated source, deterministic. Names are hints for the
printer, never identity, so no pass ever has to rename anything.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import operator
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple, Optional

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
        return int(math.prod(self.shape))  # exact; np.prod costs microseconds per call

    def __str__(self) -> str:
        dims = ",".join(str(d) for d in self.shape)
        return f"{'weak ' if self.weak else ''}{self.dtype}[{dims}]"


class Loc(NamedTuple):
    """Where a node came from: a line of the user's code, or a line of a library
    function (runtime.nn) `via` the user's line that called it."""

    filename: str
    line: int
    text: str = ""
    via: Optional["Loc"] = None

    @property
    def user(self) -> "Loc":
        """The user's own line (the one errors name)."""
        return self.via or self

    def __str__(self) -> str:
        here = f"{os.path.basename(self.filename)}:{self.line}"
        return f"{here} via {self.via}" if self.via is not None else here


INPUT, CONST, CALL = "input", "const", "call"  # the kinds of node


@dataclass(slots=True)
class Node:
    """One SSA value of one of three kinds: a graph input (`params["index"]`), a
    constant (`params["value"]`), or a call: primitive `op` applied to `inputs` with
    static `params`. Inputs and constants have no `op`."""

    id: int
    kind: str
    op: Optional[str]
    inputs: tuple[int, ...]
    params: dict[str, Any]
    aval: Aval
    name: Optional[str] = None
    loc: Optional[Loc] = None
    grad_of: Optional[int] = None
    cotangent_of: Optional[int] = None
    tangent_of: Optional[int] = None  # forward mode: the primal node this is the tangent of

    @property
    def is_input(self) -> bool:
        return self.kind == INPUT

    @property
    def is_const(self) -> bool:
        return self.kind == CONST

    @property
    def is_call(self) -> bool:
        return self.kind == CALL

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype


_node_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(Node)))  # a Node's values, in order


class Dag(nx.DiGraph):
    """A networkx `DiGraph` that counts its structural changes.

    Every method that adds or removes a node or an edge bumps `version`, so a
    `Graph` can cache facts derived from the structure (its topological order) and
    notice any change, including one made on `graph.dag` directly by a pass."""

    version = 0

    def _changed(self) -> None:
        self.version += 1

    def add_node(self, node_for_adding, **attr):
        self._changed()
        super().add_node(node_for_adding, **attr)

    def add_nodes_from(self, nodes_for_adding, **attr):
        self._changed()
        super().add_nodes_from(nodes_for_adding, **attr)

    def remove_node(self, n):
        self._changed()
        super().remove_node(n)

    def remove_nodes_from(self, nodes):
        self._changed()
        super().remove_nodes_from(nodes)

    def add_edge(self, u_of_edge, v_of_edge, **attr):
        self._changed()
        super().add_edge(u_of_edge, v_of_edge, **attr)

    def add_edges_from(self, ebunch_to_add, **attr):
        self._changed()
        super().add_edges_from(ebunch_to_add, **attr)

    def remove_edge(self, u, v):
        self._changed()
        super().remove_edge(u, v)

    def remove_edges_from(self, ebunch):
        self._changed()
        super().remove_edges_from(ebunch)

    def update(self, edges=None, nodes=None):
        self._changed()
        super().update(edges, nodes)

    def clear(self):
        self._changed()
        super().clear()

    def clear_edges(self):
        self._changed()
        super().clear_edges()

    def add_node_reading(self, n: int, data: dict, inputs: tuple) -> None:
        """`add_node(n, **data)` and an edge from each of `inputs` to `n`, as one
        change, written straight into networkx's adjacency dicts (the per-call
        checks of add_node/add_edge cost more than the work when tracing 10^5 ops)."""
        succ, pred = self._succ, self._pred
        if n in succ or any(i not in succ for i in inputs):  # not the plain case: let networkx handle it
            self.add_node(n, **data)
            self.add_edges_from((i, n) for i in inputs)
            return
        self.version += 1
        cache = getattr(self, "__networkx_cache__", None)
        if cache:
            cache.clear()
        succ[n] = {}
        into = pred[n] = {}
        self._node[n] = data
        for i in inputs:
            if i not in into:
                into[i] = succ[i][n] = {}


def _reach(ids: Iterable[int], adjacency: dict) -> set[int]:
    """`ids` and everything reachable from them along `adjacency`."""
    seen = set(ids)
    stack = list(seen)
    while stack:
        for j in adjacency[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def ids_are_topological(dag: nx.DiGraph) -> bool:
    """Whether every edge goes from a smaller id to a larger one (a trace's graph is,
    until a rewrite gives an older consumer a newer operand): then ordering by id is
    the deterministic topological order."""
    for v, earlier in dag._pred.items():
        for u in earlier:
            if u > v:
                return False
    return True


def topological_order(dag: nx.DiGraph, key: Optional[Callable[[int], Any]] = None,
                      after: Optional[dict[int, set[int]]] = None) -> list[int]:
    """The node ids of `dag` in topological order, ties broken by smallest id first
    (or smallest `key(id)`, then id): exactly what
    `nx.lexicographical_topological_sort(dag, key=key or (lambda i: i))` yields, in
    O(V log V + E) without networkx's per-node views. `after` adds ordering
    constraints that are not edges: node -> nodes that must come before it. Raises
    `nx.NetworkXUnfeasible` on a cycle."""
    succ, pred = dag._succ, dag._pred
    if key is None and not after and ids_are_topological(dag):
        return sorted(pred)  # the smallest remaining id is always ready: no heap needed
    indegree = {v: len(p) for v, p in pred.items() if p}
    extra_succ: dict[int, list[int]] = {}
    for v, earlier in (after or {}).items():
        for u in earlier:
            if v not in succ[u]:
                extra_succ.setdefault(u, []).append(v)
                indegree[v] = indegree.get(v, 0) + 1
    rank = key if key is not None else (lambda v: v)
    ready = [(rank(v), v) for v in pred if v not in indegree]
    heapq.heapify(ready)
    order = []
    while ready:
        v = heapq.heappop(ready)[1]
        order.append(v)
        for child in itertools.chain(succ[v], extra_succ.get(v, ())):
            d = indegree[child] - 1
            if d:
                indegree[child] = d
            else:
                del indegree[child]
                heapq.heappush(ready, (rank(child), child))
    if indegree:
        raise nx.NetworkXUnfeasible("Graph contains a cycle or graph changed during iteration")
    return order


class OutputList(list):
    """A graph's outputs: a plain list of node ids that also answers `i in outputs`
    and `outputs.count(i)` in O(1), from per-id counts rebuilt after any change.
    (Passes ask that of every node; scanning the list is quadratic in graphs with
    one gradient output per parameter.)"""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._counts: Optional[dict[Any, int]] = None

    def counts(self) -> dict[Any, int]:
        """How many times each id occurs."""
        if getattr(self, "_counts", None) is None:  # (unpickling skips __init__)
            counts: dict[Any, int] = {}
            for i in self:
                counts[i] = counts.get(i, 0) + 1
            self._counts = counts
        return self._counts

    def __contains__(self, i: Any) -> bool:
        try:
            return i in self.counts()
        except TypeError:  # unhashable: compare as a list does
            return list.__contains__(self, i)

    def count(self, i: Any) -> int:
        try:
            return self.counts().get(i, 0)
        except TypeError:
            return list.count(self, i)


def _invalidating(name: str):
    method = getattr(list, name)

    def wrapper(self, *args):
        self._counts = None
        return method(self, *args)

    wrapper.__name__ = name
    return wrapper


for _name in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__", "__imul__"):
    setattr(OutputList, _name, _invalidating(_name))


@dataclass
class Graph:
    """A DAG of nodes with ordered graph inputs and outputs."""

    dag: nx.DiGraph = field(default_factory=Dag)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    next_id: int = 0
    # the name of the Python number every cotangent is scaled by (a training step's
    # backward pass seeded with its learning rate: `lr_g_W1` is lr times the gradient)
    cotangent_scale: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.dag, Dag):
            self.dag = Dag(self.dag)
        self._order: Optional[list[int]] = None  # topological order at `_order_version`
        self._order_version = -1
        # while not None: ids of nodes added, or whose operands, readers or membership in
        # the outputs changed (with repeats), appended by the methods below (assigning
        # `outputs` counts; mutating the list in place does not) so that a pass can
        # revisit only what a change can affect (see passes.simplify)
        self.changes: Optional[list[int]] = None
        self.scalars: dict[tuple, int] = {}  # (type, value, sign) -> the node of a Python number (add_scalar)

    def add(self, op: str, inputs: Iterable[int], params: dict[str, Any], aval: Aval, **meta: Any) -> int:
        """Append a call of primitive `op` and return its id."""
        return self._append(CALL, op, tuple(inputs), dict(params), aval, meta)

    def add_input(self, aval: Aval, **meta: Any) -> int:
        """Append the next graph input and return its id."""
        i = self._append(INPUT, None, (), {"index": len(self.inputs)}, aval, meta)
        self.inputs.append(i)
        return i

    def add_const(self, value: Any, aval: Aval, captured: bool = False, recipe: Optional[str] = None,
                  **meta: Any) -> int:
        """Append a constant and return its id. A `captured` array is the user's own
        (a global or closure value), read live by the generated code, never folded.
        A `recipe` is NumPy source that makes the value (`np.arange(128)`): the
        generated module makes it once when it loads instead of binding the array."""
        params = {"value": value, "captured": True} if captured else {"value": value}
        if recipe is not None:
            params["recipe"] = recipe
        return self._append(CONST, None, (), params, aval, meta)

    def add_scalar(self, value: Any) -> int:
        """The constant node of a Python number (weak-typed), one per distinct value
        while it is in the graph: every `* 1.001` of a trace reads one node instead of
        adding one each (that cse would merge again)."""
        key = (type(value), repr(value) if isinstance(value, (float, complex)) else value)  # 0.0 and -0.0 apart
        shared = self.scalars.get(key)
        if shared is not None and shared in self.dag._succ:
            return shared
        i = self.scalars[key] = self.add_const(value, Aval((), np.result_type(type(value)), weak=True))
        return i

    def _append(self, kind: str, op: Optional[str], inputs: tuple, params: dict, aval: Aval, meta: dict) -> int:
        node = Node(self.next_id, kind, op, inputs, params, aval, **meta)
        self.next_id += 1
        self.dag.add_node_reading(node.id, {"node": node}, inputs)
        if self.changes is not None:
            self.changes.append(node.id)
            self.changes.extend(inputs)  # they have a new reader
        return node.id

    def node(self, i: int) -> Node:
        return self.dag._node[i]["node"]

    def __contains__(self, i: int) -> bool:
        return i in self.dag

    def order(self) -> list[int]:
        """Node ids in deterministic topological order (ties broken by id), computed
        once per structural change of the graph."""
        version = self.dag.version
        if self._order is None or self._order_version != version:
            self._order = topological_order(self.dag)
            self._order_version = version
        return list(self._order)

    def nodes(self) -> list[Node]:
        """All nodes in deterministic topological order."""
        data = self.dag._node
        return [data[i]["node"] for i in self.order()]

    def python_scalar(self, i: int) -> Any:
        """The Python number node `i` is a constant of (weak-typed), else None."""
        node = self.node(i)
        return node.params["value"] if node.is_const and node.aval.weak else None

    def users(self, i: int) -> list[int]:
        """Nodes that read `i` (each once, in id order)."""
        return sorted(self.dag._succ[i])

    def use_count(self, i: int) -> int:
        """How many operand slots and graph outputs read `i`."""
        data = self.dag._node
        slots = sum(data[u]["node"].inputs.count(i) for u in self.dag._succ[i])
        return slots + self.outputs.count(i)

    def set_inputs(self, i: int, inputs: Iterable[int]) -> None:
        """Replace the operands of node `i`, keeping edges in sync."""
        node = self.node(i)
        old = node.inputs
        for j in set(old):
            self.dag.remove_edge(j, i)
        node.inputs = tuple(inputs)
        for new in node.inputs:
            self.dag.add_edge(new, i)
        if self.changes is not None:
            self.changes.append(i)
            self.changes.extend(old)
            self.changes.extend(node.inputs)

    def replace_uses(self, old: int, new: int) -> None:
        """Make every reader of `old` (and the outputs) read `new` instead."""
        for user in list(self.dag.successors(old)):
            self.set_inputs(user, (new if j == old else j for j in self.node(user).inputs))
        if old in self.outputs:
            self.outputs = [new if j == old else j for j in self.outputs]

    def remove(self, i: int) -> None:
        if self.changes is not None:
            self.changes.extend(self.node(i).inputs)  # they lose a reader
        self.dag.remove_node(i)

    def remove_all(self, ids: list[int]) -> None:
        """Remove the nodes `ids` (in one change of the structure)."""
        if self.changes is not None:
            data = self.dag._node
            self.changes.extend(j for i in ids for j in data[i]["node"].inputs)
        self.dag.remove_nodes_from(ids)

    def ancestors(self, ids: Iterable[int]) -> set[int]:
        """`ids` and every node some of them depend on: one walk for all of them
        (`nx.ancestors` per id is a walk each)."""
        return _reach(ids, self.dag._pred)

    def descendants(self, ids: Iterable[int]) -> set[int]:
        """`ids` and every node that depends on some of them, in one walk."""
        return _reach(ids, self.dag._succ)

    def copy(self) -> "Graph":
        """A deep copy of structure and nodes (params values and constants are shared),
        written straight into a new Dag's adjacency dicts: networkx's per-node and
        per-edge checks would cost more than the copy."""
        order = self.order()
        data, succ = self.dag._node, self.dag._succ
        dag = Dag()
        for i in order:
            node = Node(*_node_fields(data[i]["node"]))
            node.params = dict(node.params)
            dag._node[i] = {"node": node}
            dag._succ[i] = {}
            dag._pred[i] = {}
        for u, readers in succ.items():  # edges in the order `dag.edges` lists them
            into = dag._succ[u]
            for v in readers:
                into[v] = dag._pred[v][u] = {}
        g = Graph(dag, list(self.inputs), list(self.outputs), self.next_id, self.cotangent_scale)
        g._order, g._order_version = order, dag.version
        return g

    def __str__(self) -> str:
        return format_graph(self)


def _get_outputs(graph: Graph) -> OutputList:
    return graph._outputs


def _set_outputs(graph: Graph, ids: Iterable[int]) -> None:
    new = ids if type(ids) is OutputList else OutputList(ids)
    changes = getattr(graph, "changes", None)  # (the dataclass __init__ sets outputs before __post_init__)
    if changes is not None:
        succ = graph.dag._succ
        for i in graph._outputs.counts().keys() ^ new.counts().keys():
            changes.append(i)
            changes.extend(succ.get(i, ()))  # whether an operand is an output is theirs to ask too
    graph._outputs = new


# After @dataclass, so the generated __init__, repr and eq go through it: whatever
# list is assigned to `graph.outputs` is stored as an OutputList.
Graph.outputs = property(_get_outputs, _set_outputs, doc="The graph's results, in order.")


def _label(graph: Graph, i: int) -> str:
    node = graph.node(i)
    if node.is_const and node.aval.weak:
        return repr(node.params["value"])
    return f"%{i}" + (f":{node.name}" if node.name else "")


def _params(node: Node) -> str:
    shown = {k: v for k, v in node.params.items() if k not in ("value", "ndim")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def format_graph(graph: Graph, source_lines: bool = True) -> str:
    """One line per value, as in a jaxpr: `%id:name: dtype[shape] = op(operands,
    params)`, Python-number operands written in place, the graph's results last
    (`return ...`). With `source_lines`, each line ends with the user's `# file:LINE`
    that produced the value, aligned in a column."""
    rows = []
    for node in graph.nodes():
        if node.is_const and node.aval.weak:
            continue
        target = _label(graph, node.id)
        if node.cotangent_of is not None:
            target += f" (grad of %{node.cotangent_of})"
        if node.tangent_of is not None:
            target += f" (tangent of %{node.tangent_of})"
        operands = ", ".join(_label(graph, i) for i in node.inputs)
        params = _params(node)
        call = f"{node.op or node.kind}({operands}{', ' if operands and params else ''}{params})"
        rows.append((f"{target}: {node.aval} = {call}", node.loc if source_lines else None))
    width = min(max((len(code) for code, loc in rows if loc is not None), default=0), _COMMENT_COLUMN)
    lines = [f"{code.ljust(width)}  # {loc}" if loc is not None else code for code, loc in rows]
    outs = ", ".join(_label(graph, i) for i in graph.outputs)
    lines.append(f"return {outs}")
    return "\n".join(lines)


_COMMENT_COLUMN = 64  # `# file:LINE` comments line up here unless the code is longer

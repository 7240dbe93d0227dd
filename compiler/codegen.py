"""Code generation: Graph -> `ast` -> source via `ast.unparse` -> function.

Values used once, with no user name and no cotangent role, are inlined into their
single consumer's expression (ast.unparse adds exactly the parentheses precedence
needs), so `y = d + e + f` stays one line. Everything else is a statement named
after the user's variable, `g_<name>` for a cotangent, or `t1`, `t2`, ... Forward
statements carry a trailing `# file.py:LINE`; each group of backward statements is
headed by `# grad of: file.py:LINE  <source line>`. The source is registered in
`linecache`, so tracebacks and debuggers show the generated lines.
"""
from __future__ import annotations

import ast
import hashlib
import linecache
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from compiler.ir import Graph, Node
from compiler.liveness import MIN_DEL_SIZE, names_read, release_points
from compiler.naming import Namespace
from compiler.primitives import registry
from compiler.primitives.registry import literal, np_call

MAX_INLINE = 8  # operations folded into one expression before a temporary is named


@dataclass
class Generated:
    """A generated function, its module source and the constants it closes over."""

    name: str
    source: str
    fn: Callable
    constants: dict[str, np.ndarray]


class _Emitter:
    def __init__(self, graph: Graph, fn_name: str):
        self.graph = graph
        self.ns = Namespace({fn_name})
        self.names: dict[int, str] = {}
        self.exprs: dict[int, ast.expr] = {}
        self.sizes: dict[int, int] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.lines: list[str] = []
        self.reads: list[tuple[int, set[str]]] = []  # (line index, names read) per statement
        self.large: set[str] = set()  # names of temporaries worth releasing early
        self.calls_runtime = False
        self.group: Optional[tuple] = None
        self.outputs = set(graph.outputs)
        self.updates: dict[int, list[int]] = {}
        self.deferred: list[str] = []
        self.consumed: set[int] = set()

    def ref(self, i: int) -> ast.expr:
        if i in self.exprs:
            self.consumed.add(i)
            return self.exprs[i]
        return ast.Name(self.names[i], ast.Load())

    def inlinable(self, node: Node) -> bool:
        if node.op == "const":
            return node.aval.weak
        if node.op == "input" or node.id in self.outputs or node.name or node.cotangent_of is not None:
            return False
        prim = registry.get(node.op)
        return prim.emit is not None and self.graph.use_count(node.id) == 1

    def name_for(self, node: Node) -> str:
        name = self._name_for(node)
        if node.aval.size >= MIN_DEL_SIZE and node.op != "const":
            self.large.add(name)
        return name

    def _name_for(self, node: Node) -> str:
        if node.name:
            return self.ns.fresh(node.name)
        if node.cotangent_of is not None:
            primal = self.names.get(node.cotangent_of)
            return self.ns.fresh(f"g_{primal}" if primal else "g")
        if node.op == "const":
            return self.ns.fresh("const")
        return self.ns.temp()

    def visit(self, node: Node) -> None:
        if node.op == "input":
            return
        if node.op == "const":
            value = node.params["value"]
            if node.aval.weak:
                self.exprs[node.id] = literal(value)
            elif np.ndim(value) == 0 and value.dtype.kind in "biuf" and not node.params.get("captured"):
                self.exprs[node.id] = np_call(value.dtype.name, literal(value.item()))
            else:
                name = self.name_for(node)
                self.names[node.id] = name
                self.constants[name] = node.params["value"]
            return
        if node.id in self.updates:
            self.visit_update(node)
            return
        prim = registry.get(node.op)
        args = [self.ref(i) for i in node.inputs]
        size = 1 + sum(self.sizes.get(i, 0) for i in node.inputs)
        if prim.emit is not None:
            weak = prim.emit_weak is not None and all(self.graph.node(i).aval.weak for i in node.inputs)
            expr = (prim.emit_weak if weak else prim.emit)(*args, **node.params)
            if self.inlinable(node) and size <= MAX_INLINE:
                self.exprs[node.id], self.sizes[node.id] = expr, size
                return
            name = self.names[node.id] = self.name_for(node)
            stmts: list[ast.stmt] = [ast.Assign([ast.Name(name, ast.Store())], expr)]
        else:
            name = self.names[node.id] = self.name_for(node)
            stmts = prim.emit_stmts(ast.Name(name, ast.Load()), *args, **node.params)
        self.write(node, stmts)

    def visit_update(self, node: Node) -> None:
        """Write the new value of one or more input buffers in place.

        `W_new = W - lr * g_W` becomes `W -= lr * g_W`; chains through single-use
        temporaries (`v_new = 0.9 * v + g`) become `v *= 0.9` then `v += g`. Where
        that is not safe, the value is computed and copied in at the very end.
        """
        buffers = self.updates.pop(node.id)
        first = buffers[0]
        computed = node.op not in ("input", "const") and registry.get(node.op).emit is not None
        stmts = self.in_place(first, node) if computed else None
        if stmts is not None and self.old_value_dead(first, node):
            self.names[node.id] = self.names[first]
            self.write(node, stmts)
            buffers = buffers[1:]
        else:
            self.visit(node)
        value = self.ref(node.id)
        for buffer in buffers:
            target = ast.Subscript(ast.Name(self.names[buffer], ast.Load()), ast.Constant(Ellipsis), ast.Store())
            self.deferred.append("    " + _unparse(ast.Assign([target], value)))

    def in_place(self, buffer: int, node: Node) -> Optional[list[ast.stmt]]:
        """Augmented assignments that turn `buffer` into `node`'s value, or None."""
        if node.id == buffer:
            return []
        if node.op not in _AUGMENTED or node.aval != self.graph.node(buffer).aval:
            return None
        op, commutative = _AUGMENTED[node.op]
        x, y = node.inputs
        for chain, other in [(x, y), (y, x)] if commutative else [(x, y)]:
            if chain != buffer and (chain not in self.exprs or self.graph.node(chain).op == "const"):
                continue
            before = self.in_place(buffer, self.graph.node(chain))
            rhs = self.ref(other)
            if before is None or (before and _reads(rhs, self.names[buffer])):
                continue
            target = ast.Name(self.names[buffer], ast.Store())
            return before + [ast.AugAssign(target, op, rhs)]
        return None

    def old_value_dead(self, buffer: int, node: Node) -> bool:
        """Every reader of the buffer's old value is already emitted, including the
        readers of views of it (`g_B = A.T` still sees A's memory after `A -= ...`)."""
        chain = set(_ancestors_within(self.graph, node.id, self.exprs))
        pending, seen = list(self.graph.users(buffer)), set()
        while pending:
            user = pending.pop()
            if user in seen or user in chain:
                continue
            seen.add(user)
            if user not in self.consumed and user not in self.names:
                return False
            if registry.get(self.graph.node(user).op).view:
                if user in self.outputs:
                    return False
                pending.extend(self.graph.users(user))
        return True

    def write(self, node: Node, stmts: list[ast.stmt]) -> None:
        loc = node.loc
        if node.grad_of is not None:
            group = ("grad", loc)
            if group != self.group and loc is not None:
                text = f"  {loc.text}" if loc.text else ""
                self.lines.append(f"    # grad of: {loc}{text}")
            self.group = group
            self.lines.extend("    " + _unparse(s) for s in stmts)
            self.note_reads(stmts)
            return
        self.group = ("forward", loc)
        suffix = f"  # {loc}" if loc is not None else ""
        self.lines.extend("    " + _unparse(s) + suffix for s in stmts)
        self.note_reads(stmts)

    def note_reads(self, stmts: list[ast.stmt]) -> None:
        names = names_read(stmts)
        self.calls_runtime |= "runtime" in names
        self.reads.append((len(self.lines), names))

    def released(self, keep: set[str]) -> list[str]:
        """The body lines with `del` after the last read of each large temporary."""
        points = release_points([names for _, names in self.reads], self.large - keep)
        lines, start = [], 0
        for k, (end, _) in enumerate(self.reads):
            lines.extend(self.lines[start:end])
            if k in points:
                lines.append("    del " + ", ".join(points[k]))
            start = end
        return lines + self.lines[start:]

    def output(self, tree: Any) -> ast.expr:
        if isinstance(tree, tuple):
            return ast.Tuple([self.output(t) for t in tree], ast.Load())
        return self.ref(tree)


def _unparse(stmt: ast.stmt) -> str:
    return ast.unparse(ast.fix_missing_locations(stmt))


_AUGMENTED = {
    "add": (ast.Add(), True),
    "subtract": (ast.Sub(), False),
    "multiply": (ast.Mult(), True),
    "divide": (ast.Div(), False),
}


def _reads(expr: ast.expr, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(expr))


def _ancestors_within(graph: Graph, i: int, inlined: dict) -> list[int]:
    """`i` and the inlined operands its expression is built from."""
    out, stack = [], [i]
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(k for k in graph.node(j).inputs if k in inlined)
    return out


def generate(graph: Graph, fn_name: str, out_tree: Any,
             updates: Optional[list[tuple[int, int]]] = None) -> Generated:
    """Emit `graph` as a module defining `fn_name(*inputs)` returning `out_tree`
    (a node id, or nested tuples of node ids). `updates` lists (input, node) pairs:
    the function writes each node's value into that input's array in place."""
    em = _Emitter(graph, fn_name)
    for buffer, node_id in updates or []:
        em.updates.setdefault(node_id, []).append(buffer)
    params = []
    for k, i in enumerate(graph.inputs):
        node = graph.node(i)
        em.names[i] = em.ns.fresh(node.name or f"arg{k}")
        params.append(ast.arg(em.names[i]))
    for node in graph.nodes():
        em.visit(node)
    returned = ast.Return(em.output(out_tree))
    ret = ast.unparse(returned)
    arguments = ast.arguments(posonlyargs=[], args=params, kwonlyargs=[], kw_defaults=[], defaults=[])
    header = _unparse(ast.FunctionDef(name=fn_name, args=arguments, body=[ast.Pass()], decorator_list=[]))
    header = header.splitlines()[0]
    keep = names_read([returned]) | {n for line in em.deferred for n in names_read(ast.parse(line.strip()).body)}
    body = em.released(keep) + em.deferred + [f"    {ret}"]
    imports = ["import numpy as np"]
    if em.calls_runtime:
        imports.append("import runtime.nn")
    bound = [f"# {name}: {value.dtype}{list(value.shape)} array bound at compile time" for name, value in em.constants.items()]
    source = "\n".join(imports + bound + ["", "", header] + body) + "\n"
    return Generated(fn_name, source, _load(fn_name, source, em.constants), em.constants)


def _load(fn_name: str, source: str, constants: dict[str, np.ndarray]) -> Callable:
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    filename = f"<adjoint {fn_name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = dict(constants)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[fn_name]

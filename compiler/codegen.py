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
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from compiler.ir import Aval, Graph, Node
from compiler import printer
from compiler.naming import Namespace
from compiler.passes.memory import MemoryPlan, plan_memory
from compiler.primitives import registry
from compiler.primitives.registry import functions_for_methods, literal, np_attr, np_call
from compiler.rolling import Unit, print_units

_SCIPY_MODULE = re.compile(r"\bscipy\.(\w+)\.")  # in a printed line: an import it needs


@dataclass
class Generated:
    """A generated function, its module source and the constants it closes over."""

    name: str
    source: str
    fn: Callable
    constants: dict[str, Any]  # arrays, host functions, tuples of numbers
    keeps_arrays: bool = False  # computes into module-level arrays: calls must not overlap


class _Emitter:
    def __init__(self, graph: Graph, fn_name: str, plan: MemoryPlan, debug_nans: bool):
        self.graph = graph
        self.plan = plan
        self.debug_nans = debug_nans
        self.ns = Namespace({fn_name})
        self.names: dict[int, str] = {}
        self.exprs: dict[int, ast.expr] = {}
        self.constants: dict[str, Any] = {}
        self.captured: set[str] = set()
        self.units: list[Unit] = []
        self.stacks: dict[str, dict[str, int]] = {}  # stacked constants: name -> {constant: row}
        self.tables: dict[tuple, str] = {}  # the reprs of a loop's numbers -> the tuple's name
        self.group: Optional[tuple] = None
        self.scipy_modules: set[str] = set()  # scipy submodules named (scipy.special.erf, scipy.linalg.sqrtm)
        self.raises_path_miss = False  # a guard checks a decision on traced values
        self.workspace = _WorkspaceArrays(graph, plan.workspace)  # arrays the module keeps between calls
        self.made: list[str] = []  # `rows = np.arange(128)`: constants the module makes when it loads

    def ref(self, i: int) -> ast.expr:
        if i in self.exprs:
            return self.exprs[i]
        return ast.Name(self.names[i], ast.Load())

    def name_for(self, node: Node) -> str:
        if node.name:
            return self.ns.fresh(node.name)
        if node.cotangent_of is not None:
            primal = self.names.get(node.cotangent_of)
            if primal is None and node.cotangent_of in self.graph:  # an unnamed, inlined value
                primal = self.graph.node(node.cotangent_of).op
            prefix = f"{self.graph.cotangent_scale}_g" if self.graph.cotangent_scale else "g"
            return self.ns.fresh(f"{prefix}_{primal}" if primal else prefix)
        if node.tangent_of is not None:
            primal = self.names.get(node.tangent_of)
            if primal is None and node.tangent_of in self.graph:
                primal = self.graph.node(node.tangent_of).op
            return self.ns.fresh(f"t_{primal}" if primal else "t")
        if node.is_const:
            return self.ns.fresh("const")
        return self.ns.temp()

    def visit(self, node: Node) -> None:
        if node.is_const:
            self.visit_const(node)
            return
        prim = registry.get(node.op)
        args = [self.ref(i) for i in node.inputs]
        if node.id in self.plan.in_place:
            buffer, steps = self.plan.in_place[node.id]
            self.names[node.id] = self.names[buffer]
            self.write(node, [ast.AugAssign(ast.Name(self.names[target], ast.Store()), op, self.ref(operand))
                              for target, op, operand in steps])
            return
        graph = self.graph
        numbers = [arg for arg, i in zip(args, node.inputs) if graph.node(i).aval.weak]
        params = {**node.params, **{key: self.bind(node.params[key]) for key in prim.bound}} if prim.bound else node.params
        if prim.emit is not None:
            weak = prim.emit_weak is not None and len(numbers) == len(args)
            expr = (prim.emit_weak if weak else prim.emit)(*args, **params)
            if numbers and not weak:
                expr = functions_for_methods(expr, numbers, args)
            if node.id in self.plan.inlined:
                self.exprs[node.id] = expr
                return
            name = self.names[node.id] = self.name_for(node)
            if node.id in self.plan.workspace:
                stmts = self.into_workspace(node, name, prim, args)
            elif node.id in self.plan.into_fresh:
                stmts = self.into_fresh(node, name, prim, args)
            elif node.id in self.plan.out_into:  # one NumPy call: `np.multiply(g, mask, out=g)`
                out = ast.keyword("out", self.ref(self.plan.out_into[node.id]))
                if isinstance(expr, ast.Call):
                    expr.keywords.append(out)
                else:  # an operator
                    expr = ast.Call(np_attr(node.op), args, [out])
                stmts = [ast.Assign([ast.Name(name, ast.Store())], expr)]
            else:
                stmts = [ast.Assign([ast.Name(name, ast.Store())], expr)]
        else:
            name = self.names[node.id] = self.name_for(node)
            stmts = prim.emit_stmts(ast.Name(name, ast.Load()), *args, **params)
            if numbers:
                stmts = [functions_for_methods(stmt, numbers, args) for stmt in stmts]
        self.write(node, stmts)

    def into_workspace(self, node: Node, name: str, prim: Any, args: list[ast.expr]) -> list[ast.stmt]:
        """`v = np.f(a, b, out=ws_v)`: the value goes into an array the module keeps
        (`v = np.matmul(x, W1, out=ws_z1); v += b1` for a bias add)."""
        buffer = self.workspace.name_for(node.id)
        self.ns.used.add(buffer)
        out = ast.keyword("out", ast.Name(buffer, ast.Load()))
        if node.id in self.plan.into_fresh:
            k = self.plan.into_fresh[node.id]
            first = self.graph.node(node.inputs[k])
            product = ast.Call(np_attr(first.op), [self.ref(i) for i in first.inputs], [out])
            return [ast.Assign([ast.Name(name, ast.Store())], product),
                    ast.AugAssign(ast.Name(name, ast.Store()), prim.augmented, args[1 - k])]
        return [ast.Assign([ast.Name(name, ast.Store())], ast.Call(np_attr(node.op), args, [out]))]

    def into_fresh(self, node: Node, name: str, prim: Any, args: list[ast.expr]) -> list[ast.stmt]:
        """`v = <fresh operand>; v <op>= <other operand>`."""
        k = self.plan.into_fresh[node.id]
        first, other = args[k], args[1 - k]
        return [ast.Assign([ast.Name(name, ast.Store())], first),
                ast.AugAssign(ast.Name(name, ast.Store()), prim.augmented, other)]

    def bind(self, value: Any) -> ast.Name:
        """A module-level name for a Python object the code calls (a host function):
        one name per object, named after its `name`."""
        for name, bound in self.constants.items():
            if bound is value.fn:
                return ast.Name(name, ast.Load())
        name = self.ns.fresh(value.name)
        self.constants[name] = value.fn
        return ast.Name(name, ast.Load())

    def visit_const(self, node: Node) -> None:
        """A Python number prints as a literal, a NumPy scalar as `np.float32(0.5)`;
        an array is bound to a name the module holds (the user's own array, read
        live, for a captured global or closure value), or made by the module when
        it loads from the constant's recipe (`rows = np.arange(128)`)."""
        value = node.params["value"]
        captured = node.params.get("captured", False)
        if "recipe" in node.params:
            name = self.names[node.id] = self.name_for(node)
            self.made.append(f"{name} = {node.params['recipe']}")
        elif node.aval.weak:
            self.exprs[node.id] = literal(value)
        elif np.ndim(value) == 0 and value.dtype.kind in "biuf" and not captured:
            self.exprs[node.id] = np_call(value.dtype.name, literal(value.item()))
        else:
            name = self.names[node.id] = self.name_for(node)
            self.constants[name] = value
            if captured:
                self.captured.add(name)

    def write(self, node: Node, stmts: list[ast.stmt]) -> None:
        loc = node.loc
        header: tuple[str, ...] = ()
        if node.grad_of is not None:
            group = ("grad", loc)
            if group != self.group and loc is not None:
                text = f"  {loc.text}" if loc.text else ""
                header = (f"    # grad of: {loc}{text}",)
            self.group = group
            suffix = ""
        else:
            self.group = ("forward", loc)
            suffix = f"  # {loc}" if loc is not None else ""
        after = []
        if self.debug_nans and node.dtype.kind in "fc":
            after.append(_finite_check(self.names[node.id], node))
        released = self.plan.release.get(node.id)
        if released:
            after.append(ast.Delete([ast.Name(self.names[i], ast.Del()) for i in released]))
        self.units.append(Unit(stmts, header, suffix, after))

    def stacked(self, names: tuple) -> Optional[tuple[str, int, int, bool]]:
        """Where the module-level arrays `names` (a loop reads one per iteration) lie
        stacked: (the stacked array's name, first row, step, whether rows are 0-d).
        Kept arrays a loop computes into become rows of a new kept array. Constants
        are stacked once; an array stacked for an earlier loop serves again (the
        backward loop reads the forward's rows in reverse). None unless all are arrays
        of one shape and dtype bound at compile time (a captured array is read live,
        never copied)."""
        for name, rows in self.stacks.items():
            if names[0] in rows and names[1] in rows:
                first, step = rows[names[0]], rows[names[1]] - rows[names[0]]
                if all(rows.get(n) == first + step * k for k, n in enumerate(names)):
                    return name, first, step, self.constants[name].ndim == 1
        kept = self.workspace.stack(names, self.ns.used)
        if kept is not None:
            return kept, 0, 1, self.workspace.aval_of(names[0]).shape == ()
        values = [self.constants.get(name) for name in names]
        if any(not isinstance(v, np.ndarray) or name in self.captured for v, name in zip(values, names)):
            return None
        if len({(v.shape, v.dtype) for v in values}) != 1 or len(set(names)) != len(names):
            return None
        name = self.ns.fresh(names[0] + "s")
        self.constants[name] = np.stack(values)
        self.stacks[name] = {n: k for k, n in enumerate(names)}
        return name, 0, 1, values[0].ndim == 0

    def table(self, numbers: tuple) -> str:
        """A module-level tuple of Python numbers a loop reads one per iteration (as
        literals they would be Python numbers too: weak scalars, unlike an array's)."""
        key = tuple(map(repr, numbers))
        if key not in self.tables:
            self.tables[key] = self.ns.fresh("numbers")
            self.constants[self.tables[key]] = numbers
        return self.tables[key]

    def unused_constants_dropped(self, named: set[str]) -> None:
        """Forget arrays and tables no line names (made for a loop that stayed unrolled,
        or rows of a constant a loop reads stacked)."""
        for name in [n for n, v in self.constants.items() if isinstance(v, (np.ndarray, tuple)) and n not in named]:
            del self.constants[name]

    def body_lines(self) -> list[str]:
        """The function's lines: every unit, runs that repeat as loops (compiler/rolling.py)."""
        lines = print_units(self.units, self.ns.fresh, gather=self.stacked, tabulate=self.table,
                            reserved=frozenset(self.names[i] for i in self.graph.inputs))
        for line in lines:  # a false positive (the text in a string) only adds an unused import
            if line.lstrip().startswith("#"):
                continue  # a `# grad of:` header quotes the user's line
            if "PathMiss(" in line:
                self.raises_path_miss = True
            if "scipy." in line:
                self.scipy_modules.update(_SCIPY_MODULE.findall(line))
        return lines

    def output(self, tree: Any) -> ast.expr:
        if isinstance(tree, tuple):
            return ast.Tuple([self.output(t) for t in tree], ast.Load())
        return self.ref(tree)


def _finite_check(name: str, node: Node) -> ast.stmt:
    """`if not np.isfinite(v).all(): raise FloatingPointError('file.py:LINE: ...')`."""
    where = f"{node.loc}: " if node.loc is not None else ""
    text = f"`{node.loc.text}` " if node.loc is not None and node.loc.text else ""
    role = f"the gradient {name}" if node.grad_of is not None else name
    message = f"{where}{text}produced a NaN or infinity in {role} (debug_nans is on)"
    finite = ast.Call(ast.Attribute(np_call("isfinite", ast.Name(name, ast.Load())), "all", ast.Load()), [], [])
    error = ast.Call(ast.Name("FloatingPointError", ast.Load()), [ast.Constant(message)], [])
    return ast.If(ast.UnaryOp(ast.Not(), finite), [ast.Raise(error)], [])


def _unparse(stmt: ast.stmt) -> str:
    """`ast.unparse` of a built statement (compiler/printer.py prints the common forms
    faster, to the same text)."""
    return printer.unparse(stmt)


def flat_ids(tree: Any) -> list[int]:
    """The node ids of an out tree (a node id, or nested tuples of them), in order."""
    if isinstance(tree, tuple):
        return [i for t in tree for i in flat_ids(t)]
    return [tree]


def generate(graph: Graph, fn_name: str, out_tree: Any,
             updates: Optional[list[tuple[int, int]]] = None, debug_nans: bool = False,
             workspace: bool = False) -> Generated:
    """Emit `graph` as a module defining `fn_name(*inputs)` returning `out_tree`
    (a node id, or nested tuples of node ids). `updates` lists (input, node) pairs:
    the function writes each node's value into that input's array in place. With
    `debug_nans`, every new floating value is checked for NaNs and infinities."""
    plan = plan_memory(graph, flat_ids(out_tree), updates or [], inline=not debug_nans, workspace=workspace)
    em = _Emitter(graph, fn_name, plan, debug_nans)
    params = []
    for k, i in enumerate(graph.inputs):
        node = graph.node(i)
        em.names[i] = em.ns.fresh(node.name or f"arg{k}")
        params.append(ast.arg(em.names[i]))
    for i in plan.order:
        em.visit(graph.node(i))
    for buffer, node in plan.copies:
        target = ast.Subscript(ast.Name(em.names[buffer], ast.Load()), ast.Constant(Ellipsis), ast.Store())
        em.units.append(Unit([ast.Assign([target], em.ref(node))]))
    em.units.append(Unit([ast.Return(em.output(out_tree))]))
    lines = em.body_lines()
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join(lines + em.made)))  # identifiers the code uses
    em.unused_constants_dropped(named)
    arguments = ast.arguments(posonlyargs=[], args=params, kwonlyargs=[], kw_defaults=[], defaults=[])
    header = _unparse(ast.FunctionDef(name=fn_name, args=arguments, body=[ast.Pass()], decorator_list=[]))
    header = header.splitlines()[0]
    imports = (["import numpy as np"] + [f"import scipy.{name}" for name in sorted(em.scipy_modules)]
               + (["from runtime.paths import PathMiss"] if em.raises_path_miss else []))
    bound = [
        f"# {name}: {value.dtype}{list(value.shape)} array, "
        + ("the caller's own (read when the function runs)" if name in em.captured else "bound at compile time")
        if isinstance(value, np.ndarray)
        else f"# {name}: {len(value)} Python numbers, one per iteration of a loop" if type(value) is tuple
        else f"# {name}: {_python_name(value)}, called as Python code"
        for name, value in em.constants.items()
    ]
    body = _quiet_discarded_lanes(lines) if _masks_discarded_lanes(graph) and not debug_nans else lines
    kept = em.workspace.module_lines(named)
    module_level = ([""] + em.made if em.made else []) + (
        ["", "# arrays the step computes into and keeps between calls (not thread-safe by itself)"] + kept
        if kept else [])
    source = "\n".join(imports + bound + module_level + ["", "", header] + body) + "\n"
    return Generated(fn_name, source, _load(fn_name, source, em.constants), em.constants, bool(kept))


def _view_suffix(k: int) -> str:
    """`a`, `b`, ... for the views of one kept array; `z` is followed by `27`, `28`, ..."""
    return "abcdefghijklmnopqrstuvwxyz"[k] if k < 26 else str(k + 1)


class _WorkspaceArrays:
    """The module-level arrays of a memory plan's workspace, by number: `ws3` for an
    array one shape uses; a flat `ws3` and views `ws3_a = ws3[:65536].reshape(256, 256)`
    for one that values of several shapes share (never alive at once)."""

    def __init__(self, graph: Graph, chosen: dict[int, int]):
        self.arrays: dict[int, list[Aval]] = {}
        self.stacked: dict[int, tuple[int, Aval]] = {}  # number -> (iterations, aval): one row per loop iteration
        self.chosen = chosen
        for i, number in sorted(chosen.items(), key=lambda item: item[1]):
            shapes = self.arrays.setdefault(number, [])
            aval = Aval(graph.node(i).shape, graph.node(i).dtype)
            if aval not in shapes:
                shapes.append(aval)
        self.graph = graph

    def name_for(self, i: int) -> str:
        number = self.chosen[i]
        shapes = self.arrays[number]
        if len(shapes) == 1:
            return f"ws{number}"
        node = self.graph.node(i)
        return f"ws{number}_{_view_suffix(shapes.index(Aval(node.shape, node.dtype)))}"

    def aval_of(self, name: str) -> Optional[Aval]:
        """The shape and dtype of the kept array (or view) `name`, None for any other name."""
        match = re.fullmatch(r"ws(\d+)(?:_(\w+))?", name)
        shapes = self.arrays.get(int(match.group(1))) if match else None
        if shapes is None:
            return None
        if match.group(2) is None:
            return shapes[0] if len(shapes) == 1 else None
        views = [_view_suffix(k) for k in range(len(shapes))]
        return shapes[views.index(match.group(2))] if match.group(2) in views else None

    def stack(self, names: tuple, used: set[str]) -> Optional[str]:
        """A new kept array with one row per name, for a loop whose iterations compute
        into those arrays (each iteration's value stays alive: `out=ws7[i]`)."""
        avals = {self.aval_of(name) for name in names}
        if None in avals or len(avals) != 1 or len(set(names)) != len(names):
            return None
        number = max([*self.arrays, *self.stacked]) + 1
        while f"ws{number}" in used:
            number += 1
        self.stacked[number] = (len(names), avals.pop())
        used.add(f"ws{number}")
        return f"ws{number}"

    def module_lines(self, named: set[str]) -> list[str]:
        """The kept arrays the body names (an array whose every use became a row of a
        stacked one is left out)."""
        lines = []
        for number, (count, aval) in sorted(self.stacked.items()):
            if f"ws{number}" not in named:
                continue  # made for a loop that stayed unrolled
            empty = _unparse(ast.Expr(np_call('empty', literal((count, *aval.shape)), dtype=aval.dtype)))
            lines.append(f"ws{number} = {empty}  # a row per loop iteration")
        for number, shapes in sorted(self.arrays.items()):
            views = [f"ws{number}_{_view_suffix(k)}" for k in range(len(shapes))] if len(shapes) > 1 else []
            if f"ws{number}" not in named and not any(view in named for view in views):
                continue
            dtype = shapes[0].dtype
            if len(shapes) == 1:
                lines.append(f"ws{number} = {_unparse(ast.Expr(np_call('empty', literal(shapes[0].shape), dtype=dtype)))}")
                continue
            size = max(aval.size for aval in shapes)
            flat = _unparse(ast.Expr(np_call('empty', literal(size), dtype=dtype)))
            lines.append(f"ws{number} = {flat}  # shared by values never alive at once, through views")
            for k, aval in enumerate(shapes):
                part = f"ws{number}" if aval.size == size else f"ws{number}[:{aval.size}]"
                shape = aval.shape if aval.shape else ((),)  # `.reshape(())` for a 0-d view
                lines.append(f"ws{number}_{_view_suffix(k)} = {part}.reshape{shape}")
        return lines


def _masks_discarded_lanes(graph: Graph) -> bool:
    """Whether the gradient selects with np.where: then it computes values in lanes it
    discards (`0.5 * g / np.sqrt(x)` where x < 0 before the mask zeroes them), whose
    NumPy warnings would be noise (the results are exact)."""
    return any(node.op == "where" and node.grad_of is not None for node in graph.nodes())


def _quiet_discarded_lanes(lines: list[str]) -> list[str]:
    """The body inside `with np.errstate(...)`, so discarded lanes do not warn."""
    quiet = "    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):"
    return [quiet] + ["    " + line if line.strip() else line for line in lines]


def _load(fn_name: str, source: str, constants: dict[str, np.ndarray]) -> Callable:
    digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    filename = f"<adjoint {fn_name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = dict(constants)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[fn_name]


def _python_name(fn: Any) -> str:
    """`module.qualname` of a Python function, as its definition names it."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"

"""Save a compiled function as a standalone module that needs NumPy only.

`save(transformed, path, *args, **kwargs)` compiles `transformed` (a `grad`,
`value_and_grad`, `jit` or `compile_step` object) for the call `transformed(*args,
**kwargs)` and writes its generated module to `path`, reworked so that it runs
without adjoint installed:

- a docstring names the source function (file:line), the signature compiled for
  (each parameter with its dtype[shape]), what it returns and the compiler version;
- calls into the `runtime` package (`runtime.nn.logsumexp(...)`, emitted for fused
  neural-network primitives) become calls of copies of those functions written into
  the module itself (their NumPy bodies, `@fused` and annotations stripped, plus any
  runtime function they call), renamed on the syntax tree, comments of the generated
  code kept;
- arrays the generated code reads as module globals (`Generated.constants`: arrays
  made at compile time, or the caller's own global/closure arrays) are written as
  literals when small, and otherwise either saved beside the module as
  `<stem>.npz`, loaded relative to the module's own file (`constants="npz"`), or
  appended to the function's parameters (`constants="arguments"`).

The module defines the compiled function under its generated name
(`f_value_and_grad`, `loss_fn_step`, ...), which takes the flattened leaves of the
traced arguments in order and returns the flat nested tuple of results (no pytrees).
A saved `compile_step` function takes (params leaves..., optimizer state leaves...,
hyperparameter values..., batch...), updates params and state in place and returns
the loss; its docstring lists each group.
"""
from __future__ import annotations

import ast
import copy
import importlib
import importlib.metadata
import inspect
import os
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from compiler.api import Compiled, Transformed, traced_args
from compiler.errors import UnsupportedError, api_boundary
from compiler.guards import Guards
from compiler.ir import Aval, Graph
from compiler.signature import Signature, arg_names
from compiler.step import Step
from compiler.tracing import Tracer, trace
from compiler.api import INSPECTORS
from runtime import tree

# Constants with at most this many elements (all finite numbers) are written as literals.
SMALL = 16

CONSTANTS_MODES = ("npz", "arguments")


def compiler_version() -> str:
    """The installed adjoint's version (`importlib.metadata`), or "unknown"."""
    try:
        return importlib.metadata.version("adjoint")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def compiled_for(transformed: Transformed, args: tuple, kwargs: dict) -> tuple[Compiled, Signature]:
    """The compiled function and signature `transformed(*args, **kwargs)` runs; for a
    compile_step object, `args` are (params, *batch) as for `step(params, *batch)`."""
    if not isinstance(transformed, Transformed):
        raise UnsupportedError(
            f"expected a function made by grad, value_and_grad, jit or compile_step, got {type(transformed).__name__}"
        )
    if isinstance(transformed, Step):
        if not args:
            raise UnsupportedError("a compiled step is called as step(params, *batch): pass params first")
        call = transformed._arguments(args[0], tuple(args[1:]))
    else:
        call = tuple(args)
    return transformed.path_for(call, dict(kwargs))


def forward_graph(transformed: Transformed, sig: Signature) -> Graph:
    """The traced forward graph of `transformed.fun` for `sig` (from `compiled_for`),
    before differentiation and optimization; its outputs are the function's traced
    results (for a step: its loss function's)."""
    if isinstance(transformed, Step):
        def call(tracers: list) -> Any:
            (params, _state, _hyper, _structure, *batch), kwargs = traced_args(sig, tracers)
            return transformed.fun(params, *batch, **kwargs)

        graph, result = trace(transformed.fun, sig.avals, sig.names, call, Guards())
    else:
        graph, result = transformed._trace(sig, Guards())
    graph.outputs = [leaf.id for leaf in tree.flatten(result)[0] if isinstance(leaf, Tracer)]
    return graph


@dataclass
class Module:
    """A standalone module: its source, and the arrays it loads from `npz_name`."""

    name: str  # the compiled function's name inside the module
    source: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    npz_name: Optional[str] = None


@api_boundary
def save(transformed: Transformed, path: Any, *args: Any, constants: str = "npz", **kwargs: Any) -> Path:
    """Write the module compiled for `transformed(*args, **kwargs)` to `path` (and,
    with `constants="npz"` and large constants, `<stem>.npz` beside it); return
    the module's path. See the module docstring."""
    path = Path(path)
    if path.suffix != ".py":
        raise UnsupportedError(f"a standalone module is a .py file, got {str(path)!r}")
    module = build(transformed, *args, constants=constants, npz_name=path.with_suffix(".npz").name, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(module.source)
    npz = path.with_suffix(".npz")
    if module.arrays:
        np.savez(npz, **module.arrays)
    elif npz.exists():
        npz.unlink()  # a stale file of an earlier save
    return path


@api_boundary
def source(transformed: Transformed, *args: Any, constants: str = "npz", **kwargs: Any) -> str:
    """The standalone module's source (constants in `<function name>.npz`)."""
    return build(transformed, *args, constants=constants, **kwargs).source


def build(transformed: Transformed, *args: Any, constants: str = "npz", npz_name: Optional[str] = None,
          **kwargs: Any) -> Module:
    """The standalone module for `transformed(*args, **kwargs)`, not yet written."""
    if constants not in CONSTANTS_MODES:
        raise UnsupportedError(f"constants must be one of {CONSTANTS_MODES}, got {constants!r}")
    compiled, sig = compiled_for(transformed, args, kwargs)
    generated = compiled.generated
    functions = [value for value in generated.constants.values() if callable(value)]
    if functions:
        names = ", ".join(f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', f)}" for f in functions)
        raise UnsupportedError(
            f"the generated code calls Python functions the compiler could not trace ({names}: custom rules "
            "around code that leaves NumPy, or an ODE solver); a standalone module cannot hold them. Keep using "
            "the compiled function, or write those functions with traceable NumPy to save it."
        )
    npz_name = npz_name or f"{generated.name}.npz"
    parts = rewrite(generated.source, generated.name, generated.constants, _captured_values(compiled),
                    constants, npz_name)
    doc = _docstring(transformed, compiled, sig, parts, npz_name)
    source_text = "\n".join([doc] + parts.text) + "\n"
    ast.parse(source_text)  # what we write must be valid Python
    return Module(generated.name, source_text, parts.loaded, npz_name if parts.loaded else None)


@dataclass
class Rewritten:
    """A generated module made standalone, less its docstring."""

    text: list[str]  # the module's lines after the docstring
    fn: ast.FunctionDef  # the compiled function (parameters before constants were added)
    loaded: dict[str, np.ndarray]  # constants loaded from the .npz file
    literals: list[str]  # constants written as literals
    as_arguments: list[str]  # constants that became parameters
    extra_imports: list[str]  # imports other than numpy the generated code needs
    captured: set[int]
    constants: dict[str, np.ndarray]


def rewrite(text: str, fn_name: str, constants: dict[str, np.ndarray], captured: set[int],
            mode: str = "npz", npz_name: str = "constants.npz") -> Rewritten:
    """Make the module source `text` (codegen's output, defining `fn_name` and reading
    `constants` as globals) standalone: runtime calls become copied helpers, the
    constants literals, .npz entries (mode "npz") or parameters (mode "arguments";
    arrays whose id is in `captured` are never written as literals then)."""
    module_ast = ast.parse(text)
    fn = next((s for s in module_ast.body if isinstance(s, ast.FunctionDef) and s.name == fn_name), None)
    if fn is None:
        raise UnsupportedError(f"the generated module does not define {fn_name}")
    taken = {n.id for n in ast.walk(module_ast) if isinstance(n, ast.Name)}
    taken |= {a.arg for a in ast.walk(module_ast) if isinstance(a, ast.arg)}
    taken |= {s.name for s in module_ast.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))}
    taken |= set(constants) | {"np", fn_name}

    helpers = _Helpers(taken)
    edits: list[tuple[int, int, int, str]] = []  # (line, start byte, end byte, replacement)
    for node in ast.walk(module_ast):
        target = _runtime_target(node)
        if target is not None:
            edits.append((node.lineno, node.col_offset, node.end_col_offset, helpers.name_for(target)))
    lines = text.splitlines()
    drop: set[int] = set()
    extra_imports: list[str] = []
    first_code = fn.lineno
    for stmt in module_ast.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else [stmt.module or ""]
            drop.update(range(stmt.lineno, stmt.end_lineno + 1))
            if any(name.split(".")[0] not in ("numpy", "runtime") for name in names):
                extra_imports.append(ast.unparse(stmt))
        else:
            first_code = min(first_code, stmt.lineno)
    # comment and blank lines above the code (codegen's notes on bound constants)
    # give way to the docstring
    drop.update(k for k in range(1, first_code) if lines[k - 1].lstrip().startswith("#") or not lines[k - 1].strip())
    lines = _apply_edits(lines, edits)

    literals, loaded, as_arguments = [], {}, []
    for name, value in constants.items():
        if type(value) is tuple:  # Python numbers a loop reads one per iteration: they stay Python numbers
            literals.append(f"{name} = {value!r}")
            continue
        array = np.asarray(value)
        if _small(array) and not (mode == "arguments" and id(value) in captured):
            literals.append(f"{name} = np.array({array.tolist()!r}, dtype={array.dtype.name!r})")
        elif mode == "arguments":
            as_arguments.append(name)
        else:
            loaded[name] = array
    original_fn = copy.deepcopy(fn)
    if as_arguments:
        lines = _append_parameters(lines, fn, as_arguments)

    os_name = "os" if "os" not in taken else "_os"
    npz_var = _fresh("_constants", taken)
    out: list[str] = []
    if loaded:
        out.append("import os" if os_name == "os" else "import os as _os")
    out.append("import numpy as np")
    out += extra_imports
    if "PathMiss(" in text:  # runtime.paths.PathMiss, defined here: the module needs NumPy only
        out += ["", "", "class PathMiss(Exception):",
                '    """The values take a path (a decision on them) this module was not compiled for."""']
    for helper in helpers.sources():
        out += ["", "", helper]
    if literals or loaded:
        out += ["", ""] + literals
        if loaded:
            out.append(f"with np.load({os_name}.path.join({os_name}.path.dirname({os_name}.path.abspath(__file__)), "
                       f"{npz_name!r})) as {npz_var}:")
            out += [f"    {name} = {npz_var}[{name!r}]" for name in loaded]
    kept = [line for k, line in enumerate(lines, start=1) if k not in drop]
    while kept and not kept[0].strip():
        kept.pop(0)
    out += ["", ""] + kept
    return Rewritten(out, original_fn, loaded, literals, as_arguments, extra_imports, captured, dict(constants))


# --- runtime helpers ---------------------------------------------------------------

def _runtime_target(node: ast.AST) -> Optional[tuple[str, str]]:
    """("nn", "logsumexp") for the expression `runtime.nn.logsumexp`, else None."""
    if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)):
        return None
    inner = node.value
    if isinstance(inner.value, ast.Name) and inner.value.id == "runtime":
        return inner.attr, node.attr
    return None


def _fresh(name: str, taken: set[str]) -> str:
    candidate, k = name, 1
    while candidate in taken:
        candidate = f"{name}_{k}"
        k += 1
    taken.add(candidate)
    return candidate


class _Helpers:
    """The runtime functions a module calls, and those they call in turn, each
    copied into the module under a name no generated identifier uses."""

    def __init__(self, taken: set[str]):
        self.taken = taken
        self.names: dict[tuple[str, str], str] = {}
        self.functions: dict[tuple[str, str], types.FunctionType] = {}
        self.order: list[tuple[str, str]] = []

    def name_for(self, target: tuple[str, str]) -> str:
        if target not in self.names:
            module_name, attr = target
            try:
                module = importlib.import_module(f"runtime.{module_name}")
                fn = inspect.unwrap(getattr(module, attr))
            except (ImportError, AttributeError):
                raise UnsupportedError(f"the generated code calls runtime.{module_name}.{attr}, which does not exist") from None
            if not isinstance(fn, types.FunctionType):
                raise UnsupportedError(f"runtime.{module_name}.{attr} is not a plain function; it cannot be copied")
            self.names[target] = _fresh(attr, self.taken)
            self.functions[target] = fn
            self.order.append(target)
            self._dependencies(fn)
        return self.names[target]

    def _dependencies(self, fn: types.FunctionType) -> None:
        for name in _free_globals(_parse_function(fn)):
            value = fn.__globals__.get(name)
            if value is None or isinstance(value, types.ModuleType):
                continue
            target = _runtime_function(value)
            if target is None:
                raise UnsupportedError(
                    f"{fn.__module__}.{fn.__name__} reads the global {name!r}, which a standalone module cannot copy"
                )
            self.name_for(target)

    def sources(self) -> list[str]:
        out = []
        for target in self.order:
            fn = self.functions[target]
            fdef = _parse_function(fn)
            fdef.name = self.names[target]
            renames = {}
            for name in _free_globals(fdef):
                dependency = _runtime_function(fn.__globals__.get(name))
                if dependency is not None:
                    renames[name] = self.names[dependency]
            for node in ast.walk(fdef):
                if isinstance(node, ast.Name) and node.id in renames:
                    node.id = renames[node.id]
            out.append(f"# from {fn.__module__}.{fn.__name__}\n" + ast.unparse(fdef))
        return out


def _runtime_function(value: Any) -> Optional[tuple[str, str]]:
    """("nn", "logsumexp") for a function defined in a `runtime.<module>`, else None."""
    fn = inspect.unwrap(value) if callable(value) else None
    if not isinstance(fn, types.FunctionType):
        return None
    parts = fn.__module__.split(".")
    if len(parts) != 2 or parts[0] != "runtime" or fn.__qualname__ != fn.__name__:
        return None
    return parts[1], fn.__name__


def _parse_function(fn: types.FunctionType) -> ast.FunctionDef:
    """`fn`'s definition without decorators (`@fused`) and annotations, which name
    things of the runtime package a standalone module does not have."""
    fdef = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    assert isinstance(fdef, ast.FunctionDef)
    fdef.decorator_list = []
    fdef.returns = None
    for node in ast.walk(fdef):
        if isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return fdef


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return out + [a for a in (args.vararg, args.kwarg) if a is not None]


def _free_globals(fdef: ast.FunctionDef) -> list[str]:
    """Names `fdef` reads that it does not bind itself (globals and builtins),
    builtins left out."""
    bound = {a.arg for a in _all_args(fdef.args)}
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda)) and node is not fdef:
            bound |= {a.arg for a in _all_args(node.args)}
            if isinstance(node, ast.FunctionDef):
                bound.add(node.name)
    builtins = set(dir(__builtins__)) if not isinstance(__builtins__, dict) else set(__builtins__)
    seen: list[str] = []
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            if node.id not in builtins and node.id not in seen:
                seen.append(node.id)
    return seen


# --- editing the generated text ---------------------------------------------------------

def _apply_edits(lines: list[str], edits: list[tuple[int, int, int, str]]) -> list[str]:
    """Replace byte spans (ast's col_offset counts UTF-8 bytes) right to left."""
    lines = list(lines)
    for lineno, start, end, text in sorted(edits, key=lambda e: (e[0], -e[1])):
        raw = lines[lineno - 1].encode()
        lines[lineno - 1] = (raw[:start] + text.encode() + raw[end:]).decode()
    return lines


def _append_parameters(lines: list[str], fn: ast.FunctionDef, names: list[str]) -> list[str]:
    """The function's `def` line with `names` appended to its parameters."""
    header = lines[fn.lineno - 1]
    if not header.rstrip().endswith("):"):
        raise UnsupportedError("the generated function's def spans several lines; cannot add parameters")
    fn.args.args.extend(ast.arg(n) for n in names)
    stub = ast.FunctionDef(name=fn.name, args=fn.args, body=[ast.Pass()], decorator_list=[], returns=None)
    stub.lineno = fn.lineno
    indent = header[: len(header) - len(header.lstrip())]
    lines = list(lines)
    lines[fn.lineno - 1] = indent + ast.unparse(stub).splitlines()[0]
    return lines


def _small(value: np.ndarray) -> bool:
    return (value.dtype.kind in "biufc" and value.size <= SMALL
            and (value.dtype.kind not in "fc" or bool(np.isfinite(value).all())))


def _captured_values(compiled: Compiled) -> set[int]:
    """ids of the arrays in the graph that are the caller's own (globals, closures)."""
    return {id(n.params["value"]) for n in compiled.graph.nodes() if n.is_const and n.params.get("captured")}


# --- the docstring -----------------------------------------------------------------------

def _describe(aval: Aval) -> str:
    if aval.dtype == object:
        return "np.random.Generator"
    if aval.weak:
        return {"f": "float", "i": "int", "c": "complex", "b": "bool"}.get(aval.dtype.kind, "number") + f" ({aval})"
    return str(aval) if aval.shape else f"{aval} (0-d array)"


def _where(fun: Any) -> str:
    code = getattr(fun, "__code__", None)
    if code is None:
        return getattr(fun, "__qualname__", repr(fun))
    path = code.co_filename
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:
        pass
    return f"{path}:{code.co_firstlineno}"


def describe(transformed: Transformed) -> str:
    """`value_and_grad(argnums=(0, 1))`, `compile_step with SGD(...)`, `jit`."""
    what = transformed.kind
    argnums = getattr(transformed, "argnums", None)
    if argnums is not None:
        spelled = argnums[0] if getattr(transformed, "single", False) else argnums
        what += f"(argnums={spelled!r}" + (", has_aux=True)" if getattr(transformed, "has_aux", False) else ")")
    if isinstance(transformed, Step):
        what += f" with {transformed.optimizer!r}"
    return what


def _path_text(path: tuple) -> str:
    return "".join(f"[{p!r}]" for p in path)


def _docstring(transformed: Transformed, compiled: Compiled, sig: Signature, parts: Rewritten,
               npz_name: str) -> str:
    fn, constants, captured = parts.fn, parts.constants, parts.captured
    loaded, as_arguments, extra_imports = parts.loaded, parts.as_arguments, parts.extra_imports
    fun = transformed.fun
    name = getattr(fun, "__name__", "fn")
    params = [a.arg for a in fn.args.args][: len(sig.traced)]
    returns = next((ast.unparse(s.value) for s in ast.walk(fn) if isinstance(s, ast.Return) and s.value), "None")
    out = [
        f"{compiled.generated.name}: {describe(transformed)} of {name} ({_where(fun)}),",
        f"generated by adjoint {compiler_version()}. Needs "
        + ("NumPy only." if not extra_imports else "NumPy and: " + "; ".join(extra_imports) + "."),
        "",
    ]
    paths = tree.leaf_paths(tree.unflatten(sig.treedef, list(range(len(sig.leaves)))))
    if isinstance(transformed, Step):
        groups = {0: "params (updated in place)",
                  1: "optimizer state (updated in place; starts as optimizer.init(params): zeros for SGD "
                     "momentum and Adam, Adam's step count t a 0-d float array)",
                  2: "hyperparameters (Python floats; the values below were current when saved)"}
        positional = ["params", "state", "hyper", "structure"] + arg_names(fun, sig.positional_count - 3)[1:]
    else:
        groups = {}
        positional = arg_names(fun, sig.positional_count)
    call_args = ", ".join(params + as_arguments)
    result = "loss" if isinstance(transformed, Step) else "result"
    out.append(f"Call: {result} = {compiled.generated.name}({call_args})")
    out.append(f"Returns: {returns}" + ("; params and optimizer state are written in place" if isinstance(transformed, Step) else ""))
    out.append("")
    out.append("Compiled for (one parameter per array or number; pytrees are flattened):")
    current = None
    for k, (pname, leaf_index) in enumerate(zip(params, sig.traced)):
        path = paths[leaf_index]
        if path[0] == 0:
            argument = path[1]
            label = positional[argument] if argument < len(positional) else f"arg{argument}"
            heading = groups.get(argument, "batch" if isinstance(transformed, Step) else None)
        else:
            argument, label, heading = ("kw", path[1]), path[1], "keyword arguments"
        if heading is not None and heading != current:
            out.append(f"  {heading}:")
            current = heading
        where = f"{label}{_path_text(path[2:])}"
        note = f"  ({where})" if where != pname else ""
        value = sig.leaves[leaf_index]
        if isinstance(transformed, Step) and path[0] == 0 and argument == 2:
            note += f"  = {value!r} when saved"
        out.append(f"    {pname}: {_describe(sig.avals[k])}{note}")
    static = [(paths[i], sig.leaves[i]) for i in range(len(sig.leaves)) if i not in sig.traced]
    static = [(p, v) for p, v in static if not (isinstance(transformed, Step) and p[0] == 0 and p[1] == 3)]
    if static:
        out.append("  static (baked into the code):")
        for path, value in static:
            label = (positional[path[1]] if path[1] < len(positional) else f"arg{path[1]}") if path[0] == 0 else path[1]
            out.append(f"    {label}{_path_text(path[2:])} = {value!r}")
    if constants:
        out.append("")
        out.append("Constants (module globals of the generated code):")
        for cname, value in constants.items():
            origin = "the caller's global or closure array, as it was when saved" if id(value) in captured \
                else "made at compile time"
            how = ("a parameter: pass it last" if cname in as_arguments
                   else f"loaded from {npz_name} beside this file" if cname in loaded else "written below")
            out.append(f"    {cname}: {np.asarray(value).dtype}{list(np.shape(value))}, {origin}; {how}")
    text = "\n".join(out).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{text}\n"""'


INSPECTORS["save"] = save

"""`python -m compiler`: look at what adjoint makes of a function, from the shell.

    python -m compiler show  examples/quiz.py:f --args "2.0, 3.0" --what value_and_grad --argnums 0,1
    python -m compiler graph examples/quiz.py:f --args "2.0, 3.0" --argnums 0,1 -o quiz.svg
    python -m compiler dump  examples/quiz.py:f --args "2.0, 3.0" --argnums 0,1 -o quiz_grad.py

A target is `path.py:function` (the file is imported by path; the function may be a
plain function or an object made by grad, value_and_grad, jit or compile_step, used
as it is unless --what is given). Example inputs come from `--args` (Python literals,
read with ast.literal_eval; lists become NumPy arrays; `name=value` for keyword
arguments) or `--shapes` (`w=f32[64,10] x=f32[32,64] y=i64[32]`: random values with
a fixed seed, normal floats and integers 0 or 1; `params.W1=f64[64,10]` puts W1 in a
dict argument `params`; an entry without `name=` is the next positional argument).

`--what step` compiles a training step (`compile_step`) with the optimizer
`--optimizer "sgd lr=0.1 momentum=0.9"` (a class of runtime.optim, case-insensitive,
and its keyword arguments; default "sgd lr=0.1"); the first argument is the params
dict and the rest the batch, as in `step(params, *batch)`.

Verbs: `show` prints the forward IR (as traced), the optimized IR and the generated
source; `graph` draws the computation graph (`-o x.svg|x.png|x.pdf|x.dot`, DOT text
on stdout without -o; without Graphviz the .dot file is written instead, with a note
on how to install it); `dump` writes a standalone module (NumPy only) and, when
needed, its constants beside it as `<stem>.npz`.

Mistakes (a missing file or function, malformed --args or --shapes, a function that
does not compile) print one line on stderr and exit with status 2.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from compiler.api import Transformed, grad, jit, value_and_grad
from compiler.errors import AdjointError
from compiler.ir import format_graph
from compiler import pictures, standalone
from compiler.step import compile_step
from runtime import optim

WHAT = ("grad", "value_and_grad", "jit", "step")
DTYPES = {
    "f16": "float16", "f32": "float32", "f64": "float64", "bf16": None,
    "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64",
    "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
    "c64": "complex64", "c128": "complex128", "b": "bool", "bool": "bool",
}
_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([0-9,\s]*)\]$")
SEED = 0


class CliError(Exception):
    """A mistake in the command line: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise CliError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("target", help="path.py:function (a plain function, or a grad/jit/compile_step object)")
    inputs = common.add_mutually_exclusive_group()
    inputs.add_argument("--args", help='example arguments as Python literals, e.g. "2.0, 3.0" or "[1.0, 2.0], n=3"')
    inputs.add_argument("--shapes", help='example arguments by dtype[shape], e.g. "w=f32[64,10] x=f32[32,64] y=i64[32]"')
    common.add_argument("--what", choices=WHAT,
                        help="the transformation: grad (default for a plain function), value_and_grad, jit, step")
    common.add_argument("--argnums", default="0", help="differentiated arguments: 0, or 0,1 for a tuple (default 0)")
    common.add_argument("--optimizer", default="sgd lr=0.1",
                        help='for --what step: a runtime.optim class and its arguments, e.g. "adam lr=1e-3" '
                             '(default "sgd lr=0.1")')
    parser = _Parser(prog="python -m compiler", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    show = verbs.add_parser("show", parents=[common], help="print the forward IR, the optimized IR and the source")
    show.add_argument("--source-lines", action="store_true", help="show the user's file:line beside each IR value")
    graph = verbs.add_parser("graph", parents=[common], help="draw the computation graph")
    graph.add_argument("-o", "--output", help="picture file: .svg, .png, .pdf or .dot (default: DOT text on stdout)")
    graph.add_argument("--forward-only", action="store_true", help="draw the traced forward graph only")
    dump = verbs.add_parser("dump", parents=[common], help="write a standalone NumPy module")
    dump.add_argument("-o", "--output", help="the module to write, a .py file (default: print it)")
    dump.add_argument("--constants", choices=standalone.CONSTANTS_MODES, default="npz",
                      help="large constant arrays: saved beside the module as .npz (default), or parameters")
    return parser


# --- the target --------------------------------------------------------------------------

def load_target(spec: str) -> Any:
    """The object named by `path.py:name` (dots in `name` reach attributes)."""
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text or not attr:
        raise CliError(f"target {spec!r} is not of the form path.py:function")
    path = Path(path_text)
    if not path.is_file():
        raise CliError(f"no such file: {path_text}")
    if path.suffix != ".py":
        raise CliError(f"{path_text} is not a Python file (.py)")
    name = "_adjoint_target_" + re.sub(r"\W", "_", path.stem)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"cannot import {path_text}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as when the file runs as a script: its neighbours import
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        raise CliError(f"{path_text}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # the user's module failed to import
        raise CliError(f"importing {path_text} failed: {type(err).__name__}: {_one_line(err)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CliError(f"{path_text} has no {attr!r}" + _suggest(module, part))
        obj = getattr(obj, part)
    if not callable(obj):
        raise CliError(f"{path_text}:{attr} is a {type(obj).__name__}, not a function")
    return obj


def _suggest(module: Any, name: str) -> str:
    functions = sorted(k for k, v in vars(module).items()
                       if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
                       or isinstance(v, Transformed))
    return f"; its functions: {', '.join(functions)}" if functions else ""


def parse_argnums(text: str) -> Any:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(re.fullmatch(r"-?\d+", p) for p in parts):
        raise CliError(f"--argnums {text!r}: expected an int such as 0, or ints such as 0,1")
    if len(parts) == 1 and "," not in text:
        return int(parts[0])
    return tuple(int(p) for p in parts)


def parse_optimizer(text: str) -> Any:
    words = text.split()
    if not words:
        raise CliError("--optimizer is empty; e.g. --optimizer \"sgd lr=0.1\"")
    classes = {name.lower(): cls for name, cls in vars(optim).items()
               if isinstance(cls, type) and issubclass(cls, optim.Optimizer) and cls is not optim.Optimizer}
    cls = classes.get(words[0].lower())
    if cls is None:
        raise CliError(f"--optimizer: unknown optimizer {words[0]!r}; one of {', '.join(sorted(classes))}")
    kwargs = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--optimizer: expected name=value, got {word!r}")
        kwargs[key] = _literal(value, f"--optimizer {key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise CliError(f"--optimizer: {_one_line(err)}") from None


def make_transformed(obj: Any, what: Optional[str], argnums: Any, optimizer: str) -> Transformed:
    if isinstance(obj, Transformed) and what is None:
        return obj
    fun = obj.fun if isinstance(obj, Transformed) else obj
    what = what or "grad"
    if what == "grad":
        return grad(fun, argnums=argnums)
    if what == "value_and_grad":
        return value_and_grad(fun, argnums=argnums)
    if what == "jit":
        return jit(fun)
    return compile_step(fun, parse_optimizer(optimizer))


# --- example inputs ---------------------------------------------------------------------------

def _literal(text: str, what: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CliError(f"{what}: {text!r} is not a Python literal") from None


def _arrays(value: Any, what: str) -> Any:
    """Lists become NumPy arrays; dicts and tuples are walked; numbers stay numbers."""
    if isinstance(value, list):
        try:
            array = np.array(value)
        except ValueError as err:
            raise CliError(f"{what}: {_one_line(err)}") from None
        if array.dtype == object or array.dtype.kind in "US":
            raise CliError(f"{what}: the list {value!r} is not a rectangular array of numbers")
        return array
    if isinstance(value, tuple):
        return tuple(_arrays(v, what) for v in value)
    if isinstance(value, dict):
        return {k: _arrays(v, what) for k, v in value.items()}
    return value


def parse_args_text(text: str) -> tuple[tuple, dict]:
    """`--args "2.0, [1.0, 2.0], n=3"` -> ((2.0, array([1., 2.])), {"n": 3})."""
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise CliError(f"--args {text!r}: not a comma-separated list of Python literals") from None
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args) or \
            any(k.arg is None for k in call.keywords):
        raise CliError(f"--args {text!r}: not a comma-separated list of Python literals")
    args, kwargs = [], {}
    for k, node in enumerate(call.args):
        args.append(_arrays(_literal_node(node, f"--args argument {k}"), f"--args argument {k}"))
    for keyword in call.keywords:
        kwargs[keyword.arg] = _arrays(_literal_node(keyword.value, f"--args {keyword.arg}"), f"--args {keyword.arg}")
    return tuple(args), kwargs


def _literal_node(node: ast.expr, what: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CliError(f"{what}: {ast.unparse(node)!r} is not a Python literal") from None


def random_array(spec: str, rng: np.random.Generator) -> np.ndarray:
    """`f32[3,4]` -> a float32 array of standard normals; ints are 0 or 1."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise CliError(f"--shapes: {spec!r} is not dtype[shape], e.g. f32[64,10] or i64[32] or f64[]")
    code, dims = match.groups()
    name = DTYPES.get(code.lower(), code)
    try:
        dtype = np.dtype(name) if name else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise CliError(f"--shapes: unknown dtype {code!r} in {spec!r}; use f32, f64, i32, i64, u8, b, c128, ...")
    shape = tuple(int(d) for d in dims.replace(" ", "").split(",") if d)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, size=shape).astype(dtype)


def parse_shapes(text: str, fun: Callable) -> tuple[tuple, dict]:
    """`--shapes "w=f32[64,10] x=f32[32,64]"` -> arguments of `fun`, by parameter name."""
    rng = np.random.default_rng(SEED)
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for token in text.split():
        name, sep, spec = token.rpartition("=")
        value = random_array(spec, rng)
        if not sep:
            if named:
                raise CliError(f"--shapes: positional {token!r} after named entries")
            positional.append(value)
            continue
        path = name.split(".")
        if not all(p.isidentifier() for p in path):
            raise CliError(f"--shapes: {name!r} is not a parameter name (or name.key for a dict argument)")
        slot = named
        for key in path[:-1]:
            slot = slot.setdefault(key, {})
            if not isinstance(slot, dict):
                raise CliError(f"--shapes: {name!r} puts a key into an array")
        if path[-1] in slot:
            raise CliError(f"--shapes: {name!r} is given twice")
        slot[path[-1]] = value
    try:
        parameters = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    ordered = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    known = {p.name for p in parameters if p.kind != p.VAR_POSITIONAL}
    for name in named:
        if name not in known and not accepts_any:
            raise CliError(f"--shapes: {_name(fun)} has no parameter {name!r}; its parameters: "
                           + ", ".join(p.name for p in parameters))
    args = list(positional)
    rest = ordered[len(positional):]
    for k, p in enumerate(rest):
        if p.name in named:
            args.append(named.pop(p.name))
        elif p.default is p.empty:
            raise CliError(f"--shapes: no shape for {_name(fun)}'s parameter {p.name!r}")
        elif any(q.name in named for q in rest[k + 1:]):
            args.append(p.default)
        else:
            break
    return tuple(args), named


def example_inputs(options: argparse.Namespace, fun: Callable) -> tuple[tuple, dict]:
    if options.args is not None:
        return parse_args_text(options.args)
    if options.shapes is not None:
        return parse_shapes(options.shapes, fun)
    try:
        needed = [p for p in inspect.signature(fun).parameters.values()
                  if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):
        needed = []
    if needed:
        raise CliError(f"{_name(fun)} takes {', '.join(p.name for p in needed)}: give example inputs with "
                       "--args \"...\" or --shapes \"name=f64[3] ...\"")
    return (), {}


def _name(fun: Callable) -> str:
    return getattr(fun, "__name__", "the function")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


# --- the verbs -------------------------------------------------------------------------------

def show(transformed: Transformed, args: tuple, kwargs: dict, source_lines: bool, out) -> None:
    compiled, sig = standalone.compiled_for(transformed, args, kwargs)
    fun = transformed.fun
    where = standalone._where(fun)
    forward = standalone.forward_graph(transformed, sig)
    for_text = ", ".join(f"{n}: {a}" for n, a in zip(sig.names, sig.avals))
    out.write(f"=== forward IR: {_name(fun)} ({where}) for {for_text} ===\n")
    out.write(format_graph(forward, source_lines=source_lines) + "\n\n")
    out.write(f"=== optimized IR: {standalone.describe(transformed)} of {_name(fun)} ===\n")
    out.write(format_graph(compiled.graph, source_lines=source_lines) + "\n\n")
    out.write(f"=== generated source: {compiled.generated.name} ===\n")
    out.write(compiled.generated.source)


def graph(transformed: Transformed, args: tuple, kwargs: dict, output: Optional[str], forward_only: bool,
          out, err) -> None:
    picture = pictures.picture(transformed, *args, forward_only=forward_only, **kwargs)
    if output is None:
        out.write(picture.dot)
        return
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in pictures.RENDERED and suffix not in pictures.TEXT:
        raise CliError(f"-o {output}: use a .svg, .png, .pdf or .dot file")
    try:
        picture.save(path)
    except pictures.GraphvizMissing:
        dot_path = path.with_suffix(".dot")
        picture.save(dot_path)
        err.write(f"Graphviz's dot program was not found: wrote {dot_path} instead of {path}; "
                  f"{pictures.INSTALL_GRAPHVIZ}\n")
        return
    err.write(f"wrote {path}\n")


def dump(transformed: Transformed, args: tuple, kwargs: dict, output: Optional[str], constants: str, out, err) -> None:
    if output is None:
        module = standalone.build(transformed, *args, constants=constants, **kwargs)
        if module.arrays:
            raise CliError("this module loads large constant arrays from an .npz file: give -o FILE.py, "
                           "or --constants arguments")
        out.write(module.source)
        return
    if not output.endswith(".py"):
        raise CliError(f"-o {output}: a standalone module is a .py file")
    path = standalone.save(transformed, output, *args, constants=constants, **kwargs)
    npz = path.with_suffix(".npz")
    err.write(f"wrote {path}" + (f" and {npz}" if npz.exists() else "") + "\n")


def main(argv: Optional[Sequence[str]] = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        options = build_parser().parse_args(argv)
        obj = load_target(options.target)
        argnums = parse_argnums(options.argnums)
        transformed = make_transformed(obj, options.what, argnums, options.optimizer)
        args, kwargs = example_inputs(options, transformed.fun)
        if options.verb == "show":
            show(transformed, args, kwargs, options.source_lines, out)
        elif options.verb == "graph":
            graph(transformed, args, kwargs, options.output, options.forward_only, out, err)
        else:
            dump(transformed, args, kwargs, options.output, options.constants, out, err)
    except CliError as error:
        err.write(f"python -m compiler: error: {error}\n")
        return 2
    except AdjointError as error:
        err.write(f"python -m compiler: error: {type(error).__name__}: {_one_line(error)}\n")
        return 2
    except Exception as error:  # raised by the user's function while it was traced
        err.write(f"python -m compiler: error: {type(error).__name__}: {_one_line(error)}\n")
        return 2
    return 0

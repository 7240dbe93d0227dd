"""The errors a tracer raises when code needs a value it does not have yet.

They are phrased in the user's terms: the user's line, the user's name for the value
(`if positive:` -> `positive`), or the one operation that made it (`x > 0`), and what
to write instead.
"""
from __future__ import annotations

import ast
import re
from types import FrameType
from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import TracingError, source_line, user_frame, where
from compiler.ir import Aval, Graph
from compiler.primitives import registry

# Names the values a user frame's variables hold (the active trace's harvester).
Namer = Callable[[FrameType], None]

# Advice a higher module registers for values refused inside a library the user's
# line called (compiler.numpy_functions.scipy_functions: scipy.stats.norm.logpdf):
# advisor(user frame, traced value or None) -> (what was needed, advice), or None
# when it does not recognise the call.
Advisor = Callable[[Optional[FrameType], Any], Optional[tuple[str, str]]]
ADVISORS: list[Advisor] = []

# Finders a higher module registers for the NumPy array a user's line indexes with a
# traced value (compiler.numpy_dispatch: `a[i]` with `a` a NumPy array):
# finder(user frame, traced value) -> the array, or None.
IndexedArrayFinder = Callable[[Optional[FrameType], Any], Optional[np.ndarray]]
INDEXED_ARRAY_FINDERS: list[IndexedArrayFinder] = []


def indexed_array(frame: Optional[FrameType], value: Any) -> Optional[np.ndarray]:
    """The NumPy array the user's line indexes with traced `value`, if that is what
    asked for its concrete value."""
    for finder in INDEXED_ARRAY_FINDERS:
        found = finder(frame, value)
        if found is not None:
            return found
    return None


def _advised(frame: Optional[FrameType], value: Any) -> Optional[tuple[str, str]]:
    for advisor in ADVISORS:
        found = advisor(frame, value)
        if found is not None:
            return found
    return None


def concretization_error(graph: Graph, i: int, aval: Aval, what: str, advice: str,
                         namer: Optional[Namer] = None, frame: Optional[FrameType] = None) -> TracingError:
    """`file.py:LINE: `<line>` needs <what>, but `<value>` is traced ... <advice>`."""
    frame = frame or _user_frame_named(namer)
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame else ""
    expr = describe(graph, i, frame)
    subject = f"`{expr}`" if expr else f"a {aval} value"
    return TracingError(
        f"{where(frame)}: `{text}` needs {what}, but {subject} is traced: its value is only known "
        f"when the compiled function runs. {advice}"
    )


def truth_value_error(graph: Graph, i: int, aval: Aval, namer: Optional[Namer] = None) -> TracingError:
    """`if` / `while` on a traced value: suggest np.where or a static loop."""
    frame = _user_frame_named(namer)
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame else ""
    builtin = re.search(r"\b(max|min)\(", text)
    if builtin and not re.match(r"(el)?if\b|while\b", text):
        np_fn = {"max": "np.maximum", "min": "np.minimum"}[builtin.group(1)]
        advice = f"Python's {builtin.group(1)}() compares values; use {np_fn}(a, b) on traced arrays instead."
        return concretization_error(graph, i, aval, "a concrete truth value", advice, frame=frame)
    cond = _condition_text(text) or describe(graph, i, frame) or "condition"
    if re.match(r"while\b", text):
        advice = (
            "A loop whose trip count depends on traced data cannot be compiled: loop over a static "
            f"range (a Python int), and select values with np.where({cond}, ..., ...) inside it."
        )
    else:
        advice = (
            f"Use np.where({cond}, ..., ...) instead for a data-dependent choice, "
            "or pass the flag as a static Python bool."
        )
    return concretization_error(graph, i, aval, "a concrete truth value", advice, frame=frame)


def _user_frame_named(namer: Optional[Namer]) -> Optional[FrameType]:
    """The user's frame, after naming the values its variables hold, so that an error
    can call a value by the user's name (`positive = x > 0; if positive:`)."""
    frame = user_frame()
    if namer is not None and frame is not None:
        namer(frame)
    return frame


def better_advice(frame: Optional[FrameType], advice: str) -> str:
    """Advice for what the user's line actually does, where the generic one would
    mislead: `math.exp(x)` and `np.array([a, b])` on traced values, or a library
    function that needs concrete values."""
    found = _advised(frame, None)
    if found is not None:
        return found[1]
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame else ""
    call = re.search(r"\bmath\.(\w+)\(", text)
    if call:
        return f"Use np.{call.group(1)} instead of math.{call.group(1)}: the math module needs Python floats."
    if re.search(r"(?<![\w.])(?:np\.|numpy\.)?(array|asarray)\(\s*[\[(]", text):
        return ("Build arrays from traced values with np.stack([...]) or np.concatenate, or call np.array([...]) "
                "through the numpy module (a name bound by `from numpy import array` cannot be traced).")
    return advice


def _local_name(frame: Optional[FrameType], graph: Graph, i: int) -> str:
    """The name a variable of `frame` gives node `i`, if any."""
    if frame is None:
        return ""
    for var, value in frame.f_locals.items():
        if getattr(value, "graph", None) is graph and getattr(value, "id", None) == i and var.isidentifier():
            return var
    return ""


def describe(graph: Graph, i: int, frame: Optional[FrameType] = None) -> str:
    """How the user would spell node `i` on the line at `frame`: the variable of that
    frame holding it, its recorded name, or one operation on named values and Python
    scalars (`x > 0`); "" when none applies."""
    local = _local_name(frame, graph, i)
    if local:
        return local
    node = graph.node(i)
    if node.name:
        return node.name
    if not node.is_call or registry.find(node.op) is None:
        return ""
    prim = registry.get(node.op)
    operands = []
    for j in node.inputs:
        operand = graph.node(j)
        name = _local_name(frame, graph, j) or operand.name
        if name and name.isidentifier():
            operands.append(ast.Name(name, ast.Load()))
        elif operand.is_const and operand.aval.weak:
            operands.append(ast.Constant(operand.params["value"]))
        else:
            return ""
    if prim.emit is None:
        return ""
    try:
        return ast.unparse(prim.emit(*operands, **node.params))
    except (TypeError, ValueError, KeyError):  # cannot print with these operands: say less
        return ""


def _condition_text(line: str) -> str:
    """The condition of an `if`/`elif`/`while` source line, if it is one."""
    match = re.match(r"(?:el)?if\s+(.*):$|while\s+(.*):$", line)
    if not match:
        return ""
    return (match.group(1) or match.group(2) or "").strip()


def array_advice(frame: Optional[FrameType], value: Any) -> tuple[str, str]:
    """What NumPy wanted a concrete array for on the user's line (traced `value` met
    `__array__`), and the rewrite that traces instead: a NumPy array assigned into,
    np.array of a list, or np.asarray / np.array of a traced array; or what an
    advisor says for a library function the line called (scipy.stats.norm.logpdf)."""
    found = _advised(frame, value)
    if found is not None:
        return found
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame is not None else ""
    store = re.match(r"([A-Za-z_]\w*)\s*\[.*\]\s*=(?!=)", text)
    target = frame.f_locals.get(store.group(1)) if store else None
    if isinstance(target, np.ndarray):
        return _into_numpy_array(frame, store.group(1), target, value)
    call = re.search(r"(?<![\w.])(?:np\.|numpy\.)?(array|asarray|asanyarray)\(", text)
    if call is None:
        return "a concrete array", "Use the traced value directly in NumPy operations."
    return _conversion_advice(call.group(1), text[call.end():])

def _conversion_advice(fn: str, rest: str) -> tuple[str, str]:
    """`np.<fn>(` followed by `rest` of the line: spell it without np.<fn>."""
    arg = _first_argument(rest)
    if arg.startswith("["):
        return "a concrete array (np.asarray / np.array of a list)", (
            f"NumPy builds arrays from lists itself, so it cannot trace them: write `{_stacked(arg)}` instead."
        )
    dtype = re.match(r"[^)]*\bdtype=([\w.]+)", rest)
    if dtype:
        instead = f"{arg}.astype({dtype.group(1)})"
    else:
        instead = f"{arg}.copy()" if fn == "array" else arg
    return "a concrete array (np.asarray / np.array)", f"A traced array needs no np.{fn}(): write `{instead}` instead."

def _into_numpy_array(frame: FrameType, name: str, target: np.ndarray, value: Any) -> tuple[str, str]:
    """`y[i] = x` with y a NumPy array: create y from a traced value instead."""
    traced = [var for var, held in frame.f_locals.items() if getattr(held, "graph", None) is value.graph]
    like = next((var for var in traced if frame.f_locals[var] is value), traced[0] if traced else "x")
    dtype = "" if target.dtype == np.float64 else f", dtype=np.{target.dtype.name}"
    return f"a concrete array to copy into the NumPy array `{name}`", (
        f"Create `{name}` from a traced value so that writes into it are traced: "
        f"`{name} = np.zeros({target.shape}{dtype}, like={like})` (np.ones, np.full and np.empty "
        f"take like= too, and np.zeros_like({like}) makes an array of {like}'s shape and dtype)."
    )

def _first_argument(rest: str) -> str:
    """The source of the first argument of a call, from the text after its `(`."""
    depth = 0
    for end, char in enumerate(rest):
        if char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        elif char in ",)" and not depth:
            return rest[:end].strip()
    return rest.strip()

def _stacked(literal: str) -> str:
    """A (nested) list display of traced values spelled with np.stack:
    `[[a, 1.0], [b, c]]` -> `np.stack([np.stack([a, 1.0]), np.stack([b, c])])`."""
    out, lists, previous = [], [], ""
    for char in literal:
        if char == "[":
            is_list = previous in ("", "(", "[", ",", "=")  # not a subscript like x[0]
            lists.append(is_list)
            out.append("np.stack([" if is_list else "[")
        elif char == "]":
            out.append("])" if lists.pop() else "]")
        else:
            out.append(char)
        if not char.isspace():
            previous = char
    return "".join(out)

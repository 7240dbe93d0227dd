"""Global and closure arrays indexed with traced values.

`a[i]` with `i` traced and `a` a NumPy array runs NumPy's own indexing, which no
protocol lets a traced index take part in (NumPy asks it for a concrete array).
When such an `a` is an array the traced function read from its globals or closure
(`init_smoke` in a fluid simulation, passed on to the function that indexes it),
the trace restarts with the names holding it bound to a traced value of the array,
read live when the compiled code runs, exactly as captured arrays always are: the
function runs as a copy whose globals (a copy of its module's dict) or closure
cells hold the traced value. Guards still watch the module's own names.
"""
from __future__ import annotations

import dis
from types import CellType, FunctionType
from typing import Any, Callable, Optional

import numpy as np

from compiler.guards import Guards
from compiler.ir import Aval
from compiler.tracing import Tracer, current

Capture = tuple[str, str]  # ("global" or "cell", name)


def holders(fun: Callable, array: np.ndarray) -> Optional[frozenset[Capture]]:
    """The global and closure names of `fun` that hold `array`, or None when none
    does or `fun` cannot run as a copy (not a Python function, or one that assigns
    globals, which would go to the copy)."""
    code = getattr(fun, "__code__", None)
    if not isinstance(fun, FunctionType) or code is None:
        return None
    if any(ins.opname in ("STORE_GLOBAL", "DELETE_GLOBAL") for ins in dis.get_instructions(code)):
        return None
    found = {("global", name) for name in code.co_names if fun.__globals__.get(name) is array}
    for name, cell in zip(code.co_freevars, fun.__closure__ or ()):
        try:
            if cell.cell_contents is array:
                found.add(("cell", name))
        except ValueError:  # an empty cell
            continue
    return frozenset(found) or None


def with_traced_captures(fun: FunctionType, captures: frozenset[Capture], guards: Guards) -> Callable:
    """A copy of `fun` whose captured names hold traced values of their arrays (in the
    active trace)."""
    graph = current().graph
    namespace = dict(fun.__globals__)
    cells = dict(zip(fun.__code__.co_freevars, fun.__closure__ or ()))
    traced: dict[int, Tracer] = {}

    def traced_value(array: np.ndarray, name: str) -> Tracer:
        if id(array) not in traced:
            node = graph.add_const(array, Aval(array.shape, array.dtype), captured=True, name=name)
            traced[id(array)] = Tracer(graph, node)
        return traced[id(array)]

    for kind, name in sorted(captures):
        if kind == "global":
            guards.watch_global(fun.__globals__, name)
            namespace[name] = traced_value(fun.__globals__[name], name)
        else:
            cells[name] = CellType(traced_value(cells[name].cell_contents, name))
    guards.alias(namespace, fun.__globals__)
    closure = tuple(cells[name] for name in fun.__code__.co_freevars) or None
    copy = FunctionType(fun.__code__, namespace, fun.__name__, fun.__defaults__, closure)
    copy.__kwdefaults__, copy.__qualname__ = fun.__kwdefaults__, fun.__qualname__
    return copy


def traced_callee(fun: Callable, captures: frozenset[Capture], guards: Guards) -> Callable[..., Any]:
    """What a trace calls: `fun`, or its copy with traced captures."""
    return with_traced_captures(fun, captures, guards) if captures else fun

"""Tracing: run a user's NumPy function on `Tracer`s and record a `Graph`.

A `Tracer` stands for an array whose value is known only at run time. It implements
Python's operators and NumPy's `__array_ufunc__` (NEP 13) / `__array_function__`
(NEP 18) protocols, so users write ordinary `import numpy as np` code. Every
operation goes through `bind`, which applies the primitive's shape rule and appends a
node. While tracing user code, `bind` also records the user's file and line and the
user's variable names (read from the frames' locals; outer frames win).
"""
from __future__ import annotations

import io
import linecache
import sys
import tokenize
from types import FrameType
from typing import Any, Callable, Optional

import numpy as np

from compiler.errors import (
    AdjointError,
    ShapeError,
    UnsizedError,
    UnsupportedAttributeError,
    UnsupportedError,
    is_internal,
    is_library,
    user_frame,
    where,
)
from compiler.concretization import concretization_error, truth_value_error
from compiler.ir import Aval, Graph, Loc
from compiler.primitives import registry


class TraceContext:
    """The graph being built and how new nodes get their location and names.

    In user mode (tracing user code) locations come from the stack; in rule mode
    (a transform applying VJP rules) every node gets a fixed `loc` and `grad_of`.
    """

    def __init__(self, graph: Graph, root: Optional[FrameType] = None):
        self.graph = graph
        self.root = root
        self.fixed: Optional[dict[str, Any]] = None
        self.name_depth: dict[int, int] = {}

    def meta(self) -> dict[str, Any]:
        if self.fixed is not None:
            return dict(self.fixed)
        frame = sys._getframe(2)
        while frame is not None and is_internal(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None or frame is self.root:
            return {}
        self.harvest_names(frame)
        return {"loc": frame_loc(self.user_caller(frame))}

    def user_caller(self, frame: FrameType) -> FrameType:
        """The user's own frame for `frame`: work inside a library function (runtime.nn)
        is located at the user's line that called it."""
        outer = frame
        while outer is not None and outer is not self.root and is_library(outer.f_code.co_filename):
            outer = outer.f_back
        return frame if outer is None or outer is self.root else outer

    def harvest_names(self, frame: Optional[FrameType]) -> None:
        """Name unnamed nodes after the user variables that hold them."""
        chain = []
        while frame is not None and frame is not self.root:
            if not is_internal(frame.f_code.co_filename):
                chain.append(frame)
            frame = frame.f_back
        for depth, f in enumerate(reversed(chain)):
            for var, value in f.f_locals.items():
                if isinstance(value, Tracer) and value.graph is self.graph and var.isidentifier():
                    node = self.graph.node(value.id)
                    if node.op in ("input", "const") or node.grad_of is not None or self.name_depth.get(value.id, 1 << 30) <= depth:
                        continue
                    node.name = var
                    self.name_depth[value.id] = depth


_CONTEXTS: list[TraceContext] = []


def current() -> TraceContext:
    return _CONTEXTS[-1]


def frame_loc(frame: FrameType) -> Loc:
    filename, line = frame.f_code.co_filename, frame.f_lineno
    return Loc(filename, line, source_line(filename, line))


def source_line(filename: str, line: int) -> str:
    """The code on one line of a user's file, without indentation or a trailing comment."""
    text = linecache.getline(filename, line).strip()
    if "#" not in text:
        return text
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                return text[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # a fragment of a longer statement
        pass
    return text


class Tracer:
    """A traced array: a node id in a graph, with the node's static shape and dtype."""

    __array_priority__ = 1000
    __slots__ = ("graph", "id")

    def __init__(self, graph: Graph, node_id: int):
        self.graph = graph
        self.id = node_id

    # static facts
    @property
    def aval(self) -> Aval:
        return self.graph.node(self.id).aval

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)

    def __len__(self) -> int:
        if not self.shape:
            raise UnsizedError(f"{where(user_frame())}: len() of a 0-d traced {self.aval} value; it has no length.")
        return self.shape[0]

    def __getattr__(self, name: str):
        # Only reached for attributes a Tracer lacks. Protocol probes (`__array_interface__`
        # and friends) must stay plain AttributeErrors so NumPy and hasattr() work.
        if name.startswith("__"):
            raise AttributeError(name)
        if hasattr(np.ndarray, name):
            hint = f"np.ndarray.{name} is not supported on traced arrays; use a supported NumPy function instead."
        else:
            hint = f"NumPy arrays have no attribute {name!r} either."
        raise UnsupportedAttributeError(f"{where(user_frame())}: `.{name}` on a traced {self.aval} value: {hint}")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Tracer({self.aval}, node {self.id})"

    # NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from compiler.numpy_dispatch import apply_ufunc

        return apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from compiler.numpy_dispatch import apply_function

        return apply_function(func, args, kwargs)

    @staticmethod
    def __adjoint_fused__(name: str, impl: Callable, args: tuple, kwargs: dict):
        from compiler.numpy_dispatch import apply_fused

        return apply_fused(name, impl, args, kwargs)

    # operators and array methods, all routed through NumPy's protocols
    def __getitem__(self, index):
        from compiler.numpy_dispatch import getitem

        return getitem(self, index)

    T = property(lambda self: np.transpose(self))
    mT = property(lambda self: np.swapaxes(self, -1, -2))
    sum = lambda self, *args, **kwargs: np.sum(self, *args, **kwargs)  # noqa: E731
    mean = lambda self, *args, **kwargs: np.mean(self, *args, **kwargs)  # noqa: E731
    max = lambda self, *args, **kwargs: np.max(self, *args, **kwargs)  # noqa: E731
    min = lambda self, *args, **kwargs: np.min(self, *args, **kwargs)  # noqa: E731
    ravel = lambda self: np.ravel(self)  # noqa: E731
    flatten = ravel  # a copy in NumPy; traced values are never written, so a view is the same
    squeeze = lambda self, axis=None: np.squeeze(self, axis)  # noqa: E731
    swapaxes = lambda self, a, b: np.swapaxes(self, a, b)  # noqa: E731
    dot = lambda self, other: np.dot(self, other)  # noqa: E731
    clip = lambda self, a_min=None, a_max=None: np.clip(self, a_min, a_max)  # noqa: E731

    def reshape(self, *shape, order="C"):
        return np.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        return np.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def astype(self, dtype, copy=True):
        if np.dtype(dtype) == self.dtype:
            return self
        return bind("astype", self, dtype=np.dtype(dtype))

    def copy(self):
        return bind("copy", self)

    # values the tracer does not have
    def _concrete(self, what: str, advice: str) -> None:
        raise concretization_error(self.graph, self.id, self.aval, what, advice) from None

    def __bool__(self):
        raise truth_value_error(self.graph, self.id, self.aval) from None

    def __float__(self):
        self._concrete("a concrete float", "Keep it an array and use NumPy operations on it instead of float().")

    def __int__(self):
        self._concrete("a concrete int", "Pass sizes and counts as static Python ints instead of traced values.")

    def __index__(self):
        self._concrete("a concrete index", "Index with static Python ints, slices or integer arrays instead.")

    def __array__(self, dtype=None, copy=None):
        self._concrete(
            "a concrete array (np.asarray / np.array)",
            "Use the traced value directly in NumPy operations; np.asarray(x) is not needed.",
        )

    def __setitem__(self, index, value):
        raise UnsupportedError(
            f"{where(user_frame())}: assigning into a traced array (`x[i] = v`) is not supported. "
            "Build the new value with np.where, np.concatenate or arithmetic instead."
        )

    def tolist(self):
        self._concrete("a concrete list", "Keep it an array and use NumPy operations on it.")

    def item(self, *args):
        self._concrete("a concrete scalar (.item())", "Keep it an array and use NumPy operations on it.")


def lift(value: Any, graph: Graph) -> int:
    """The node id for an operand: a tracer's node, or a new constant node."""
    if isinstance(value, Tracer):
        if value.graph is not graph:
            raise UnsupportedError(
                f"{where(user_frame())}: a traced value from an enclosing transformation was captured "
                "by a closure; pass it to the inner function as an argument instead."
            )
        return value.id
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        dtype = np.result_type(type(value))
        return graph.add("const", (), {"value": value}, Aval((), dtype, weak=True))
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.array(value, copy=True)
        if array.dtype == object:
            raise UnsupportedError(f"{where(user_frame())}: object arrays cannot be traced; use numeric arrays.")
        return graph.add("const", (), {"value": array}, Aval(array.shape, array.dtype))
    raise UnsupportedError(
        f"{where(user_frame())}: cannot use a {type(value).__name__} as an array operand; "
        "use NumPy arrays, Python numbers or traced values."
    )


def bind(op: str, *operands: Any, **params: Any) -> Tracer:
    """Apply primitive `op` to operands (tracers or constants): append its node."""
    ctx = current()
    graph = ctx.graph
    ids = [lift(x, graph) for x in operands]
    prim = registry.get(op)
    try:
        aval = prim.abstract(*(graph.node(i).aval for i in ids), **params)
    except ShapeError as err:
        raise ShapeError(f"{where(user_frame())}: {err}") from None
    return Tracer(graph, graph.add(op, ids, params, aval, **ctx.meta()))


def trace(fn: Callable, avals: list[Aval], arg_names: list[str], call: Callable) -> tuple[Graph, Any]:
    """Trace `call(tracers)` (which calls `fn`) into a new graph.

    Returns the graph (inputs set, outputs not yet) and whatever `call` returned,
    with tracers still in it; the caller decides which values are outputs.
    """
    graph = Graph()
    code = getattr(fn, "__code__", None)
    def_loc = Loc(code.co_filename, code.co_firstlineno, source_line(code.co_filename, code.co_firstlineno)) if code else None
    tracers = []
    for aval, name in zip(avals, arg_names):
        i = graph.add("input", (), {"index": len(graph.inputs)}, aval, name=name, loc=def_loc)
        graph.inputs.append(i)
        tracers.append(Tracer(graph, i))
    return graph, extend(graph, lambda: call(tracers))


def extend(graph: Graph, call: Callable[[], Any]) -> Any:
    """Run `call()` tracing user code into an existing `graph` (locations and
    names from the user's frames); returns what `call` returned."""
    ctx = TraceContext(graph, root=sys._getframe())
    _CONTEXTS.append(ctx)
    previous = sys.getprofile()
    sys.setprofile(_name_returns(ctx))
    try:
        return call()
    except AdjointError as err:
        raise err.with_traceback(None) from None
    finally:
        sys.setprofile(previous)
        _CONTEXTS.pop()


def _name_returns(ctx: TraceContext):
    """A profile hook that harvests names from user frames as they return."""

    def hook(frame, event, arg):
        if event == "return" and not is_internal(frame.f_code.co_filename):
            ctx.harvest_names(frame)

    return hook


class rule_mode:
    """Context for transforms: nodes built by rules get a fixed location."""

    def __init__(self, graph: Graph):
        self.ctx = TraceContext(graph)
        self.ctx.fixed = {}

    def at(self, **meta: Any) -> None:
        self.ctx.fixed = meta

    def __enter__(self) -> "rule_mode":
        _CONTEXTS.append(self.ctx)
        return self

    def __exit__(self, *exc) -> None:
        _CONTEXTS.pop()


def _binary(ufunc):
    return (lambda self, other: ufunc(self, other)), (lambda self, other: ufunc(other, self))


for _names, _ufunc in [
    (("__add__", "__radd__"), np.add), (("__sub__", "__rsub__"), np.subtract),
    (("__mul__", "__rmul__"), np.multiply), (("__truediv__", "__rtruediv__"), np.divide),
    (("__pow__", "__rpow__"), np.power), (("__matmul__", "__rmatmul__"), np.matmul),
    (("__and__", "__rand__"), np.bitwise_and), (("__or__", "__ror__"), np.bitwise_or),
]:
    for _name, _method in zip(_names, _binary(_ufunc)):
        setattr(Tracer, _name, _method)
for _name, _ufunc in [("__gt__", np.greater), ("__ge__", np.greater_equal), ("__lt__", np.less),
                      ("__le__", np.less_equal), ("__eq__", np.equal), ("__ne__", np.not_equal)]:
    setattr(Tracer, _name, _binary(_ufunc)[0])
Tracer.__hash__ = object.__hash__
Tracer.__neg__ = lambda self: np.negative(self)
Tracer.__pos__ = lambda self: self
Tracer.__abs__ = lambda self: np.absolute(self)
Tracer.__invert__ = lambda self: np.invert(self)

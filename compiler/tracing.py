"""Tracing: run a user's NumPy function on `Tracer`s and record a `Graph`.

A `Tracer` stands for an array whose value is known only at run time. It implements
Python's operators and NumPy's `__array_ufunc__` (NEP 13) / `__array_function__`
(NEP 18) protocols, so users write ordinary `import numpy as np` code. Every
operation goes through `bind`, which applies the primitive's shape rule and appends a
node. While tracing user code, `bind` also records the user's file and line and the
user's variable names (read from the frames' locals; outer frames win).
"""
from __future__ import annotations

import contextlib
import operator
import re
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import numpy as np

from compiler.errors import (
    AdjointError,
    ShapeError,
    TracingError,
    UnsizedError,
    UnsupportedAttributeError,
    UnsupportedError,
    api_boundary,
    is_internal,
    is_library,
    source_line,
    user_frame,
    where,
)
from compiler.concretization import array_advice, better_advice, concretization_error, indexed_array, truth_value_error
from compiler.evaluation import Evaluator
from compiler.primitives.control import number_tolerance
from compiler.guards import Guards, RandomStates
from compiler.ir import Aval, Graph, Loc
from compiler.validation import abstract


class TraceContext:
    """The graph being built and how new nodes get their location and names.

    In user mode (tracing user code) locations come from the stack; in rule mode
    (a transform applying VJP rules) every node gets a fixed `loc` and `grad_of`.
    """

    def __init__(self, graph: Graph, root: Optional[FrameType] = None, guards: Optional[Guards] = None,
                 random_states: Optional[RandomStates] = None, evaluator: Optional[Evaluator] = None):
        self.graph = graph
        self.root = root
        self.guards = guards
        self.random_states = random_states
        self.evaluator = evaluator  # the call's values, for decisions (None: an abstract trace)
        self.fixed: Optional[dict[str, Any]] = None
        self.name_depth: dict[int, int] = {}
        self.frame_depth: dict[FrameType, int] = {}
        self.lost: Optional[BaseException] = None  # an interrupt raised where Python could not propagate it

    def meta(self) -> dict[str, Any]:
        if self.fixed is not None:
            return dict(self.fixed)
        frame = sys._getframe(2)
        while frame is not None and is_internal(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None or frame is self.root:
            return {}
        self.harvest_names(frame)
        caller = self.user_caller(frame)
        loc = frame_loc(frame)
        return {"loc": loc if caller is frame else loc._replace(via=frame_loc(caller))}

    def user_caller(self, frame: FrameType) -> FrameType:
        """The user's own frame for `frame`: work inside a library function (runtime.nn)
        is located at the user's line that called it."""
        outer = frame
        while outer is not None and outer is not self.root and is_library(outer.f_code.co_filename):
            outer = outer.f_back
        return frame if outer is None or outer is self.root else outer

    def depth(self, frame: FrameType) -> int:
        """How many traced user frames lie between `frame` and the trace's root
        (amortized O(1): each frame's depth is computed once and cached). A user
        frame seen for the first time has the globals it reads guarded."""
        path = []
        while frame is not None and frame is not self.root and frame not in self.frame_depth:
            path.append(frame)
            frame = frame.f_back
        depth = self.frame_depth.get(frame, -1) if frame is not None else -1
        for f in reversed(path):
            if not is_internal(f.f_code.co_filename):
                depth += 1
                if self.guards is not None and not is_library(f.f_code.co_filename):
                    self.guards.watch_frame(f)
            self.frame_depth[f] = depth
        return depth

    def name_hint(self, value: "Tracer", name: str) -> None:
        frame = sys._getframe(1)
        while frame is not None and is_internal(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None or frame is self.root or self.fixed is not None:
            return
        node = self.graph.node(value.id)
        depth = self.depth(frame) - 0.5  # between the hinting frame and its caller
        if node.is_call and node.grad_of is None and self.name_depth.get(value.id, 1 << 30) > depth:
            node.name = name
            self.name_depth[value.id] = depth

    def harvest_names(self, frame: FrameType) -> None:
        """Name unnamed nodes after the variables of `frame` that hold them; a name
        from an outer frame wins over one from a helper it called."""
        if frame is self.root or is_internal(frame.f_code.co_filename):
            return
        depth = self.depth(frame)
        for var, value in frame.f_locals.items():
            if isinstance(value, Tracer) and value.graph is self.graph and var.isidentifier():
                node = self.graph.node(value.id)
                if not node.is_call or node.grad_of is not None or self.name_depth.get(value.id, 1 << 30) <= depth:
                    continue
                node.name = var
                self.name_depth[value.id] = depth


class _ContextStack(threading.local):
    """The active trace contexts, innermost last; one stack per thread, so threads
    compile concurrently without seeing each other's traces. Also the thread's
    compiles under `keeping_interrupts`, and the interrupt one of them lost."""

    def __init__(self) -> None:
        self.contexts: list[TraceContext] = []
        self.keeping = 0
        self.lost: Optional[BaseException] = None
        self.handling = False


_STACK = _ContextStack()


def is_active(graph: Graph) -> bool:
    """Whether `graph` belongs to one of this thread's active traces. A loop, not
    `any(<generator>)`: a generator abandoned half-way is closed by the garbage
    collector, and an interrupt that lands while it closes is lost (see
    `_watch_user_frames`)."""
    for ctx in _STACK.contexts:
        if ctx.graph is graph:
            return True
    return False


def current() -> TraceContext:
    """The innermost active trace context of this thread."""
    return _STACK.contexts[-1]


def current_guards() -> Optional[Guards]:
    """The guards of this thread's innermost active trace, if it records any."""
    contexts = _STACK.contexts
    return contexts[-1].guards if contexts else None


class StaticArgument(BaseException):
    """The trace needs the concrete value of these traced int arguments (graph input
    positions): the caller makes them static and traces again. A BaseException, so
    that an `except Exception:` in the user's function does not swallow it."""

    def __init__(self, inputs: tuple[int, ...]):
        super().__init__(inputs)
        self.inputs = inputs


class TracedCapture(BaseException):
    """The trace indexed `array`, a NumPy array it read from a global or closure, with
    traced indices, which NumPy's own indexing cannot take: the caller traces again
    with the names that hold it bound to a traced value of it, or raises `error`.
    A BaseException, like StaticArgument."""

    def __init__(self, array: np.ndarray, error: AdjointError):
        super().__init__(error)
        self.array, self.error = array, error


def _restart_if_indexing(tracer: "Tracer", error: AdjointError) -> None:
    """Raise TracedCapture when `tracer` was asked for its value to index a NumPy array."""
    array = indexed_array(user_frame(), tracer)
    if array is not None:
        raise TracedCapture(array, error)


_UNDECIDED = object()
_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "bool": bool, "float": float, "int": int, "index": operator.index, "complex": complex,
}


def concrete_value(tracer: "Tracer") -> Any:
    """The value `tracer` has in the call its trace was made for; LookupError when its
    trace is abstract (no call's values at hand)."""
    ctx = _context_of(tracer.graph)
    if ctx is None or ctx.evaluator is None:
        raise LookupError("an abstract trace")
    return ctx.evaluator.value(tracer.id)


def _context_of(graph: Graph) -> Optional[TraceContext]:
    for ctx in reversed(_STACK.contexts):
        if ctx.graph is graph:
            return ctx
    return None


def _decide(tracer: "Tracer", kind: str) -> Any:
    """`tracer` converted by `kind` (`bool(x)` for an `if`), computed from the call's
    values where its trace has them, with a guard at the user's line so that the
    compiled code checks the decision; _UNDECIDED where the trace is abstract."""
    if tracer.aval.size != 1:
        return _UNDECIDED  # the truth of an array of several elements is ambiguous (NumPy says so too)
    frame = user_frame()
    if frame is not None and re.search(r"\bmath\.\w+\(", source_line(frame.f_code.co_filename, frame.f_lineno)):
        return _UNDECIDED  # math.exp(x) would silently cut the derivative: say to use np.exp
    try:
        value = concrete_value(tracer)
    except LookupError:  # an abstract trace, or one inside such a trace
        return _UNDECIDED
    decided = _CONVERSIONS[kind](value if kind != "index" or np.ndim(value) else np.asarray(value)[()])
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame is not None else ""
    params = {"expected": decided, "kind": kind, "where": f"{where(frame)}: {text}"}
    if kind in ("float", "complex"):
        params["rtol"] = number_tolerance(tracer.dtype)
    tracer.graph.add("guard", (tracer.id,), params, Aval((), np.dtype(bool)),
                     loc=frame_loc(frame) if frame is not None else None)
    return decided


def _needs_static(graph: Graph, i: int) -> None:
    """Raise StaticArgument when node `i` is computed from Python int arguments alone
    (and the leaked-tracer error when `graph` is no active trace's)."""
    if not is_active(graph):
        raise leaked_error()
    sources = [graph.node(j) for j in graph.ancestors([i])]
    inputs = [node for node in sources if node.is_input]
    if inputs and all(node.aval.weak and node.dtype.kind in "iu" for node in inputs):
        raise StaticArgument(tuple(sorted(node.params["index"] for node in inputs)))


def _namer() -> Optional[Callable[[FrameType], None]]:
    contexts = _STACK.contexts
    return contexts[-1].harvest_names if contexts and contexts[-1].fixed is None else None


def frame_loc(frame: FrameType) -> Loc:
    filename, line = frame.f_code.co_filename, frame.f_lineno
    return Loc(filename, line, source_line(filename, line))


class NumpyProtocols:
    """How tracers answer NumPy: `ufunc` serves `__array_ufunc__`, `operator` Python's
    operators (which keep Python numbers Python numbers), `function` `__array_function__`, `getitem` and `setitem` indexing and assignment, `fused`
    runtime.fused functions.
    The dispatch modules above this one (compiler.numpy_dispatch,
    compiler.fused_dispatch) install them when imported, as primitive families fill
    the registry."""

    ufunc: Callable
    operator: Callable
    function: Callable
    nested: Callable  # np.array / np.asarray of (nested) lists and tuples holding tracers
    getitem: Callable
    setitem: Callable
    fused: Callable


PROTOCOLS = NumpyProtocols()


_set_slot = object.__setattr__


class Tracer:
    """A traced array: a node id in a graph, with the node's static shape and dtype."""

    __array_priority__ = 1000
    __slots__ = ("graph", "id")

    def __init__(self, graph: Graph, node_id: int):
        _set_slot(self, "graph", graph)  # past __setattr__, which refuses the user's attribute writes
        _set_slot(self, "id", node_id)

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
            raise UnsizedError(f"{where(user_frame())}: len() of a 0-d traced {self.dtype} value; it has no length.")
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
        if not self.shape:
            raise UnsizedError(f"{where(user_frame())}: iteration over a 0-d traced {self.dtype} value; it has no elements to loop over.")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self) -> str:
        return f"Tracer({self.aval}, node {self.id})"

    # NumPy protocols, served by the dispatch modules installed in PROTOCOLS
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return PROTOCOLS.ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return PROTOCOLS.function(func, args, kwargs)

    @staticmethod
    def __adjoint_fused__(name: str, impl: Callable, args: tuple, kwargs: dict):
        return PROTOCOLS.fused(name, impl, args, kwargs)

    def __adjoint_name__(self, name: str) -> None:
        """A library's name hint (runtime.fused.named): it beats the names of the
        library frame's own variables, not the names the user's frames give."""
        current().name_hint(self, name)

    def apply(self, op: str, *operands: Any, **params: Any) -> "Tracer":
        """Primitive `op` applied to this value and `operands`: how derivative rules
        build IR for primitives NumPy has no spelling of."""
        return bind(op, self, *operands, **params)

    # operators and array methods, all routed through NumPy's protocols
    def __getitem__(self, index):
        return PROTOCOLS.getitem(self, index)

    T = property(lambda self: np.transpose(self))
    real = property(lambda self: np.real(self))
    imag = property(lambda self: np.imag(self))
    mT = property(lambda self: np.swapaxes(self, -1, -2))
    ravel = lambda self: np.ravel(self)  # noqa: E731
    flatten = lambda self: np.ravel(self).same_value()  # noqa: E731  (a copy in NumPy)
    squeeze = lambda self, axis=None: np.squeeze(self, axis)  # noqa: E731
    swapaxes = lambda self, a, b: np.swapaxes(self, a, b)  # noqa: E731
    dot = lambda self, other: np.dot(self, other)  # noqa: E731
    clip = lambda self, a_min=None, a_max=None: np.clip(self, a_min, a_max)  # noqa: E731

    def reshape(self, *shape, order="C"):
        return np.reshape(self, shape[0] if len(shape) == 1 else shape, order=order)

    def transpose(self, *axes):
        return np.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def astype(self, dtype, copy=True):
        if np.dtype(dtype).kind not in "biufc":
            raise UnsupportedError(
                f"{where(user_frame())}: .astype({np.dtype(dtype)}) on a traced value: only boolean and "
                "numeric dtypes can be traced; use numeric arrays."
            )
        if np.dtype(dtype) == self.dtype:
            return self.same_value()
        return bind("astype", self, dtype=np.dtype(dtype))

    def same_value(self) -> "Tracer":
        """A new tracer for this value: what NumPy's copies that change nothing
        return, so that a later `x[i] = v` (which rebinds x) does not change it."""
        return Tracer(self.graph, self.id)

    def sort(self, axis=-1, kind=None, order=None, *, stable=None):
        """ndarray.sort sorts in place: this tracer now stands for the sorted value."""
        self.id = np.sort(self, axis=axis, kind=kind, order=order, stable=stable).id

    def copy(self):
        return bind("copy", self)

    # values the tracer does not have
    def _concrete(self, what: str, advice: str, kind: str = "") -> Any:
        """The value a conversion (`float(x)`, `int(x)`, an index) asks for: taken,
        and guarded, where the trace has the call's values; else the error."""
        _needs_static(self.graph, self.id)
        advice = better_advice(user_frame(), advice)
        error = concretization_error(self.graph, self.id, self.aval, what, advice, _namer())
        _restart_if_indexing(self, error)
        if kind:
            decided = _decide(self, kind)
            if decided is not _UNDECIDED:
                return decided
        raise error from None

    def __bool__(self):
        _needs_static(self.graph, self.id)
        decided = _decide(self, "bool")
        if decided is not _UNDECIDED:
            return decided
        raise truth_value_error(self.graph, self.id, self.aval, _namer()) from None

    def __float__(self):
        return self._concrete("a concrete float", "Keep it an array and use NumPy operations on it instead of float().",
                              "float")

    def __int__(self):
        return self._concrete("a concrete int", "Pass sizes and counts as static Python ints instead of traced values.",
                              "int")

    def __index__(self):
        return self._concrete("a concrete index", "Index with static Python ints, slices or integer arrays instead.",
                              "index")

    def __array__(self, dtype=None, copy=None):
        what, advice = array_advice(user_frame(), self)
        _needs_static(self.graph, self.id)
        error = concretization_error(self.graph, self.id, self.aval, what, advice, _namer())
        _restart_if_indexing(self, error)
        raise error from None

    def __format__(self, spec):
        self._concrete("a concrete value to format", "Return the value from the compiled function "
                       "(has_aux=True for extra values) and format it outside.")

    def __setattr__(self, name, value):
        if name in Tracer.__slots__:
            object.__setattr__(self, name, value)
            return
        raise UnsupportedAttributeError(
            f"{where(user_frame())}: cannot set `.{name}` of a traced value; build a new value instead "
            "(for a new shape, `x = x.reshape(...)`)."
        )

    def __setitem__(self, index, value):
        """`x[index] = value` as a functional update: this tracer is rebound to the
        new value, so every name bound to it sees the write (see
        compiler/numpy_functions/creation.py for the views it refuses)."""
        self.id = PROTOCOLS.setitem(self, index, value).id

    def tolist(self):
        self._concrete("a concrete list", "Keep it an array and use NumPy operations on it.")

    def item(self, *args):
        value = self if not args else self[args[0] if len(args) == 1 else args]
        if value.ndim and value.aval.size == 1:
            value = np.reshape(value, ())  # .item() of a one-element array, as NumPy's
        kind = {"b": "bool", "c": "complex", "f": "float"}.get(value.dtype.kind, "int")
        return value._concrete("a concrete scalar (.item())", "Keep it an array and use NumPy operations on it.", kind)


def _size(size: Any) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(d) for d in size)


class TracedGenerator:
    """A `np.random.Generator` argument while tracing: each draw becomes a `random`
    node, run by the generated code on every call with the caller's Generator."""

    __slots__ = ("graph", "id")

    def __init__(self, graph: Graph, node_id: int):
        _set_slot(self, "graph", graph)  # past __setattr__, which refuses the user's attribute writes
        _set_slot(self, "id", node_id)

    def _draw(self, method: str, size: Any, dtype: Any, args: tuple = ()) -> Tracer:
        return bind("random", self, method=method, size=_size(size), dtype=np.dtype(dtype), args=args)

    def random(self, size=None, dtype=np.float64, out=None):
        _no_out(out)
        return self._draw("random", size, dtype)

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        _no_out(out)
        return self._draw("standard_normal", size, dtype)

    def normal(self, loc=0.0, scale=1.0, size=None):
        """`loc + scale * standard_normal(...)`: the numbers Generator.normal draws."""
        shape = _size(size) if size is not None else tuple(np.broadcast_shapes(np.shape(loc), np.shape(scale)))
        return loc + scale * self._draw("standard_normal", shape, np.float64)

    def uniform(self, low=0.0, high=1.0, size=None):
        """`low + (high - low) * random(...)`: the numbers Generator.uniform draws."""
        shape = _size(size) if size is not None else tuple(np.broadcast_shapes(np.shape(low), np.shape(high)))
        return low + (high - low) * self._draw("random", shape, np.float64)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        bounds = [b for b in (low, high) if b is not None]
        if not all(isinstance(b, (int, np.integer)) for b in bounds):
            raise UnsupportedError(f"{where(user_frame())}: rng.integers needs static int bounds.")
        args = tuple(int(b) for b in bounds) + ((True,) if endpoint else ())
        return self._draw("integers", size, dtype, args)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnsupportedAttributeError(
            f"{where(user_frame())}: Generator.{name} is not supported on a traced Generator; use "
            "rng.random, rng.uniform, rng.normal, rng.standard_normal or rng.integers "
            "(e.g. dropout: `rng.random(x.shape) < keep`)."
        )


def _no_out(out: Any) -> None:
    if out is not None:
        raise UnsupportedError(f"{where(user_frame())}: out= is not supported on a traced Generator.")


_DRAWS = ("random", "rand", "randn", "normal", "uniform", "standard_normal", "integers", "randint",
          "choice", "permutation", "shuffle", "binomial", "poisson", "exponential")


def _random_state_error(frame: Optional[FrameType], fallback: str = "<unknown>") -> UnsupportedError:
    text = source_line(frame.f_code.co_filename, frame.f_lineno) if frame is not None else ""
    calls = [c for c in re.findall(r"((?:np\.random|\w+)\.(\w+))\(", text) if c[1] in _DRAWS]
    what = f"`{calls[0][0]}(...)` draws" if calls else "a random number was drawn"
    return UnsupportedError(
        f"{where(frame) if frame is not None else fallback}: {what} from NumPy's global random state "
        "or from a Generator held in a global or closure at trace time: the draw would happen once, "
        "when compiling, and be frozen into the compiled function (dropout that never changes). "
        "Instead, pass a np.random.Generator as an argument (`def f(x, rng): ... rng.normal(size=x.shape)`, "
        "called as `f(x, np.random.default_rng(0))`); its draws run on every call."
    )


def lift(value: Any, graph: Graph) -> int:
    """The node id for an operand: a tracer's node, or a new constant node."""
    if isinstance(value, (Tracer, TracedGenerator)):
        if value.graph is not graph:
            raise _foreign_tracer_error(value)
        return value.id
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, np.generic):
        return graph.add_scalar(value)
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype == object:
            raise UnsupportedError(f"{where(user_frame())}: object arrays cannot be traced; use numeric arrays.")
        _check_random_states()
        name = _captured_name(value)
        if name is not None:  # the user's global or closure array: read live at call time
            return graph.add_const(value, Aval(value.shape, value.dtype), captured=True, name=name)
        array = np.array(value, copy=True)  # a value of this trace: frozen as it is now
        return graph.add_const(array, Aval(array.shape, array.dtype))
    raise UnsupportedError(
        f"{where(user_frame())}: cannot use a {type(value).__name__} as an array operand; "
        "use NumPy arrays, Python numbers or traced values."
    )


def _check_random_states() -> None:
    contexts = _STACK.contexts
    states = contexts[-1].random_states if contexts else None
    if states is not None and states.changed():
        raise _random_state_error(user_frame())


def _captured_name(value: Any) -> Optional[str]:
    contexts = _STACK.contexts
    guards = contexts[-1].guards if contexts else None
    return guards.captured_name(value) if guards is not None and isinstance(value, np.ndarray) else None


def _foreign_tracer_error(value: Tracer) -> UnsupportedError:
    """A tracer used where its own trace is not the active one."""
    if is_active(value.graph):
        return UnsupportedError(
            f"{where(user_frame())}: a traced value from an enclosing transformation was captured "
            "by a closure; pass it to the inner function as an argument instead."
        )
    return leaked_error()


def leaked_error() -> UnsupportedError:
    return UnsupportedError(
        f"{where(user_frame())}: this value is a tracer that escaped from a function while it was "
        "being compiled (stored in a global, a list or an attribute); it has no value outside that "
        "trace. Return the value from the compiled function instead of storing it."
    )


def bind(op: str, *operands: Any, **params: Any) -> Tracer:
    """Apply primitive `op` to operands (tracers or constants): append its node."""
    if not _STACK.contexts:
        raise leaked_error()
    ctx = _STACK.contexts[-1]
    graph = ctx.graph
    meta = ctx.meta()  # first: names the frame's values and guards its globals before constants are lifted
    # (a tracer of this graph inline: bind runs once per operation traced, 10^5 times in a big program)
    ids = [x.id if type(x) is Tracer and x.graph is graph else lift(x, graph) for x in operands]
    data = graph.dag._node
    try:
        aval = abstract(op, tuple(data[i]["node"].aval for i in ids), params)
    except ShapeError as err:
        raise ShapeError(f"{where(user_frame())}: {err}") from None
    return Tracer(graph, graph.add(op, ids, params, aval, **meta))


def trace(fn: Callable, avals: list[Aval], arg_names: list[str], call: Callable,
          guards: Optional[Guards] = None, values: Optional[list[Callable[[], Any]]] = None) -> tuple[Graph, Any]:
    """Trace `call(tracers)` (which calls `fn`) into a new graph.

    Returns the graph (inputs set, outputs not yet) and whatever `call` returned,
    with tracers still in it; the caller decides which values are outputs. The
    globals and closure values the trace reads are recorded in `guards`.
    """
    random_states = None
    if guards is not None:
        guards.watch_function(fn)
        random_states = RandomStates(fn)
    graph = Graph()
    code = getattr(fn, "__code__", None)
    def_loc = Loc(code.co_filename, code.co_firstlineno, source_line(code.co_filename, code.co_firstlineno)) if code else None
    tracers = []
    for aval, name in zip(avals, arg_names):
        i = graph.add_input(aval, name=name, loc=def_loc)
        tracers.append(TracedGenerator(graph, i) if aval.dtype == object else Tracer(graph, i))
    evaluator = Evaluator(graph, values) if values is not None else None
    result = extend(graph, lambda: call(tracers), guards, random_states, evaluator)
    if random_states is not None and random_states.changed():
        raise _random_state_error(None, str(def_loc) if def_loc else "<unknown>")
    return graph, result


def extend(graph: Graph, call: Callable[[], Any], guards: Optional[Guards] = None,
           random_states: Optional[RandomStates] = None, evaluator: Optional[Evaluator] = None) -> Any:
    """Run `call()` tracing user code into an existing `graph` (locations and
    names from the user's frames); returns what `call` returned. With an
    `evaluator`, decisions on traced values are taken (and guarded)."""
    ctx = TraceContext(graph, root=sys._getframe(), guards=guards, random_states=random_states, evaluator=evaluator)
    _STACK.contexts.append(ctx)
    restore = _watch_user_frames(ctx)
    try:
        with keeping_interrupts(), _array_constructors_dispatching():
            return call()
    except AdjointError as err:
        raise err.with_traceback(None) from None
    except RecursionError as err:
        raise _recursion_error(err, ctx) from None
    finally:
        restore()
        _STACK.contexts.pop()


_CONSTRUCTORS = {name: getattr(np, name) for name in ("array", "asarray")}
_CONSTRUCTORS_LOCK = threading.Lock()
_CONSTRUCTORS_USERS = [0]  # traces running in this process


def holds_tracers(obj: Any) -> bool:
    """Whether `obj` is a tracer, or a (nested) list or tuple holding one."""
    if isinstance(obj, Tracer):
        return True
    if isinstance(obj, (list, tuple)):
        for item in obj:  # a loop, not any(<generator>): see is_active
            if holds_tracers(item):
                return True
    return False


def _dispatching_constructor(name: str) -> Callable:
    original = _CONSTRUCTORS[name]

    def construct(*args: Any, **kwargs: Any) -> Any:
        obj = args[0] if args else kwargs.get("object", kwargs.get("a"))  # np.array(object=...), np.asarray(a=...)
        if _STACK.contexts and isinstance(obj, (list, tuple)) and holds_tracers(obj):
            rest = {k: v for k, v in kwargs.items() if k not in ("object", "a")}
            return PROTOCOLS.nested(obj, *args[1:], **rest)
        return original(*args, **kwargs)

    construct.__name__, construct.__qualname__, construct.__doc__ = name, name, original.__doc__
    construct.__wrapped__ = original
    return construct


_DISPATCHING = {name: _dispatching_constructor(name) for name in _CONSTRUCTORS}


@contextlib.contextmanager
def _array_constructors_dispatching() -> Iterator[None]:
    """While any thread traces, `np.array` and `np.asarray` (the attributes of the
    numpy module, which `np.array([...])` looks up at each call) build traced arrays
    from lists and tuples that hold tracers, which NumPy's own constructors cannot
    (they dispatch on nothing but `like=`); every other call goes to NumPy's own
    function unchanged, in every thread. The attributes are NumPy's again once the
    last trace ends. NumPy's own modules call these constructors through names bound
    at import, so they never see the change."""
    with _CONSTRUCTORS_LOCK:
        if _CONSTRUCTORS_USERS[0] == 0:
            for name, construct in _DISPATCHING.items():
                setattr(np, name, construct)
        _CONSTRUCTORS_USERS[0] += 1
    try:
        yield
    finally:
        with _CONSTRUCTORS_LOCK:
            _CONSTRUCTORS_USERS[0] -= 1
            if _CONSTRUCTORS_USERS[0] == 0:
                for name, original in _CONSTRUCTORS.items():
                    setattr(np, name, original)


@contextlib.contextmanager
def keeping_interrupts() -> Iterator[None]:
    """Run a compile (or a trace) so that no interrupt is lost: a Ctrl-C, or the
    exception an alarm's signal handler raises, that lands while Python finalizes an
    object (closes an abandoned generator, runs a weakref callback, runs the
    name-harvesting profile hook for either) cannot propagate there; Python prints
    it as "Exception ignored" and the compile would go on. It is kept instead, and
    raised by the next profile event that can raise it, or when this block ends, in
    place of whatever the block did since."""
    if not getattr(sys.unraisablehook, "keeps_lost_interrupts", False):
        sys.unraisablehook = _keeping_lost_interrupts(sys.unraisablehook)
    _STACK.keeping += 1
    try:
        yield
    except BaseException as err:
        lost = _take_lost()
        if lost is not None and lost is not err:
            raise lost.with_traceback(None) from None
        raise
    finally:
        _STACK.keeping -= 1
    lost = _take_lost()
    if lost is not None:
        raise lost.with_traceback(None) from None


def _take_lost() -> Optional[BaseException]:
    lost, _STACK.lost = _STACK.lost, None
    for ctx in _STACK.contexts:
        ctx.lost = None
    return lost


def _keeping_lost_interrupts(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    """A sys.unraisablehook that keeps, for the running compile to raise, an interrupt
    lost in a finalizer: a KeyboardInterrupt or SystemExit, or an exception a Python
    signal handler raised. Everything else goes to the hook that was installed."""

    def keep(unraisable: Any) -> None:
        exc, stack = unraisable.exc_value, _STACK
        if stack.keeping and exc is not None and (exc is stack.lost or _is_interrupt(exc, unraisable.exc_traceback)):
            if stack.lost is None:
                stack.handling = True  # the profile hook must not raise it inside this hook
                stack.lost = exc
                for ctx in stack.contexts:
                    ctx.lost = exc
                stack.handling = False
            return
        previous(unraisable)

    keep.keeps_lost_interrupts = True
    return keep


def _is_interrupt(exc: BaseException, tb: Any) -> bool:
    """A KeyboardInterrupt or SystemExit, or an exception raised by a signal handler
    (a frame of its code is on the traceback)."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return True
    handlers = set()
    for number in signal.valid_signals():
        handler = signal.getsignal(number)
        if callable(handler) and hasattr(handler, "__code__"):
            handlers.add(handler.__code__)
    while tb is not None:
        if tb.tb_frame.f_code in handlers:
            return True
        tb = tb.tb_next
    return False


def _restore_profile(previous: Any) -> None:
    """Put back the profile function that ran before the trace: a profiler object
    (cProfile) cannot be passed to sys.setprofile, it is re-enabled instead."""
    if previous is None or callable(previous):
        sys.setprofile(previous)
    else:
        sys.setprofile(None)
        previous.enable()


def _recursion_error(err: RecursionError, ctx: TraceContext) -> TracingError:
    """Unbounded (or too deep) recursion in the traced code, at the innermost line of
    the user's code that the trace went through."""
    tb, frame = err.__traceback__, None
    while tb is not None:
        if tb.tb_frame in ctx.frame_depth and not is_library(tb.tb_frame.f_code.co_filename):
            frame = tb.tb_frame
        tb = tb.tb_next
    return TracingError(
        f"{where(frame)}: recursion deeper than Python's limit ({sys.getrecursionlimit()} frames) while "
        "tracing. Traced recursion unrolls at compile time: make sure it stops on a static "
        "condition (a Python int), or write it as a loop over a static range."
    )


def _watch_user_frames(ctx: TraceContext) -> Callable[[], None]:
    """Install a profile hook that names the values a traced user frame's variables
    hold as it returns (frames the trace never entered, such as a garbage
    collector's callbacks, are left alone); returns what puts the previous one back.
    (A trace hook, which sees no C calls, measured slower: Python 3.11 sends every
    Python call to it, and a local hook per user frame costs more.)"""

    def hook(frame, event, arg):
        if ctx.lost is not None and not _STACK.handling:
            raise ctx.lost  # a lost interrupt (see keeping_interrupts), at the first event that can raise it
        if event == "return" and frame in ctx.frame_depth:
            ctx.harvest_names(frame)

    hook.harvests_names = True
    previous = sys.getprofile()
    sys.setprofile(hook)
    return lambda: _restore_profile(previous)


class rule_mode:
    """Context for transforms: nodes built by rules get a fixed location."""

    def __init__(self, graph: Graph):
        self.ctx = TraceContext(graph)
        self.ctx.fixed = {}

    def at(self, **meta: Any) -> None:
        self.ctx.fixed = meta

    def __enter__(self) -> "rule_mode":
        _STACK.contexts.append(self.ctx)
        return self

    def __exit__(self, *exc) -> None:
        _STACK.contexts.pop()


def _binary(ufunc):
    return ((lambda self, other: PROTOCOLS.operator(ufunc, (self, other))),
            (lambda self, other: PROTOCOLS.operator(ufunc, (other, self))))


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
for _names, _ufunc in [(("__mod__", "__rmod__"), np.remainder), (("__floordiv__", "__rfloordiv__"), np.floor_divide),
                       (("__divmod__", "__rdivmod__"), np.divmod)]:
    for _name, _method in zip(_names, _binary(_ufunc)):
        setattr(Tracer, _name, _method)
# array methods that are NumPy functions of the array (`x.sum(axis=0)` is `np.sum(x, axis=0)`)
for _name in ("sum", "mean", "max", "min", "prod", "var", "std", "cumsum", "cumprod", "ptp", "argmax", "argmin",
              "argsort", "any", "all", "trace", "diagonal", "conj", "conjugate", "round", "repeat", "take", "nonzero"):
    setattr(Tracer, _name, (lambda fn: lambda self, *args, **kwargs: fn(self, *args, **kwargs))(getattr(np, _name)))
Tracer.__hash__ = object.__hash__
Tracer.__neg__ = lambda self: PROTOCOLS.operator(np.negative, (self,))
Tracer.__pos__ = lambda self: self.same_value()
Tracer.__abs__ = lambda self: PROTOCOLS.operator(np.absolute, (self,))
Tracer.__invert__ = lambda self: PROTOCOLS.operator(np.invert, (self,))


def _live(method: Callable) -> Callable:
    """`method`, refusing a tracer whose trace has ended (one that leaked out). It
    runs with the name-harvesting profile hook off: the hook is for the user's
    frames, and the compiler's own calls under one operation (dozens, C functions
    included) would otherwise each call it, doubling the cost of a trace."""

    def entry(self, *args, **kwargs):
        try:
            if not is_active(self.graph):
                raise leaked_error()
            hook = sys.getprofile()
            if not getattr(hook, "harvests_names", False):  # none, or a profiler's: left as it is
                return method(self, *args, **kwargs)
            sys.setprofile(None)
            try:
                return method(self, *args, **kwargs)
            finally:
                sys.setprofile(hook)
        except AdjointError as err:  # as api_boundary: the user sees their own line, not these frames
            raise err.with_traceback(None) from None

    entry.__name__, entry.__doc__ = method.__name__, method.__doc__
    return entry


def _as_entry_points() -> None:
    """Every way user code reaches a tracer (operators, NumPy protocols, methods) is a
    boundary: an error it raises shows the user's line, not the compiler's frames; and
    a tracer used after its trace ended is refused."""
    for name, member in list(vars(Tracer).items()):
        if name in ("__init__", "__repr__", "__hash__", "__setattr__"):
            continue
        if isinstance(member, staticmethod):
            setattr(Tracer, name, staticmethod(api_boundary(member.__func__)))
        elif callable(member) and not isinstance(member, type):
            setattr(Tracer, name, _live(member))
    Tracer.__setattr__ = api_boundary(Tracer.__setattr__)


_as_entry_points()

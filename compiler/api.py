"""The public transformations: `grad`, `value_and_grad`, and their compile cache.

A transformation compiles once per abstract signature (pytree structure, shapes,
dtypes, static values): trace -> reverse -> optimize -> generate. Later calls with
the same signature go straight to the generated NumPy function.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import logging
import operator
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from compiler.codegen import Generated, flat_ids
from compiler.config import cache_size, debug_nans_enabled, explain_retraces_enabled, register_cache
from compiler.errors import (
    AdjointError, GradError, NonFiniteError, TracingError, UnsupportedError, api_boundary, at_user_line, definition_site,
)
from compiler.guards import Check, Guards
from compiler.ir import Graph, Loc
from compiler.naming import sanitize
from compiler.lowering import lower
from compiler.signature import STATIC_TYPES, Signature, check_call, retrace_reason, signature
from compiler.aliasing import aliases_argument
from compiler.captures import Capture, holders, traced_callee
from compiler.tracing import (
    StaticArgument, TracedCapture, Tracer, bind, concrete_value, current_guards, keeping_interrupts, rule_mode, trace,
)
from compiler.transforms.reverse import reverse
from runtime import tree
from runtime.paths import PathMiss

Argnums = Union[int, Sequence[int]]
_LOG = logging.getLogger("adjoint")
# `save` and `graph` are served by compiler.standalone and compiler.pictures (higher in
# the api layer), which register themselves here when imported.
INSPECTORS: dict[str, Callable[..., Any]] = {}


def call_generated(fn: Callable, lock: Any, leaves: list) -> Any:
    """`fn(*leaves)` under `lock` when there is one (one call at a time uses the kept
    arrays), with a debug_nans check's FloatingPointError raised as NonFiniteError."""
    try:
        if lock is None:
            return fn(*leaves)
        with lock:
            return fn(*leaves)
    except FloatingPointError as err:
        raise NonFiniteError(str(err)).with_traceback(None) from None


@dataclass(eq=False)  # compared by identity: a path is found in its signature's list of paths
class Compiled:
    """One signature's generated function and how to rebuild its results."""

    generated: Generated
    graph: Graph
    rebuild: Callable[[Any], Any]
    out_tree: Any = None  # the generated function's result: node ids in nested tuples
    guards: Guards = field(default_factory=Guards)
    check: Check = field(init=False)
    signature: Optional[Signature] = None  # what it was compiled for
    lock: Any = field(default_factory=threading.Lock)  # held while a call uses kept arrays
    # the paths compiled for this signature (decisions on traced values), most recently taken first
    paths: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.check = self.guards.freeze()

    @functools.cached_property
    def has_guards(self) -> bool:
        """Whether its code checks decisions on traced values (one of several paths)."""
        return any(node.op == "guard" for node in self.graph.nodes())

    @property
    def kept_arrays_lock(self) -> Any:
        """The lock a call holds while it uses the kept arrays; None when there are none."""
        return self.lock if self.generated.keeps_arrays else None

    def current(self) -> bool:
        """Whether every global and closure value the trace read is still the same."""
        return not self.check or self.check.holds()

    def inline(self, leaves: list) -> Any:
        """Apply the compiled graph to traced values of an enclosing trace, node by
        node: `grad(grad(f))` is the transform applied to a graph that already holds
        a transform's result, with no generated code run on tracers."""
        outer = current_guards()
        if outer is not None:
            outer.absorb(self.guards)
        env: dict[int, Any] = dict(zip(self.graph.inputs, leaves))
        for node in self.graph.nodes():
            if node.is_const:
                env[node.id] = node.params["value"]
            elif not node.is_input:
                env[node.id] = bind(node.op, *(env[i] for i in node.inputs), **node.params)
                _keep_role(node, env)
        return _map_ids(self.out_tree, env)


def _keep_role(node: Any, env: dict[int, Any]) -> None:
    """The inlined copy of `node` keeps its source line, and its variable name or its
    role as the cotangent or tangent of another inlined value, so that code generated
    around an inlined gradient still reads `h = np.tanh(x @ W1)  # model.py:9`,
    `g_h`, `t_h`."""
    copy = env[node.id].graph.node(env[node.id].id)
    if not copy.is_call:
        return
    if node.loc is not None and copy.loc is not None and copy.grad_of is None:
        copy.loc = node.loc
    if copy.name or copy.cotangent_of is not None or copy.tangent_of is not None:
        return
    role = node.cotangent_of if node.cotangent_of is not None else node.tangent_of
    if node.name:
        copy.name = node.name
    elif role is not None and isinstance(env.get(role), Tracer):
        if node.cotangent_of is not None:
            copy.cotangent_of = env[role].id
        else:
            copy.tangent_of = env[role].id


def _map_ids(out_tree: Any, env: dict[int, Any]) -> Any:
    if isinstance(out_tree, tuple):
        return tuple(_map_ids(t, env) for t in out_tree)
    return env[out_tree]


class Transformed:
    """A function transformed by adjoint; compiles per signature on first call.

    Compiling is locked per transformed function, so threads calling it at once
    compile each signature exactly once. Each function keeps its most recently used
    `config.cache_size()` signatures.
    """

    kind = "transformed"

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.cache: OrderedDict[Any, Compiled] = OrderedDict()
        self.fast: dict[Any, tuple[Compiled, tuple[int, ...]]] = {}
        self.static_ints: dict[Any, frozenset[int]] = {}  # per structure: int leaves that decide the trace
        self.captures: frozenset[Capture] = frozenset()  # global and closure arrays traced (indexed by tracers)
        self.trace_count = 0
        self._lock = threading.RLock()
        register_cache(self)

    def clear(self) -> None:
        """Forget every compiled signature."""
        with self._lock:
            self.cache.clear()
            self.fast = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            compiled, leaves, traced = self._entry(args, kwargs)
            if traced:
                compiled = self._path_of_traced_values(compiled, args, kwargs, leaves)
                return compiled.rebuild(compiled.inline(leaves))
            try:
                return compiled.rebuild(self._run(compiled, leaves))
            except PathMiss as miss:
                compiled, out = self._other_path(compiled, args, kwargs, leaves, miss)
                return compiled.rebuild(out)
        except AdjointError as err:
            raise err.with_traceback(None) from None

    def _other_path(self, missed: Compiled, args: tuple, kwargs: dict, leaves: list,
                    miss: PathMiss) -> tuple[Compiled, Any]:
        """The path these values take (a decision went the other way at `miss`): one
        compiled before, or a new one, traced with these values. The path taken
        becomes the first one tried."""
        found = self._taken_path(missed, args, kwargs, leaves)
        if found is not None:
            return found
        with self._lock:  # another thread may have compiled this path meanwhile: look again, then compile
            found = self._taken_path(missed, args, kwargs, leaves)
            if found is not None:
                return found
            compiled, sig = self._lookup(args, kwargs, new_path=str(miss))
        try:  # the leaves of its own signature: tracing this path may have made an int static
            return compiled, self._run(compiled, [sig.leaves[k] for k in sig.traced])
        except PathMiss as again:
            raise TracingError(
                f"{self._name('')}: the path traced for these values did not hold for them ({again}). "
                "Please report this as a bug, with the function."
            ) from None

    def _taken_path(self, missed: Compiled, args: tuple, kwargs: dict, leaves: list) -> Optional[tuple[Compiled, Any]]:
        """A compiled path of `missed`'s signature whose guards hold for these values,
        and its result; None when none does."""
        for other in list(missed.paths):
            if other is missed or not other.current():
                continue
            try:
                out = self._run(other, leaves)
            except PathMiss:
                continue
            self._prefer(other, args, kwargs)
            return other, out
        return None

    def _path_of_traced_values(self, compiled: Compiled, args: tuple, kwargs: dict, leaves: list) -> Compiled:
        """Called inside an enclosing trace: the path the call's values take, found by
        running the compiled paths on them where the enclosing trace has values (else
        the most recent path: its guards, inlined, are checked where the code runs)."""
        if len(compiled.paths) <= 1 and not compiled.has_guards:
            return compiled
        try:
            values = [concrete_value(leaf) if isinstance(leaf, Tracer) else leaf for leaf in leaves]
        except LookupError:
            return compiled
        for path in compiled.paths:
            try:
                self._run(path, values)
            except PathMiss:
                continue
            return path
        return self._lookup(args, kwargs, new_path="the values of an enclosing trace")[0]

    def _prefer(self, compiled: Compiled, args: tuple, kwargs: dict) -> None:
        """Make `compiled` the first path tried for its signature."""
        with self._lock:
            if compiled in compiled.paths:
                compiled.paths.remove(compiled)
                compiled.paths.insert(0, compiled)
            key = (compiled.signature.key, debug_nans_enabled())
            if key in self.cache:
                self.cache[key] = compiled
            leaves, treedef = tree.flatten((args, dict(sorted(kwargs.items()))))
            fast = _fast_key(treedef, leaves, self.static_ints.get(treedef, frozenset()), debug_nans_enabled())
            if fast is not None:
                self.fast[fast] = (compiled, tuple(compiled.signature.traced))

    def _run(self, compiled: Compiled, leaves: list) -> Any:
        return call_generated(compiled.generated.fn, compiled.kept_arrays_lock, leaves)

    def _entry(self, args: tuple, kwargs: dict) -> tuple[Compiled, list, bool]:
        """The compiled function for these arguments, the leaves it takes, and whether
        any leaf is a tracer of an enclosing transformation.

        A hit in `fast` costs one flatten and a key of shapes and dtypes; only a miss
        computes the full signature (names, static values, errors) and compiles.
        """
        leaves, treedef = tree.flatten((args, dict(sorted(kwargs.items()))))
        key = _fast_key(treedef, leaves, self.static_ints.get(treedef, frozenset()), debug_nans_enabled())
        hit = self.fast.get(key) if key is not None else None
        if hit is None or not hit[0].current():
            compiled, sig = self._lookup(args, kwargs)
            hit = (compiled, tuple(sig.traced))
            if key is not None:
                self.fast[key] = hit
        taken = [leaves[k] for k in hit[1]]
        return hit[0], taken, key is None and any(isinstance(leaf, Tracer) for leaf in taken)

    @api_boundary
    def source(self, *args: Any, **kwargs: Any) -> str:
        """The generated module for this call signature (and, for a function with
        decisions on traced values, the path these values take): NumPy source you
        can save."""
        return self.path_for(args, kwargs)[0].generated.source

    @api_boundary
    def ir(self, *args: Any, **kwargs: Any) -> Graph:
        """The optimized graph the source was generated from."""
        return self.path_for(args, kwargs)[0].graph

    def path_for(self, args: tuple, kwargs: dict) -> tuple[Compiled, Signature]:
        """The compiled path these arguments take (compiled now if none is yet)."""
        compiled, sig = self._lookup(args, kwargs)
        if len(compiled.paths) <= 1 and not compiled.has_guards:
            return compiled, sig
        leaves = [sig.leaves[k] for k in sig.traced]
        try:
            self._run(compiled, leaves)
        except PathMiss as miss:
            compiled = self._other_path(compiled, args, kwargs, leaves, miss)[0]
        return compiled, sig

    @api_boundary
    def save(self, path: Any, *args: Any, constants: str = "npz", **kwargs: Any) -> Any:
        """Write the module compiled for these arguments as a standalone module that
        needs NumPy only (large constants in <stem>.npz beside it, or
        constants="arguments" to make them parameters); returns its path."""
        return INSPECTORS["save"](self, path, *args, constants=constants, **kwargs)

    @api_boundary
    def graph(self, *args: Any, forward_only: bool = False, **kwargs: Any) -> Any:
        """The computation graph for these arguments (inputs, forward, loss, backward),
        drawn like the lecture's; renders inline in Jupyter, `.save("f.svg")`."""
        return INSPECTORS["picture"](self, *args, forward_only=forward_only, **kwargs)

    def _check_call(self, args: tuple, kwargs: dict) -> None:
        check_call(self.fun, args, kwargs)

    def _signature(self, args: tuple, kwargs: dict) -> Signature:
        structure = tree.flatten((args, dict(sorted(kwargs.items()))))[1]
        return signature(self.fun, args, kwargs, self.static_ints.get(structure, frozenset()))

    def _lookup(self, args: tuple, kwargs: dict, new_path: str = "") -> tuple[Compiled, Signature]:
        """The compiled function for this signature; with `new_path` (why), a new path
        of it, traced with these values, kept beside the others."""
        self._check_call(args, kwargs)
        with self._lock:
            while True:
                sig = self._signature(args, kwargs)
                key = (sig.key, debug_nans_enabled())
                compiled = self.cache.get(key)
                if compiled is not None and compiled.current() and not new_path:
                    self.cache.move_to_end(key)
                    return compiled, sig
                try:
                    with _collection_paused(), keeping_interrupts():
                        compiled = self._compile(sig)
                except StaticArgument as needed:
                    self._make_static(sig, needed.inputs)
                    continue  # each restart makes at least one more int static: at most one per int leaf
                except TracedCapture as needed:
                    self._trace_captured(needed)
                    continue  # each restart traces at least one more global or closure name
                if self.trace_count and explain_retraces_enabled():
                    self._explain(sig, stale=self.cache.get(key), path=new_path)
                compiled.signature = sig
                self.trace_count += 1
                previous = self.cache.get(key)
                compiled.paths = previous.paths if new_path and previous is not None and previous.current() else []
                compiled.paths.insert(0, compiled)
                if len(compiled.paths) > MAX_PATHS:
                    dropped = compiled.paths.pop()
                    if explain_retraces_enabled():
                        _LOG.warning("adjoint: %s of %s keeps %d paths per signature: the least recently taken "
                                     "(%s) is dropped and will be traced again if taken", self.kind,
                                     self._name(""), MAX_PATHS, _first_guard(dropped))
                self._store(key, compiled)
                return compiled, sig

    def _explain(self, sig: Signature, stale: Optional["Compiled"], path: str = "") -> None:
        """Log why this call traced again (compiler.explain_retraces)."""
        if path:
            why = f"its values took a path not compiled yet ({path})"
        elif stale is not None:
            why = "a global or closure value it read was rebound"
        else:
            why = retrace_reason(sig, [c.signature for c in self.cache.values()], self.fun)
        where = definition_site(self.fun)
        _LOG.warning("adjoint: %s of %s (%s) traced again (trace %d): %s",
                     self.kind, self._name(""), where, self.trace_count + 1, why)

    def _make_static(self, sig: Signature, inputs: tuple[int, ...]) -> None:
        """Int arguments whose value the trace needed (a range, a shape, an index, an
        `if`) become static for this structure: part of the cache key from now on.

        An int that is itself a value of an enclosing trace (`grad(K)` where K calls
        this function with its own traced `n`) can only become static there: asking
        the enclosing tracer for its value restarts that trace with `n` static (or
        says why it cannot). An int already static means the trace would restart the
        same way forever: that is refused, never looped on."""
        positions = frozenset(sig.traced[k] for k in inputs)
        for position in sorted(positions):
            leaf = sig.leaves[position]
            if isinstance(leaf, Tracer):
                operator.index(leaf)  # raises StaticArgument for the enclosing trace, or its TracingError
        static = self.static_ints.get(sig.treedef, frozenset())
        if positions <= static:
            names = ", ".join(f"`{sig.names[k]}`" for k in inputs)
            raise at_user_line(TracingError, f"{self._name('')} needs the value of {names} to trace, but that "
                               "argument is already static and the trace asked again; please report this as a bug "
                               "(with the function), and pass the value as a static Python int meanwhile.")
        self.static_ints[sig.treedef] = static | positions
        self.fast = {}

    def _trace_captured(self, needed: TracedCapture) -> None:
        """A global or closure array of the function, indexed with traced values, is
        traced from now on (compiler/captures.py); or the trace's error is raised."""
        found = holders(self.fun, needed.array)
        if found is None or found <= self.captures:
            raise needed.error
        self.captures |= found
        self.fast = {}

    def _store(self, key: Any, compiled: Compiled) -> None:
        self.cache[key] = compiled
        if len(self.cache) > cache_size():
            self.cache.popitem(last=False)
            self.fast = {}

    def _trace(self, sig: Signature, guards: Guards) -> tuple[Graph, Any]:
        def call(tracers: list[Tracer]) -> Any:
            args, kwargs = traced_args(sig, tracers)
            return traced_callee(self.fun, self.captures, guards)(*args, **kwargs)

        return checked_paths(trace(self.fun, sig.avals, sig.names, call, guards, values=input_values(sig)))

    def _compile(self, sig: Signature) -> Compiled:
        raise NotImplementedError

    def _name(self, suffix: str) -> str:
        name = getattr(self.fun, "__name__", "fn")
        return sanitize(name if name.isidentifier() else "fn") + suffix

    def __repr__(self) -> str:
        return f"<{self.kind} of {self.fun!r}>"


_GC_LOCK = threading.RLock()  # reentrant: a finalizer or signal handler that compiles while it is held
_GC_PAUSES = [0, False]  # active compiles, whether collection was on before the first


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while compiling: a compile makes
    millions of small objects, and repeated collections rescanning them cost a
    linear factor (15% at 10,000 ops). Collection resumes, if it was on, when the
    last concurrent compile ends; what the compile kept (its graph, its code) is
    first moved to the oldest generation (freeze, then unfreeze: two list splices),
    so that the next young collection does not scan it all at once (0.25 s at
    30,000 primitives). Skipped when the program froze objects itself."""
    with _GC_LOCK:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0 and _GC_PAUSES[1]:
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()


MAX_PATHS = 8  # compiled paths kept per signature (decisions on traced values)


def input_values(sig: Signature) -> list[Callable[[], Any]]:
    """The values of a trace's inputs, as thunks: the call's own, or for a value of an
    enclosing trace, that trace's (computed only if a decision needs it)."""
    return [(lambda leaf=sig.leaves[k]: concrete_value(leaf) if isinstance(leaf, Tracer) else leaf)
            for k in sig.traced]




def _first_guard(compiled: Compiled) -> str:
    return next((node.params["where"] for node in compiled.graph.nodes() if node.op == "guard"), "no decision")


def checked_paths(traced: tuple[Graph, Any]) -> tuple[Graph, Any]:
    """A trace that took decisions (guards) must not also draw random numbers: a call
    that stops at a guard after a draw would have moved the user's generator."""
    graph = traced[0]
    ops = {node.op for node in graph.nodes()}
    if "guard" in ops and "random" in ops:
        where = next(node.params["where"] for node in graph.nodes() if node.op == "guard")
        raise UnsupportedError(
            f"{where.split(': ')[0]}: this function takes a decision on traced values (`{where.split(': ', 1)[-1]}`) "
            "and draws random numbers; a call that takes another path would have drawn from your generator "
            "already. Decide with np.where, or draw the numbers outside the function and pass them in."
        )
    return traced


def _fast_key(treedef: tree.TreeDef, leaves: list, static_ints: frozenset[int], debug: bool) -> Any:
    """A cheap cache key for common leaf types, or None to take the full path."""
    parts = []
    for k, leaf in enumerate(leaves):
        kind = type(leaf)
        if kind is np.ndarray:
            parts.append((leaf.shape, leaf.dtype))
        elif kind is float:
            parts.append(float)
        elif kind is int:
            parts.append((int, leaf) if k in static_ints else int)
        elif kind in STATIC_TYPES:
            parts.append((kind, leaf))
        elif kind is np.random.Generator:
            parts.append(kind)
        elif isinstance(leaf, np.generic):
            parts.append((kind, "scalar"))
        else:
            return None
    return treedef, tuple(parts), debug


class Jit(Transformed):
    """A forward-only compiled function (same tracing, cache and `.source`)."""

    kind = "jit"

    def _compile(self, sig: Signature) -> Compiled:
        guards = Guards()
        graph, result = self._trace(sig, guards)
        leaves, treedef = tree.flatten(result)
        check_result_leaves(leaves, self.fun, "result")
        with rule_mode(graph):  # results are NumPy values that never alias arguments or bound constants
            leaves = [as_numpy_result(graph, x) if isinstance(x, Tracer) else x for x in leaves]
        lowered = lower(graph, self._name("_jit"), tuple(leaf.id for leaf in leaves if isinstance(leaf, Tracer)))
        return Compiled(lowered.generated, graph, refill(leaves, treedef), lowered.out_tree, guards)


@api_boundary
def jit(fun: Callable) -> Jit:
    """Compile `fun` forward-only: `jit(f)(x)` runs its generated NumPy source.

    >>> import numpy as np
    >>> from compiler import jit
    >>> f = jit(lambda x, w: np.maximum(x @ w, 0))
    >>> y = f(np.ones((2, 3)), np.ones((3, 4)))       # compiled once per signature

    Traced and static arguments as for `grad`; results are NumPy values that never
    share memory with the arguments.
    """
    if not callable(fun):
        raise at_user_line(UnsupportedError, f"jit expects a function, got {type(fun).__name__}")
    return _MEMO.get(("jit", fun), lambda: Jit(fun))


def _check_argnums(argnums: Any) -> tuple[tuple[int, ...], bool]:
    """Validate argnums at definition time; returns (positions, was_int)."""
    if isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool):
        return (int(argnums),), True
    if isinstance(argnums, (tuple, list)) and argnums and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums
    ):
        if len(set(argnums)) != len(argnums):
            raise at_user_line(GradError, f"argnums={tuple(argnums)} repeats an argument")
        return tuple(int(a) for a in argnums), False
    raise at_user_line(
        GradError, f"argnums must be an int or a non-empty tuple of ints, got {argnums!r}; "
        "e.g. argnums=0 or argnums=(0, 1)"
    )


class GradTransform(Transformed):
    """`grad` / `value_and_grad` of a scalar function."""

    def __init__(self, fun: Callable, argnums: Argnums, has_aux: bool, with_value: bool):
        super().__init__(fun)
        self.argnums, self.single = _check_argnums(argnums)
        self.has_aux = has_aux
        self.with_value = with_value
        self.kind = "value_and_grad" if with_value else "grad"

    def _lookup(self, args: tuple, kwargs: dict, new_path: str = "") -> tuple[Compiled, Signature]:
        for a in self.argnums:
            if not -len(args) <= a < len(args):
                raise at_user_line(
                    GradError, f"argnums={a} is out of range: {self._name('')} was called with "
                    f"{len(args)} positional argument(s)"
                )
        return super()._lookup(args, kwargs, new_path)

    def _compile(self, sig: Signature) -> Compiled:
        groups = wrt_groups(self, sig)
        guards = Guards()
        graph, result = self._trace(sig, guards)
        result, aux = split_aux(result, self.has_aux, self._name(""))
        value = _scalar_output(graph, result, self._name(""))
        wrt_nodes = [graph.inputs[k] for group in groups for k in group]
        joint, grads = reverse(graph, wrt_nodes, differentiated_element(graph, value))
        aux_leaves, aux_def = tree.flatten(aux)
        check_result_leaves(aux_leaves, self.fun, "aux")
        aux_traced = [leaf.id for leaf in aux_leaves if isinstance(leaf, Tracer)]
        grad_tree = tuple(grads) if len(grads) > 1 or not self.single else grads[0]
        aux_tree = tuple(aux_traced)
        if self.with_value:
            out_tree: Any = ((value, aux_tree) if self.has_aux else value, grad_tree)
        else:
            out_tree = (grad_tree, aux_tree) if self.has_aux else grad_tree

        def name_gradients(graph: Graph, out_tree: Any) -> None:
            grad_ids = flat_ids(out_tree[1] if self.with_value else (out_tree[0] if self.has_aux else out_tree))
            _name_gradients(graph, wrt_nodes, grad_ids, forward_visible=self.with_value)

        name = self._name("_value_and_grad" if self.with_value else "_grad")
        lowered = lower(joint, name, out_tree, before_codegen=name_gradients)
        rebuild = self._rebuilder(sig, groups, aux_leaves, aux_def)
        return Compiled(lowered.generated, joint, rebuild, lowered.out_tree, guards)

    def _rebuilder(self, sig: Signature, groups: list[list[int]], aux_leaves: list, aux_def) -> Callable:
        arg_defs = [sig.argument_def(a % sig.positional_count) for a in self.argnums]

        def rebuild_grads(flat: list) -> Any:
            it = iter(flat)
            trees = [tree.unflatten(d, [next(it) for _ in group]) for d, group in zip(arg_defs, groups)]
            return trees[0] if self.single else tuple(trees)

        rebuild_aux = refill(aux_leaves, aux_def)

        def rebuild(out: Any) -> Any:
            """Generated results -> ((value, aux), grads) / (value, grads) / (grads, aux) / grads."""
            if self.with_value:
                value, grads = out
                if self.has_aux:
                    value = (value[0], rebuild_aux(value[1]))
            else:
                grads, aux_out = out if self.has_aux else (out, None)
            result = rebuild_grads(list(grads) if isinstance(grads, tuple) else [grads])
            if self.with_value:
                return value, result
            return (result, rebuild_aux(aux_out)) if self.has_aux else result

        return rebuild


def wrt_groups(transform: Any, sig: Signature) -> list[list[int]]:
    """Per differentiated argument of `transform` (its `argnums`), the traced-leaf
    indices of its leaves; static and non-float leaves are errors."""
    groups = []
    for a in transform.argnums:
        a %= sig.positional_count
        leaf_ids = []
        for p in sig.argument_leaves(a):
            if p not in sig.traced or type(sig.leaves[p]) is int:
                raise at_user_line(
                    GradError, f"argument {a} of {transform._name('')} holds a static "
                    f"{type(sig.leaves[p]).__name__} ({sig.leaves[p]!r}), a value that has no gradient; only float arrays and floats "
                    "can be differentiated. Pass it as a float, or leave it out of argnums."
                )
            k = sig.traced.index(p)
            if sig.avals[k].dtype.kind not in "fc":
                raise at_user_line(
                    GradError, f"argument {a} ({sig.names[k]}) of {transform._name('')} has dtype "
                    f"{sig.avals[k].dtype}; only floating inputs can be differentiated. "
                    f"Cast it with .astype(np.float64), or leave it out of argnums."
                )
            leaf_ids.append(k)
        groups.append(leaf_ids)
    return groups


def traced_args(sig: Signature, tracers: list[Tracer]) -> tuple[tuple, dict]:
    """The call's (args, kwargs) with tracers in place of the traced leaves."""
    leaves = list(sig.leaves)
    for k, t in zip(sig.traced, tracers):
        leaves[k] = t
    return tree.unflatten(sig.treedef, leaves)


def refill(leaves: list, treedef: tree.TreeDef) -> Callable[[tuple], Any]:
    """Rebuild a traced result pytree: traced leaves from the generated function's
    outputs (in order), static leaves as they were at trace time."""

    def rebuild(out: tuple) -> Any:
        it = iter(out)
        return tree.unflatten(treedef, [next(it) if isinstance(x, Tracer) else x for x in leaves])

    return rebuild


def _name_gradients(graph: Graph, wrt: list[int], grads: list[int], forward_visible: bool) -> None:
    """Call an unnamed gradient output `g_<input>` even when simplification made it a
    forward value (`grad(lambda x: np.sum(np.exp(x)))` returns `g_x = np.exp(x)`),
    unless the value is also the forward pass's own result in value_and_grad."""
    for primal, g in zip(wrt, grads):
        node = graph.node(g)
        if not node.is_call or node.name or node.cotangent_of is not None:
            continue
        if node.grad_of is not None or not forward_visible:
            node.cotangent_of = primal


_RESULT_TYPES = (Tracer, np.ndarray, np.generic, bool, int, float, complex, str, type(None))


def check_result_leaves(leaves: list, fun: Callable, what: str) -> None:
    """Results are arrays, numbers, strings or None in dicts, lists and tuples: any
    other object (a set, an instance of a class) cannot be rebuilt from the
    compiled function's outputs, and may hide traced values."""
    for leaf in leaves:
        if not isinstance(leaf, _RESULT_TYPES):
            raise UnsupportedError(
                f"{definition_site(fun)}: {getattr(fun, '__name__', 'the function')} returned a "
                f"{type(leaf).__name__} in its {what}; compiled functions return arrays and numbers in "
                "dicts, lists and tuples. Return a dict (or tuple) of the values instead."
            )


def split_aux(result: Any, has_aux: bool, name: str) -> tuple[Any, Any]:
    """(loss, aux) from a function's result; aux is None without has_aux."""
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise at_user_line(GradError, f"has_aux=True needs {name} to return a (loss, aux) pair")
    return result


def definition_site_of(graph: Graph) -> str:
    """`file.py:LINE: ` of the traced function's `def` (where its inputs come from)."""
    loc = graph.node(graph.inputs[0]).loc if graph.inputs else None
    return f"{loc}: " if isinstance(loc, Loc) else ""


def as_numpy_result(graph: Graph, x: Tracer) -> Tracer:
    """`x` as a value a compiled function may return: a NumPy value (a Python-number
    expression becomes a NumPy scalar, as NumPy's own reductions return) that does
    not alias an argument or a bound constant."""
    if x.aval.weak:
        return bind("astype", x, dtype=x.dtype)
    return x.copy() if aliases_argument(graph, x.id) else x


def _scalar_output(graph: Graph, result: Any, name: str) -> int:
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], Tracer):
        raise GradError(
            f"{definition_site_of(graph)}{name} returned a {type(result).__name__} of {len(result)} values; "
            "grad needs a scalar float result. To return a loss with extra values, return "
            "(loss, aux) and pass has_aux=True."
        )
    if not isinstance(result, Tracer):
        raise at_user_line(
            GradError, f"{name} returned a {type(result).__name__}, not a value computed from its "
            "differentiated inputs; grad needs a scalar float result"
        )
    node = graph.node(result.id)
    if node.shape == () and node.dtype.kind == "c":
        where = f"{node.loc.user}: " if isinstance(node.loc, Loc) else ""
        raise GradError(
            f"{where}grad needs a real scalar output, but {name} returned a complex value "
            f"({node.aval}); the gradient is taken of a real loss. Return a real value instead, e.g. np.abs(z) ** 2 "
            "or np.real(...)."
        )
    if node.aval.size != 1 or node.dtype.kind not in "fc":
        where = f"{node.loc.user}: " if isinstance(node.loc, Loc) else ""
        raise GradError(
            f"{where}grad needs a scalar float output (or one with a single element), but {name} returned "
            f"{node.aval}. Reduce it first (e.g. np.sum or np.mean), or differentiate one element."
        )
    if node.is_call and node.name is None:
        node.name = "loss"  # what the value being differentiated is, when the user left it unnamed
    if node.aval.weak:
        with rule_mode(graph) as mode:
            mode.at(loc=node.loc)
            return as_numpy_result(graph, result).id
    return result.id


def differentiated_element(graph: Graph, output: int) -> int:
    """The scalar a gradient is taken of: `output` itself, or the one element of a
    single-element array (`x @ A` with A of shape (3, 1)), as autograd and PyTorch's
    `backward()` take it."""
    node = graph.node(output)
    if node.shape == ():
        return output
    with rule_mode(graph) as mode:
        mode.at(loc=node.loc)
        return np.reshape(Tracer(graph, output), ()).id


class _TransformMemo:
    """The transformed functions made so far, so that `grad(f)(x)` written inline in
    a loop finds the same compiled code every time (bounded, least recently used out)."""

    def __init__(self) -> None:
        self.entries: OrderedDict[Any, Transformed] = OrderedDict()
        self.lock = threading.Lock()
        register_cache(self)

    def get(self, key: Any, make: Callable[[], Transformed]) -> Transformed:
        try:
            hash(key)
        except TypeError:  # e.g. a bound method of an unhashable object
            return make()
        with self.lock:
            transformed = self.entries.get(key)
            if transformed is None:
                transformed = self.entries[key] = make()
                if len(self.entries) > cache_size():
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            return transformed

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_MEMO = _TransformMemo()


def argnums_transform(kind: str, fun: Optional[Callable], argnums: Argnums, has_aux: bool,
                      make: Callable[[Callable], Transformed]) -> Any:
    """The memoized transform `make(fun)` (`grad`, `jacfwd`, ...), or, with `fun`
    None, the decorator that makes it (`@grad(argnums=1)`)."""
    if fun is None:
        _check_argnums(argnums)
        return api_boundary(lambda f: argnums_transform(kind, f, argnums, has_aux, make))
    if not callable(fun):
        raise at_user_line(GradError, f"expected a function to differentiate, got {type(fun).__name__}")
    positions, _ = _check_argnums(argnums)
    key = (kind, fun, positions, isinstance(argnums, (int, np.integer)), has_aux)
    return _MEMO.get(key, lambda: make(fun))


def _gradient_transform(fun: Optional[Callable], argnums: Argnums, has_aux: bool, with_value: bool):
    return argnums_transform("value_and_grad" if with_value else "grad", fun, argnums, has_aux,
                             lambda f: GradTransform(f, argnums, has_aux, with_value))


@api_boundary
def grad(fun: Optional[Callable] = None, argnums: Argnums = 0, has_aux: bool = False):
    """The gradient of a scalar-valued NumPy function, compiled to NumPy source.

    >>> import numpy as np
    >>> from compiler import grad
    >>> def loss(w, x):
    ...     return np.sum(np.tanh(x @ w) ** 2)
    >>> g_w = grad(loss)(np.ones(3), np.eye(3))      # d loss / d w
    >>> print(grad(loss).source(np.ones(3), np.eye(3)))  # the generated function

    Also `@grad`, `@grad(argnums=1)`. An int `argnums` gives one gradient shaped like
    that argument (pytrees of dicts, lists and tuples included); a tuple gives a tuple.
    With `has_aux=True`, `fun` returns `(loss, aux)` and the result is `(gradient, aux)`.
    The output may be any float value with exactly one element (a shape (1,) or
    (1, 1) result, as autograd and PyTorch's `backward()` accept): the gradient is
    that element's.

    What is traced and what is static: arrays and Python floats are traced (by shape
    and dtype: new values reuse the compiled code); Python ints are traced until the
    function needs their value (a range, a shape, an `if`), then they are static;
    bools, strings and None are static (each value compiles once). Globals and closure
    arrays are read when the function runs. `.source(*args)` and `.ir(*args)` show the
    generated module and its graph for those arguments.
    """
    return _gradient_transform(fun, argnums, has_aux, with_value=False)


@api_boundary
def value_and_grad(fun: Optional[Callable] = None, argnums: Argnums = 0, has_aux: bool = False):
    """Like `grad`, but returns `(value, gradient)` from one fused function
    (`((value, aux), gradient)` with `has_aux=True`, as in JAX).

    >>> import numpy as np
    >>> from compiler import value_and_grad
    >>> value, g = value_and_grad(lambda x: np.sum(x ** 2))(np.arange(3.0))   # 5.0, [0, 2, 4]
    """
    return _gradient_transform(fun, argnums, has_aux, with_value=True)

"""Whole training steps: `compile_step`.

`compile_step(loss_fn, optimizer)` traces the loss, builds its adjoint, then traces
the optimizer's plain-NumPy `update` on the gradients into the same graph, so one
generated function does the forward pass, the backward pass and the update. New
parameter and optimizer-state values are written into the caller's arrays in place
(`W1 -= 0.1 * g_W1`), and the function returns the loss.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from compiler.api import (
    Compiled, Transformed, _scalar_output, call_generated, checked_paths, differentiated_element, input_values, refill,
    split_aux, traced_args,
)
from runtime.paths import PathMiss
from compiler.prediction import Prediction
from compiler.errors import AdjointError, GradError, UnsupportedError, api_boundary, at_user_line
from compiler.ir import Graph
from compiler import step_call
from compiler.config import debug_nans_enabled
from compiler.lowering import lower
from compiler.guards import Guards
from compiler.signature import Signature, arg_names, check_call, leaf_names, signature
from compiler.aliasing import aliases_argument
from compiler.tracing import Tracer, extend, rule_mode, trace
from compiler.transforms.reverse import reverse
from runtime import tree


class Step(Transformed):
    """A compiled training step: `step(params, *batch)` updates params (and the
    optimizer state it keeps in `step.state`) in place and returns the loss."""

    kind = "compile_step"

    def __init__(self, loss_fn: Callable, optimizer: Any, has_aux: bool = False):
        super().__init__(loss_fn)
        self.optimizer = optimizer
        self.has_aux = has_aux
        self.state: Any = None
        self._labels: Any = None
        self._predict: Prediction | None = None
        self._params_def: Any = None
        self.steps = 0  # calls so far: the step count learning-rate schedules see
        self._last: step_call.LastCall | None = None  # the fast path's record of the last call
        self._optimizer_cache: tuple | None = None  # (optimizer, its changes, (structure, hyper values))

    def __call__(self, params: Any, *batch: Any, **kwargs: Any) -> Any:
        last, leaves = self._last, None
        if last is not None and not kwargs:
            structure, hyper = self._optimizer_inputs()
            leaves = step_call.arguments(last, params, self.state, batch, structure, debug_nans_enabled(), hyper)
        if leaves is not None:  # the fast path: the generated function, called directly
            self._labels = batch[-1] if batch else None
            try:
                out = call_generated(last.fn, last.lock, leaves)
            except PathMiss:  # nothing was written: every guard precedes every update
                self._last = None
                return self(params, *batch)
            self.steps += 1
            return out if last.plain else last.compiled.rebuild(out)
        try:
            args = self._arguments(params, batch)
            compiled, leaves, _ = self._entry(args, kwargs)
            self._labels = batch[-1] if batch else None
            try:
                out = self._run(compiled, leaves)
            except PathMiss as miss:  # the values take another path of the step
                compiled, out = self._other_path(compiled, args, kwargs, leaves, miss)
        except AdjointError as err:
            raise err.with_traceback(None) from None
        self._last = None if kwargs else step_call.record(
            params, self.state, batch, args[3], debug_nans_enabled(), compiled, len(leaves), len(args[2]),
            plain=not self.has_aux)
        self.steps += 1
        return compiled.rebuild(out)

    def _optimizer_inputs(self) -> tuple[tuple, list]:
        """The optimizer's structure and hyperparameter values for this call. For
        runtime.optim's optimizers whose hyperparameters are Python numbers (not
        schedules, not arrays that could change in place) both depend on their
        attributes alone: they are reused while `optimizer.changes` (a count of
        attribute assignments) stays the same."""
        opt = self.optimizer
        changes = getattr(opt, "changes", None) if type(opt).__module__ == "runtime.optim" else None
        cached = self._optimizer_cache
        if changes is not None and cached is not None and cached[0] is opt and cached[1] == changes:
            return cached[2]
        hyperparams = getattr(opt, "hyperparams", None)
        inputs = (self._structure(), list(hyperparams(self.steps).values()) if hyperparams is not None else [])
        numbers = all(type(getattr(opt, name, None)) in (float, int) for name in getattr(opt, "HYPERPARAMS", ()))
        self._optimizer_cache = (opt, changes, inputs) if changes is not None and numbers else None
        return inputs

    def _structure(self) -> tuple:
        return self.optimizer.structure() if hasattr(self.optimizer, "structure") else ()

    @api_boundary
    def source(self, params: Any, *batch: Any, **kwargs: Any) -> str:
        return self._lookup(self._arguments(params, batch), kwargs)[0].generated.source

    @api_boundary
    def ir(self, params: Any, *batch: Any, **kwargs: Any) -> Graph:
        return self._lookup(self._arguments(params, batch), kwargs)[0].graph

    def path_for(self, args: tuple, kwargs: dict) -> tuple[Compiled, Signature]:
        """The most recent path: finding the path of these values would run the step,
        which updates the parameters."""
        return self._lookup(args, kwargs)

    def _arguments(self, params: Any, batch: tuple) -> tuple:
        """What the generated step takes: params, optimizer state, the hyperparameters'
        values for this step (run-time inputs), the optimizer's static structure, and
        the batch."""
        hyperparams = getattr(self.optimizer, "hyperparams", None)
        hyper = hyperparams(self.steps) if hyperparams is not None else {}
        return (params, self._state_for(params), hyper, self._structure()) + tuple(batch)

    def _check_call(self, args: tuple, kwargs: dict) -> None:
        check_call(self.fun, (args[0],) + args[4:], kwargs)

    def _state_for(self, params: Any) -> Any:
        """The optimizer state, created on first use from the first params seen."""
        if self.state is None:
            self._check_params(params)
            self.state = self.optimizer.init(params)
            self._params_def = tree.flatten(params)[1]
        return self.state

    def _check_params(self, params: Any) -> None:
        leaves, _ = tree.flatten(params)
        paths = tree.leaf_paths(params)
        for leaf, path in zip(leaves, paths):
            if not (isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f"):
                what = f"{leaf.dtype} array" if isinstance(leaf, np.ndarray) else type(leaf).__name__
                raise at_user_line(
                    GradError, f"compile_step: params{''.join(f'[{p!r}]' for p in path)} is a {what}; "
                    "parameters must be floating NumPy arrays (they are updated in place). "
                    "Pass data such as labels as batch arguments instead."
                )

    def _signature(self, args: tuple, kwargs: dict) -> Signature:
        """(params, state, hyper, structure, *batch) seen abstractly; params named by
        their keys, state leaves by their paths (`velocity_W1`), hyperparameters by
        their names (`lr`)."""
        params, state, hyper = args[0], args[1], args[2]
        self._check_params(params)
        params_def = tree.flatten(params)[1]
        if self._params_def is None:
            self._params_def = params_def
        elif params_def != self._params_def:
            raise at_user_line(
                GradError, "these params do not have the structure this step's optimizer state was "
                "created for; use one compile_step per model (or set step.state = None to start over)"
            )
        structure = tree.flatten((args, dict(sorted(kwargs.items()))))[1]
        batch_names = arg_names(self.fun, len(args) - 3)[1:]
        sig = signature(self.fun, args, kwargs, self.static_ints.get(structure, frozenset()),
                        ["params", "state", "hyper", "structure", *batch_names])
        param_paths = tree.leaf_paths(params)
        names = leaf_names([], ["params"] * len(param_paths), param_paths)
        names += ["_".join(map(str, p)) or "state" for p in tree.leaf_paths(state)]
        names += [f"opt_{k}" if k in names else str(k) for k in hyper]
        for k, leaf_index in enumerate(sig.traced):
            if leaf_index < len(names):
                sig.names[k] = names[leaf_index]
        return sig

    def _compile(self, sig: Signature) -> Compiled:
        def call(tracers: list[Tracer]) -> Any:
            (params, state, hyper, _, *batch), kwargs = traced_args(sig, tracers)
            call.inputs = (params, state, hyper)
            return self.fun(params, *batch, **kwargs)

        guards = Guards()
        graph, result = checked_paths(trace(self.fun, sig.avals, sig.names, call, guards, values=input_values(sig)))
        params, state, hyper = call.inputs
        result, aux = split_aux(result, self.has_aux, self._name(""))
        loss = differentiated_element(graph, _scalar_output(graph, result, self._name("")))
        param_leaves, param_def = tree.flatten(params)
        state_leaves, state_def = tree.flatten(state)

        def update(target: Graph, grads: list[int]) -> tuple[Any, Any]:
            """Trace the optimizer's update into `target`, reading these gradient nodes."""
            grad_tree = tree.unflatten(param_def, [Tracer(target, g) for g in grads])
            on_target = lambda t: Tracer(target, t.id) if isinstance(t, Tracer) else t  # noqa: E731
            # An optimizer without `hyperparams` (any object with init/update) keeps its own.
            extra = (tree.tree_map(on_target, hyper),) if hasattr(self.optimizer, "hyperparams") else ()
            return extend(target, lambda: self.optimizer.update(
                tree.tree_map(on_target, params), grad_tree, tree.tree_map(on_target, state), *extra
            ))

        step_size = _uniform_step_size(graph, [p.id for p in param_leaves], update)
        joint, grads = reverse(graph, [p.id for p in param_leaves], loss, seed=step_size)
        first_update = joint.next_id
        new_params, new_state = update(joint, grads)
        if step_size is not None:
            _drop_step_size(joint, grads, step_size, first_update)
        updates = _pair_updates(joint, param_leaves, tree.flatten(new_params)[0], "parameter")
        updates += _pair_updates(joint, state_leaves, tree.flatten(new_state)[0], "optimizer state")
        aux_leaves, aux_def = tree.flatten(aux)
        aux_ids = [leaf.id for leaf in aux_leaves if isinstance(leaf, Tracer)]
        out_tree: Any = (loss, tuple(aux_ids)) if self.has_aux else loss
        generated = lower(joint, self._name("_step"), out_tree, updates, workspace=True).generated
        if self.has_aux:
            rebuild_aux = refill(aux_leaves, aux_def)
            rebuild = lambda out: (out[0], rebuild_aux(out[1]))  # noqa: E731
        else:
            rebuild = lambda out: out  # noqa: E731
        return Compiled(generated, joint, rebuild, guards=guards)

    @property
    def predict(self) -> Prediction:
        """The model's output for inputs `x`: the loss function cut where it first
        meets the labels (the last batch argument). Used by `runtime.train.fit`."""
        if self._predict is None:
            self._predict = Prediction(self)
        return self._predict


def _uniform_step_size(forward: Graph, params: list[int],
                       update: Callable[[Graph, list[int]], Any]) -> Optional[int]:
    """The Python-number node c (a learning rate) when the optimizer reads every
    gradient only as c * g (plain SGD), else None. Then the backward pass can be seeded
    with c instead of 1: every cotangent comes out scaled, and the update needs no
    multiplication per parameter (a careful hand-written step folds the learning rate
    the same way). Decided on a scratch copy of the forward graph, the update traced
    on stand-in gradients, so the backward pass is traced once. Not through a user's
    custom_vjp, whose rule may not be linear."""
    if any(node.op == "custom_rule" for node in forward.nodes()):
        return None
    probe = forward.copy()
    grads = [probe.add_input(probe.node(p).aval) for p in params]
    update(probe, grads)
    scales = set()
    for g in grads:
        users = probe.users(g)
        if not users:
            return None
        for user in users:
            node = probe.node(user)
            if node.op != "multiply" or node.inputs.count(g) != 1:
                return None
            scales.add(node.inputs[1] if node.inputs[0] == g else node.inputs[0])
    if len(scales) != 1:
        return None
    c = probe.node(scales.pop())
    if not (c.is_input or c.is_const) or not c.aval.weak or c.shape != () or c.id not in forward:
        return None
    return c.id


def _drop_step_size(joint: Graph, grads: list[int], c: int, first_update: int) -> None:
    """After a backward pass seeded with c: each gradient already holds c * g, so the
    optimizer's c * g (a node from `first_update` on) reads it directly. Backward
    nodes that read a gradient (one parameter's cotangent is part of another's) keep
    reading it: they are scaled with the rest. Cotangents print as `<c>_g_<name>`."""
    for g in grads:
        for user in joint.users(g):
            if user >= first_update and joint.node(user).op == "multiply" and c in joint.node(user).inputs:
                joint.replace_uses(user, g)
                joint.remove(user)
    joint.cotangent_scale = joint.node(c).name


def _pair_updates(graph: Graph, buffers: list[Tracer], values: list, what: str) -> list[tuple[int, int]]:
    """(buffer, new value) pairs for the in-place writes. A value that is an argument
    (or a view of one) is copied first, so later in-place writes cannot change it;
    a buffer left as it was needs no write."""
    if len(values) != len(buffers):
        raise at_user_line(UnsupportedError, f"the optimizer's update changed the {what} structure")
    pairs = []
    for buffer, value in zip(buffers, values):
        if not isinstance(value, Tracer):
            raise at_user_line(UnsupportedError, f"the optimizer's update returned a constant {what} leaf")
        if value.id == buffer.id:
            continue
        if aliases_argument(graph, value.id):
            with rule_mode(graph) as mode:
                mode.at(loc=graph.node(value.id).loc)
                value = value.copy()
        pairs.append((buffer.id, value.id))
    return pairs


@api_boundary
def compile_step(loss_fn: Callable, optimizer: Any, has_aux: bool = False) -> Step:
    """One generated function for forward pass, backward pass and optimizer update.

    >>> import numpy as np
    >>> from compiler import compile_step
    >>> from runtime import nn, optim
    >>> params = nn.init_mlp([4, 8, 3], rng=np.random.default_rng(0))
    >>> def loss_fn(params, x, y):
    ...     return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)
    >>> step = compile_step(loss_fn, optim.SGD(lr=0.1, momentum=0.9))
    >>> loss = step(params, np.ones((5, 4)), np.array([0, 1, 2, 0, 1]))  # params updated in place

    `optimizer` provides `init(params) -> state` and a pure
    `update(params, grads, state, hyper) -> (new_params, new_state)` in plain NumPy
    (see runtime.optim). The step writes params and the optimizer state (kept in
    `step.state`) in place and returns the loss (`(loss, aux)` with `has_aux=True`).
    Params are traced by shape and dtype; the optimizer's hyperparameters
    (`opt.lr`, or a schedule of the step count) are run-time inputs, so changing them
    needs no recompile; batch arguments follow `grad`'s rules.
    """
    if not callable(loss_fn):
        raise at_user_line(UnsupportedError, f"compile_step expects a loss function, got {type(loss_fn).__name__}")
    return Step(loss_fn, optimizer, has_aux)

"""Forward mode and the derivatives built from both modes: `jvp`, `linearize`,
`vjp`, `jacfwd`, `jacrev`, `jacobian`, `hessian`, `hvp`.

Each compiles once per signature, like `grad`, and shows its generated module with
`.source(...)`. `jvp` traces the function and adds the tangent program with
`transforms.forward`; `vjp`'s pullback is the gradient of the contraction
`sum(f(x) * ct)`, compiled once and called with the stored primals. A Jacobian is
one compiled program: one primal pass, then one tangent pass that pushes every
input direction at once along a leading batch axis (`jacfwd`) or a cotangent pass
per output element (`jacrev`). That is the lecture's cost argument made concrete:
forward mode's work grows with the inputs, reverse mode's with the outputs.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from compiler.api import (
    _MEMO, Argnums, Compiled, GradTransform, Transformed, _check_argnums, argnums_transform, as_numpy_result,
    check_result_leaves, checked_paths, grad, input_values, jit, refill, split_aux, traced_args, wrt_groups,
)
from compiler.captures import traced_callee
from compiler.errors import GradError, api_boundary, at_user_line
from compiler.guards import Guards
from compiler.ir import Aval, Graph
from compiler.lowering import lower
from compiler.signature import Signature, arg_names, signature
from compiler.tracing import Tracer, bind, rule_mode, trace
from compiler.transforms.forward import forward, zeros_like_node
from compiler.transforms.reverse import reverse
from runtime import tree


def _float_leaf(sig: Signature, position: int) -> Optional[int]:
    """The traced-input index of leaf `position` when it is a float value, else None."""
    if position not in sig.traced:
        return None
    k = sig.traced.index(position)
    return k if sig.avals[k].dtype.kind in "fc" and type(sig.leaves[position]) is not int else None


class JvpTransform(Transformed):
    """`jvp(fun, primals, tangents)` for one number of primals: compiled per
    signature of `(*primals, *tangents)`; returns `(outputs, output tangents)`, or
    the output tangents alone without `with_value` (hvp, linearize: the primal
    results are then not computed unless a tangent needs them)."""

    kind = "jvp"

    def __init__(self, fun: Callable, count: int, has_aux: bool, with_value: bool = True):
        super().__init__(fun)
        self.count = count
        self.has_aux = has_aux
        self.with_value = with_value

    def _check_call(self, args: tuple, kwargs: dict) -> None:
        super()._check_call(args[: self.count], kwargs)

    def _signature(self, args: tuple, kwargs: dict) -> Signature:
        structure = tree.flatten((args, dict(sorted(kwargs.items()))))[1]
        names = arg_names(self.fun, self.count)
        return signature(self.fun, args, kwargs, self.static_ints.get(structure, frozenset()),
                         positional_names=names + [f"t_{n}" for n in names])

    def _trace(self, sig: Signature, guards: Guards) -> tuple[Graph, Any]:
        def call(tracers: list[Tracer]) -> Any:
            args, kwargs = traced_args(sig, tracers)
            return traced_callee(self.fun, self.captures, guards)(*args[: self.count], **kwargs)

        return checked_paths(trace(self.fun, sig.avals, sig.names, call, guards, values=input_values(sig)))

    def _compile(self, sig: Signature) -> Compiled:
        guards = Guards()
        graph, result = self._trace(sig, guards)
        result, aux = split_aux(result, self.has_aux, self._name(""))
        seeds = {}
        for k in range(self.count):
            for p, q in zip(sig.argument_leaves(k), sig.argument_leaves(self.count + k)):
                primal, tangent = _float_leaf(sig, p), _float_leaf(sig, q)
                if primal is not None and tangent is not None:
                    seeds[graph.inputs[primal]] = graph.inputs[tangent]
        leaves, treedef = tree.flatten(result)
        check_result_leaves(leaves, self.fun, "result")
        aux_leaves, aux_def = tree.flatten(aux)
        check_result_leaves(aux_leaves, self.fun, "aux")
        tangents = forward(graph, seeds)
        with rule_mode(graph):
            outs = [as_numpy_result(graph, x) if isinstance(x, Tracer) else x for x in leaves]
        out_tangents = []
        for leaf in leaves:
            if not isinstance(leaf, Tracer):
                out_tangents.append(np.zeros_like(leaf, dtype=float) if np.isscalar(leaf) or isinstance(leaf, np.ndarray) else leaf)
                continue
            t = tangents.get(leaf.id)
            out_tangents.append(Tracer(graph, t if t is not None else zeros_like_node(graph, leaf.id)))
        with rule_mode(graph):
            out_tangents = [as_numpy_result(graph, t) if isinstance(t, Tracer) else t for t in out_tangents]
        _name_tangents(graph, [t.id for t in out_tangents if isinstance(t, Tracer)])
        slots = [_Slot(outs, treedef), _Slot(out_tangents, treedef), _Slot(aux_leaves, aux_def)]
        if not self.with_value:
            lowered = lower(graph, self._name("_tangent"), slots[1].ids)
            return Compiled(lowered.generated, graph, slots[1].rebuild, lowered.out_tree, guards)
        used = slots if self.has_aux else slots[:2]
        lowered = lower(graph, self._name("_jvp"), tuple(slot.ids for slot in used))

        def rebuild(flat: tuple) -> Any:
            return tuple(slot.rebuild(part) for slot, part in zip(used, flat))

        return Compiled(lowered.generated, graph, rebuild, lowered.out_tree, guards)


class _Slot:
    """One returned pytree of a generated function: its traced leaves print as one
    value when there is one (`return (y, t_y)`), else as a tuple."""

    def __init__(self, leaves: list, treedef: Any):
        traced = tuple(v.id for v in leaves if isinstance(v, Tracer))
        self.single = len(traced) == 1
        self.ids: Any = traced[0] if self.single else traced
        self._refill = refill(leaves, treedef)

    def rebuild(self, out: Any) -> Any:
        return self._refill((out,) if self.single else out)


def _display_name(graph: Graph, i: Optional[int]) -> Optional[str]:
    """The name codegen would give node `i`: its variable name, or `g_<x>` /
    `t_<x>` for a cotangent / tangent of a named value."""
    if i is None or i not in graph:
        return None
    node = graph.node(i)
    if node.name:
        return node.name
    for prefix, role in (("g_", node.cotangent_of), ("t_", node.tangent_of)):
        base = _display_name(graph, role)
        if base is not None:
            return prefix + base
    return None


def _name_tangents(graph: Graph, tangents: list[int]) -> None:
    """Name returned tangents now, while their primals are still in the graph
    (`t_g_W1` for the tangent of the gradient `g_W1`): without the primal results
    being returned, optimization removes them and the role alone names nothing."""
    for i in tangents:
        node = graph.node(i)
        if node.is_call and not node.name and node.tangent_of is not None:
            name = _display_name(graph, i)
            if name is not None:
                node.name = name


def _as_tuple(values: Any, what: str) -> tuple:
    if not isinstance(values, (tuple, list)):
        raise at_user_line(GradError, f"{what} must be a tuple (or list) with one entry per argument, got "
                           f"{type(values).__name__}; e.g. jvp(f, (x,), (v,))")
    return tuple(values)


def _check_tangents(primals: tuple, tangents: tuple) -> None:
    """One tangent per primal, with its structure and shapes."""
    if len(primals) != len(tangents):
        raise at_user_line(GradError, f"{len(primals)} primals but {len(tangents)} tangents; give one per primal")
    _check_like(primals, tangents, "tangent", "primal")


class _Leaf:
    def __repr__(self) -> str:
        return "x"


def _outline(value: Any) -> str:
    """A pytree's structure with its leaves drawn as `x`: `({'a': x}, x)`."""
    leaves, treedef = tree.flatten(value)
    return repr(tree.unflatten(treedef, [_Leaf() for _ in leaves]))


def _check_like(reference: Any, given: Any, what: str, of: str) -> None:
    """`given` (tangents, a cotangent) has `reference`'s pytree structure and each leaf
    its leaf's shape."""
    r_leaves, r_def = tree.flatten(reference)
    g_leaves, g_def = tree.flatten(given)
    if r_def != g_def:
        raise at_user_line(GradError, f"the {what}s do not have the {of}s' structure ({_outline(given)} for "
                           f"{_outline(reference)}); give one {what} per {of} value, in the same dicts, lists and tuples")
    for k, (r, g) in enumerate(zip(r_leaves, g_leaves)):
        if np.shape(r) != np.shape(g):
            raise at_user_line(GradError, f"{what} {k} has shape {np.shape(g)} but its {of} has shape "
                               f"{np.shape(r)}; a {what} has its {of}'s shape")


def _jvp_transform(fun: Callable, count: int, has_aux: bool, with_value: bool = True) -> JvpTransform:
    if not callable(fun):
        raise at_user_line(GradError, f"expected a function to differentiate, got {type(fun).__name__}")
    return _MEMO.get(("jvp", fun, count, has_aux, with_value), lambda: JvpTransform(fun, count, has_aux, with_value))


def _with_source(name: str, call: Callable, source: Callable[..., str]) -> Callable:
    """The public function `name` (`call`, an api_boundary function) with
    `.source(fun, ...)`: the module the call with those arguments runs."""
    call.__name__ = call.__qualname__ = name
    call.source = api_boundary(source)
    return call


def _jvp_call(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False,
              with_value: bool = True) -> tuple[JvpTransform, tuple]:
    """The compiled jvp of `fun` for these primals and its arguments, after checking
    that the tangents match the primals."""
    primals, tangents = _as_tuple(primals, "primals"), _as_tuple(tangents, "tangents")
    _check_tangents(primals, tangents)
    return _jvp_transform(fun, len(primals), has_aux, with_value), primals + tangents


@api_boundary
def _jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False) -> Any:
    """Forward mode: `(fun(*primals), J @ tangents)`, the Jacobian-vector product.

    >>> y, y_dot = jvp(f, (2.0, 3.0), (1.0, 0.0))      # dy/dx at (2, 3)

    `primals` and `tangents` are tuples with one entry per argument (arrays, floats,
    or pytrees of them); each tangent has its primal's structure and shapes. The
    generated program computes each value and its tangent side by side (`t_h` is the
    tangent of `h`); `jvp.source(fun, primals, tangents)` shows it.
    """
    transform, args = _jvp_call(fun, primals, tangents, has_aux)
    return transform(*args)


def _jvp_source(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False) -> str:
    transform, args = _jvp_call(fun, primals, tangents, has_aux)
    return transform.source(*args)


jvp = _with_source("jvp", _jvp, _jvp_source)


@api_boundary
def _linearize(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """`(fun(*primals), f_jvp)` with `f_jvp(*tangents)` the Jacobian-vector product
    at `primals` (`(out, f_jvp, aux)` with `has_aux`). The tangent program is
    compiled once; each call of `f_jvp` runs it (the primal values are recomputed,
    not stored)."""
    transform = _jvp_transform(fun, len(primals), has_aux, with_value=False)
    out, aux = split_aux(jit(fun)(*primals), has_aux, getattr(fun, "__name__", "fn"))

    @api_boundary
    def f_jvp(*tangents: Any) -> Any:
        _check_tangents(primals, tangents)
        return transform(*primals, *tangents)

    return (out, f_jvp, aux) if has_aux else (out, f_jvp)


def _linearize_source(fun: Callable, *primals: Any, has_aux: bool = False) -> str:
    transform, args = _jvp_call(fun, primals, primals, has_aux, with_value=False)
    return transform.source(*args)


linearize = _with_source("linearize", _linearize, _linearize_source)


# --- vjp -----------------------------------------------------------------------

def _contraction(fun: Callable, has_aux: bool) -> Callable:
    """`(primals, ct) -> sum(fun(*primals) * ct)`, summed over float output leaves:
    its gradient in `primals` is the pullback of `ct`."""

    def contraction(primals: tuple, cotangent: Any) -> Any:
        out = fun(*primals)
        if has_aux:
            out = out[0]
        total = 0.0
        for o, c in zip(tree.flatten(out)[0], tree.flatten(cotangent)[0]):
            if isinstance(o, Tracer) and o.dtype.kind in "fc":
                total = total + np.sum(o * c)
        return total

    contraction.__name__ = getattr(fun, "__name__", "fn") + "_vjp"
    contraction.__qualname__ = contraction.__name__
    return contraction


def _pullback_transform(fun: Callable, has_aux: bool) -> GradTransform:
    return _MEMO.get(("vjp", fun, has_aux), lambda: GradTransform(_contraction(fun, has_aux), 0, False, False))


@api_boundary
def _vjp(fun: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """Reverse mode for any output: `(fun(*primals), pullback)`, where
    `pullback(ct)` is `ct @ J`, one cotangent per primal (a tuple).

    >>> y, pullback = vjp(f, 2.0, 3.0)
    >>> dx, dy = pullback(1.0)

    The pullback is compiled once per signature and can be called many times; each
    call runs the forward pass again (values are recomputed, not stored). With
    `has_aux=True`, `fun` returns `(output, aux)` and vjp returns `(output, pullback, aux)`.
    """
    if not callable(fun):
        raise at_user_line(GradError, f"expected a function to differentiate, got {type(fun).__name__}")
    result = jit(fun)(*primals)
    out, aux = split_aux(result, has_aux, getattr(fun, "__name__", "fn"))
    transform = _pullback_transform(fun, has_aux)

    @api_boundary
    def pullback(ct: Any) -> tuple:
        _check_like(out, ct, "cotangent", "output")
        return transform(primals, ct)

    pullback.source = api_boundary(lambda ct: transform.source(primals, ct))
    return (out, pullback, aux) if has_aux else (out, pullback)


def _vjp_source(fun: Callable, *primals: Any, has_aux: bool = False) -> str:
    out, _ = split_aux(jit(fun)(*primals), has_aux, getattr(fun, "__name__", "fn"))
    ct = tree.unflatten(tree.flatten(out)[1], [np.ones_like(o) for o in tree.flatten(out)[0]])
    return _pullback_transform(fun, has_aux).source(primals, ct)


vjp = _with_source("vjp", _vjp, _vjp_source)


# --- Jacobians -------------------------------------------------------------------

class JacobianTransform(GradTransform):
    """`jacfwd` / `jacrev` / `jacobian`: the Jacobian of every output leaf with
    respect to every leaf of the `argnums` arguments, shaped `out.shape + in.shape`,
    from one compiled program (`grad`'s argument checks, its own compile)."""

    def __init__(self, fun: Callable, argnums: Argnums, mode: str, has_aux: bool):
        Transformed.__init__(self, fun)
        self.argnums, self.single = _check_argnums(argnums)
        self.mode = mode
        self.has_aux = has_aux
        self.kind = {"fwd": "jacfwd", "rev": "jacrev", "auto": "jacobian"}[mode]

    def _compile(self, sig: Signature) -> Compiled:
        groups = wrt_groups(self, sig)  # the same argument checks as grad
        guards = Guards()
        graph, result = self._trace(sig, guards)
        result, aux = split_aux(result, self.has_aux, self._name(""))
        leaves, treedef = tree.flatten(result)
        check_result_leaves(leaves, self.fun, "result")
        aux_leaves, aux_def = tree.flatten(aux)
        check_result_leaves(aux_leaves, self.fun, "aux")
        wrt = [graph.inputs[k] for group in groups for k in group]
        for leaf in leaves:
            if not isinstance(leaf, Tracer) or leaf.dtype.kind not in "fc":
                raise at_user_line(GradError, f"{self.kind} needs float outputs computed from the inputs; "
                                   f"{self._name('')} returned a {type(leaf).__name__}"
                                   f"{'' if not isinstance(leaf, Tracer) else ' of dtype ' + str(leaf.dtype)}")
        outs = [leaf.id for leaf in leaves]
        n = sum(graph.node(i).aval.size for i in wrt)
        m = sum(graph.node(i).aval.size for i in outs)
        mode = self.mode if self.mode != "auto" else ("fwd" if n <= m else "rev")
        if mode == "fwd":
            graph, blocks = _forward_blocks(graph, wrt, outs)
        else:
            graph, blocks = _reverse_blocks(graph, wrt, outs)
        flat = [blocks[o][x] for o in range(len(outs)) for x in range(len(wrt))]
        jac_ids = flat[0] if len(flat) == 1 else tuple(flat)
        out_tree = (jac_ids, tuple(leaf.id for leaf in aux_leaves if isinstance(leaf, Tracer))) if self.has_aux else jac_ids
        lowered = lower(graph, self._name(f"_{self.kind}"), out_tree)
        arg_defs = [sig.argument_def(a % sig.positional_count) for a in self.argnums]
        rebuild_aux = refill(aux_leaves, aux_def)
        sizes = [len(group) for group in groups]

        def rebuild(out: Any) -> Any:
            jac_out = out[0] if self.has_aux else out
            it = iter((jac_out,) if len(flat) == 1 else jac_out)
            per_output = []
            for _ in outs:
                row = [next(it) for _ in wrt]
                trees, start = [], 0
                for d, size in zip(arg_defs, sizes):
                    trees.append(tree.unflatten(d, row[start:start + size]))
                    start += size
                per_output.append(trees[0] if self.single else tuple(trees))
            jac = tree.unflatten(treedef, per_output)
            return (jac, rebuild_aux(out[1])) if self.has_aux else jac

        return Compiled(lowered.generated, graph, rebuild, lowered.out_tree, guards)


def _forward_blocks(graph: Graph, wrt: list[int], outs: list[int]) -> tuple[Graph, list[list[int]]]:
    """One batched tangent pass per input: the seed is the identity, shaped
    `(n, *x.shape)`, so the tangent of output o has shape `(n, *o.shape)`: its
    Jacobian with respect to x with the input axis first, moved last."""
    nodes = graph.nodes()
    blocks: list[list[int]] = [[] for _ in outs]
    for i in wrt:
        aval = graph.node(i).aval
        n = max(aval.size, 1)
        basis = np.eye(n, dtype=aval.dtype).reshape((n,) + aval.shape)
        seed = graph.add_const(basis, Aval(basis.shape, aval.dtype), loc=graph.node(i).loc)
        tangents = forward(graph, {i: seed}, nodes, batch=n)
        with rule_mode(graph):
            for o, out in enumerate(outs):
                shape = graph.node(out).shape + aval.shape
                t = tangents.get(out)
                if t is None:
                    blocks[o].append(bind("full", shape=shape, value=0, dtype=_jacobian_dtype(graph, out, i)).id)
                    continue
                moved = np.moveaxis(Tracer(graph, t), 0, -1) if graph.node(out).shape else Tracer(graph, t)
                blocks[o].append(_in_precision(np.reshape(moved, shape), graph, out, i).id)
    return graph, blocks


def _jacobian_dtype(graph: Graph, out: int, x: int) -> np.dtype:
    """A Jacobian block's dtype: the precision of the output and the input together
    (a Python float input counts as float64), the same in either mode."""
    return np.result_type(graph.node(out).dtype, graph.node(x).dtype)


def _in_precision(block: Tracer, graph: Graph, out: int, x: int) -> Tracer:
    dtype = _jacobian_dtype(graph, out, x)
    return block if block.dtype == dtype else block.astype(dtype)


def _reverse_blocks(graph: Graph, wrt: list[int], outs: list[int]) -> tuple[Graph, list[list[int]]]:
    """One cotangent pass per element of each output; block (o, x) stacks the
    gradients of output o's elements with respect to x."""
    rows: list[list[list[int]]] = [[[] for _ in wrt] for _ in outs]
    for o, out in enumerate(outs):
        node = graph.node(out)
        for e in range(node.aval.size):
            with rule_mode(graph) as mode:
                mode.at(loc=node.loc)
                element = Tracer(graph, out)
                if node.shape:
                    element = np.reshape(element, (-1,))[e]
                scalar = element.id
            graph, grads = reverse(graph, wrt, scalar, in_place=True)
            for x, g in enumerate(grads):
                rows[o][x].append(g)
    blocks = []
    with rule_mode(graph):
        for o, out in enumerate(outs):
            shape = graph.node(out).shape
            row = []
            for x, i in enumerate(wrt):
                grads = [Tracer(graph, g) for g in rows[o][x]]
                stacked = np.stack(grads, axis=0) if len(grads) > 1 else grads[0]  # a scalar output's is its gradient
                row.append(_in_precision(np.reshape(stacked, shape + graph.node(i).shape), graph, out, i).id)
            blocks.append(row)
    return graph, blocks


def _jacobian_transform(mode: str, fun: Optional[Callable], argnums: Argnums, has_aux: bool):
    return argnums_transform(mode, fun, argnums, has_aux, lambda f: JacobianTransform(f, argnums, mode, has_aux))


@api_boundary
def jacfwd(fun: Optional[Callable] = None, argnums: Argnums = 0, has_aux: bool = False):
    """The Jacobian by forward mode: one primal pass and one tangent pass that pushes
    every input direction at once (a leading batch axis), in one compiled program.
    Cheap when inputs are few.

    For output `y` and input `x` the result has shape `y.shape + x.shape`; pytrees of
    outputs and of `argnums` arguments give the same nesting as JAX's `jacfwd`.
    """
    return _jacobian_transform("fwd", fun, argnums, has_aux)


@api_boundary
def jacrev(fun: Optional[Callable] = None, argnums: Argnums = 0, has_aux: bool = False):
    """The Jacobian by reverse mode: one cotangent pass per output element, in one
    compiled program. Cheap when outputs are few (a gradient is `jacrev` of a scalar)."""
    return _jacobian_transform("rev", fun, argnums, has_aux)


@api_boundary
def jacobian(fun: Optional[Callable] = None, argnums: Argnums = 0, has_aux: bool = False):
    """The Jacobian by the cheaper mode for these sizes: forward when the inputs have
    no more elements than the outputs, reverse otherwise (the lecture's argument)."""
    return _jacobian_transform("auto", fun, argnums, has_aux)


@api_boundary
def hessian(fun: Optional[Callable] = None, argnums: Argnums = 0):
    """The Hessian of a scalar function: forward mode over reverse mode,
    `jacfwd(jacrev(fun))`, shaped `x.shape + x.shape`."""
    if fun is None:
        return api_boundary(lambda f: hessian(f, argnums))
    return jacfwd(jacrev(fun, argnums=argnums), argnums=argnums)


@api_boundary
def _hvp(fun: Callable, primals: Sequence, tangents: Sequence) -> Any:
    """The Hessian of the scalar `fun` times `tangents`, without forming the Hessian:
    the forward-mode derivative of the gradient (forward over reverse).

    >>> Hv = hvp(loss, (w,), (v,))

    One primal gives one array (pytree); several give a tuple.
    """
    transform, args = _hvp_call(fun, primals, tangents)
    product = transform(*args)
    return product[0] if len(args) == 2 else product


def _hvp_call(fun: Callable, primals: Sequence, tangents: Sequence) -> tuple[JvpTransform, tuple]:
    """The compiled tangent program of `grad(fun)` (in every primal) and its arguments."""
    count = len(_as_tuple(primals, "primals"))
    return _jvp_call(grad(fun, argnums=tuple(range(count))), primals, tangents, with_value=False)


def _hvp_source(fun: Callable, primals: Sequence, tangents: Sequence) -> str:
    transform, args = _hvp_call(fun, primals, tangents)
    return transform.source(*args)


hvp = _with_source("hvp", _hvp, _hvp_source)

"""The single registry every primitive is declared in."""
from __future__ import annotations

import ast
import contextlib
import functools
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from compiler.ir import Aval

# abstract(*avals, **params) -> Aval of the result, or raises ShapeError.
AbstractRule = Callable[..., Aval]
# emit(*operand_exprs, **params) -> the NumPy expression computing the value.
EmitRule = Callable[..., ast.expr]
# emit_stmts(target, *operand_exprs, **params) -> statements that bind `target`.
StmtRule = Callable[..., list]
# vjp(g, out, *operands, **params) -> one cotangent (or None for zero) per operand;
# all arguments are tracers, so the rule builds IR nodes.
VjpRule = Callable[..., tuple]
# jvp(tangents, out, *operands, **params) -> the tangent of the result (or None for
# zero); `tangents` holds one tracer or None (a zero tangent) per operand, each with
# its operand's shape.
JvpRule = Callable[..., Any]


@dataclass(frozen=True)
class Primitive:
    """An operation the IR knows: its shape rule, its NumPy spelling, its VJP.

    `vjp=None` with `differentiable=False` means the output carries no gradient
    (comparisons, sign, integer ops). `emit_stmts` replaces `emit` for operations
    that need more than one statement (scatter-add into a fresh buffer); such a
    value is never inlined into another expression. `emit_weak`, where given, is
    the spelling used when every operand is a Python number at run time (a
    Python float has no `.astype`). `augmented` is the operator of the in-place
    form (`x += y` for add), which the memory pass may use when the result
    overwrites the buffer of its first operand (or either, when `commutative`).
    `view` results may share memory with their first operand. An `effectful`
    primitive (a random draw) is never merged, inlined or reordered among its kind.
    `lanewise`: each lane of the result depends only on the same lane of each
    (broadcast) operand, so a cotangent that is zero in a lane sends zero there.
    `ufunc`: NumPy's ufunc of the same name binds it (np.exp, operators).
    `takes_out`: it prints as one NumPy call that accepts `out=` (np.exp(x, out=x)).
    `inline_operands=False`: its statements read an operand more than once, so an
    operand is computed into a name first, never printed inline (twice).
    `foldable`: on constant operands it can be evaluated at compile time by calling
    NumPy's function of the same name. `linear`: linear in its first operand (the
    others static or integer), so f(-x) = -f(x).

    `jvp` is the forward-mode rule. Where it is not given, the forward transform
    derives one (`compiler.transforms.forward.jvp_rule`): a `linear` primitive's
    tangent is the primitive applied to its operand's tangent, and a `lanewise`
    one's Jacobian is diagonal, so its VJP applied to a tangent, built with
    `conjugation_suspended`, is its JVP. That holds for primitives holomorphic in
    each operand (real functions of real values included); a lanewise primitive
    that is not (np.abs and np.angle of complex values) writes its own `jvp`.
    `batched_jvp` is the same rule for tangents that carry a leading batch axis (a
    Jacobian pushes every basis direction at once); without it the transform
    applies `jvp` to each batch element, or, for a lanewise primitive with a derived
    rule, broadcasts its operands against the batch.
    """

    name: str
    abstract: AbstractRule
    emit: Optional[EmitRule] = None
    vjp: Optional[VjpRule] = None
    emit_stmts: Optional[StmtRule] = None
    emit_weak: Optional[EmitRule] = None
    differentiable: bool = True
    view: Any = False  # a bool, or a predicate of the node for primitives that are views only sometimes
    augmented: Optional[ast.operator] = None
    commutative: bool = False
    effectful: bool = False
    lanewise: bool = False
    inline_operands: bool = True
    takes_out: bool = False
    ufunc: bool = False
    foldable: bool = False
    linear: bool = False
    jvp: Optional[JvpRule] = None
    batched_jvp: Optional[JvpRule] = None
    bound: tuple[str, ...] = ()  # params holding Python objects the generated module binds to names (host_call)
    checks: bool = False  # may stop the function (a guard): every in-place update waits for it

    def __post_init__(self) -> None:
        if (self.emit is None) == (self.emit_stmts is None):
            raise TypeError(f"primitive {self.name} needs exactly one of emit / emit_stmts")
        if self.differentiable and self.vjp is None:
            raise TypeError(f"differentiable primitive {self.name} needs a vjp rule")


_REGISTRY: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in _REGISTRY:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    _REGISTRY[prim.name] = prim
    return prim


def get(name: str) -> Primitive:
    return _REGISTRY[name]


def effectful_ops() -> frozenset[str]:
    """The names of the effectful primitives (random draws)."""
    return _effectful(len(_REGISTRY))


@functools.lru_cache(maxsize=8)
def _effectful(size: int) -> frozenset[str]:  # keyed by the table's size: new registrations refresh it
    return frozenset(name for name, prim in _REGISTRY.items() if prim.effectful)


def find(name: str) -> Optional[Primitive]:
    """The primitive registered under `name`, or None."""
    return _REGISTRY.get(name)


def registered() -> dict[str, Primitive]:
    """A read-only view of the table, for docs and tests."""
    return dict(_REGISTRY)


# The primitives whose VJP and JVP rules are verified for complex values (reverse
# mode, a real loss, PyTorch's convention: a complex value's cotangent is dL/dRe +
# i dL/dIm, so a holomorphic w = f(z) sends g_z = g_w * conj(f'(z)); see
# compiler/transforms/reverse.py; forward mode: w = f(z) has the tangent
# t_w = f'(z) t_z). The value is None when every operand may be differentiated on a
# complex path, else the positions of the operands that may be. Both transforms
# refuse every other primitive that reads or makes a complex value on a
# differentiated path: a rule written for real numbers would be silently wrong
# there. Add a name only with finite-difference tests along the real and the
# imaginary direction (tests/test_complex.py, tests/test_forward_complex.py).
COMPLEX_VJPS: dict[str, Optional[tuple[int, ...]]] = {
    # arithmetic
    "negative": None, "add": None, "subtract": None, "multiply": None, "divide": None,
    "power": (0,), "float_power": (0,),  # a complex base (or exponent constant); not differentiated in the exponent
    "reciprocal": None, "square": None, "sqrt": None,
    # holomorphic: g_z = g_w * conj(f'(z)), on NumPy's principal branches
    "exp": None, "exp2": None, "expm1": None, "log": None, "log2": None, "log10": None, "log1p": None,
    "sin": None, "cos": None, "tan": None, "arcsin": None, "arccos": None, "arctan": None,
    "sinh": None, "cosh": None, "tanh": None, "arcsinh": None, "arccosh": None, "arctanh": None,
    # complex in, real out (and their inverse, real in, complex out: astype)
    "absolute": None, "real": None, "imag": None, "angle": None, "conjugate": None, "astype": None,
    # linear with real coefficients: the cotangent passes unconjugated
    "where": None, "sum": None, "mean": None, "nansum": None, "nanmean": None, "cumsum": None,
    "copy": None, "reshape": None, "transpose": None, "broadcast_to": None, "concatenate": None, "stack": None,
    "tile": None, "repeat": None, "roll": None, "pad": None, "tril": None, "triu": None, "diag": None,
    "getitem": None, "index_add": None, "setitem": None, "take_along_axis": None, "add_along_axis": None,
    "unpermute": None,
    # products: each operand's cotangent is g times the others' conjugates
    "matmul": None, "einsum": None, "outer": None, "kron": None, "cross": None, "convolve": None,
    "prod": None, "cumprod": None,
    # holomorphic matrix functions: transposes in the rules become conjugate transposes
    "inv": None, "solve": None, "det": None, "slogdet_logabsdet": None,
}


# Primitives that forward mode also differentiates on complex values, though reverse
# mode takes them as non-differentiable: slogdet's sign is piecewise constant for a
# real matrix but det / |det| for a complex one (np.linalg.slogdet binds it beside
# logabsdet, so refusing it would refuse every complex slogdet).
COMPLEX_JVPS: dict[str, Optional[tuple[int, ...]]] = {"slogdet_sign": None}


_CONJUGATING: ContextVar[bool] = ContextVar("conjugating", default=True)


def conjugating() -> bool:
    """Whether derivative rules conjugate complex partial derivatives
    (`elementwise.conj_if_complex`): always, except under `conjugation_suspended`."""
    return _CONJUGATING.get()


@contextlib.contextmanager
def conjugation_suspended() -> Iterator[None]:
    """Rules built inside conjugate nothing. A lanewise VJP rule sends operand k the
    cotangent g * conj(d_k), d_k its partial derivative, conjugated only through
    `conj_if_complex`; built here from a tangent t it is t * d_k, the JVP of a
    primitive holomorphic in that operand. This is jvp(t) = conj(vjp(conj(t))) with
    the conjugations cancelled symbolically, so the tangent prints as
    `t_z * np.exp(z)`, not `np.conj(np.conj(t_z) * np.conj(np.exp(z)))`."""
    token = _CONJUGATING.set(False)
    try:
        yield
    finally:
        _CONJUGATING.reset(token)


def product_rule(op: str) -> JvpRule:
    """The JVP of `op` when it is linear in each operand separately (a product:
    matmul, einsum, outer, kron): the sum over operands of `op` with that operand
    replaced by its tangent."""

    def jvp(tangents: tuple, out: Any, *operands: Any, **params: Any) -> Any:
        total = None
        for k, t in enumerate(tangents):
            if t is None:
                continue
            args = operands[:k] + (t,) + operands[k + 1:]
            term = args[0].apply(op, *args[1:], **params)
            total = term if total is None else total + term
        return total

    return jvp


def joint_linear_rule(op: str, differentiable: Optional[tuple[int, ...]] = None,
                      adjust: Optional[Callable[[dict], dict]] = None) -> JvpRule:
    """The JVP of `op` when it is linear in the operands at positions
    `differentiable` (None: all) together, the others integer or static
    (concatenate, a scatter): `op` of their tangents, a zero array standing in for a
    missing one. With `adjust`, the `batched_jvp`: the tangents carry a leading
    batch axis and `adjust` shifts the params for it (axes by one, the batch
    prepended to a shape)."""
    import numpy as np

    def jvp(tangents: tuple, out: Any, *operands: Any, **params: Any) -> Any:
        positions = range(len(operands)) if differentiable is None else differentiable
        present = [tangents[k] for k in positions if tangents[k] is not None]
        if not present:
            return None
        batch = () if adjust is None else present[0].shape[:1]
        args = list(operands)
        for k in positions:
            x = operands[k]
            args[k] = tangents[k] if tangents[k] is not None else np.zeros_like(x, shape=batch + tuple(x.shape))
        return args[0].apply(op, *args[1:], **(params if adjust is None else adjust(params)))

    return jvp


def batched_linear(op: str, adjust: Callable[[dict], dict], differentiable: Optional[tuple[int, ...]] = (0,)) -> JvpRule:
    """`joint_linear_rule` for tangents with a leading batch axis."""
    return joint_linear_rule(op, differentiable, adjust)


def shifted_axes(params: dict) -> dict:
    """Params of a reduction (`axis` tuple, `ndim`) or a stack/concatenate (`axis`
    int) for operands with a leading batch axis."""
    axis = params["axis"]
    shifted = {**params, "axis": tuple(a + 1 for a in axis) if isinstance(axis, tuple) else axis + 1}
    if "ndim" in params:
        shifted["ndim"] = params["ndim"] + 1
    return shifted


def call(fn: str) -> EmitRule:
    """Emit rule `np.<fn>(*operands, key=value, ...)` for static keyword params."""

    def emit(*args: ast.expr, **params: Any) -> ast.expr:
        return np_call(fn, *args, **params)

    return emit


def np_attr(path: str) -> ast.expr:
    """`np.a.b` as an expression."""
    expr: ast.expr = ast.Name("np", ast.Load())
    for part in path.split("."):
        expr = ast.Attribute(expr, part, ast.Load())
    return expr


def np_call(fn: str, *args: ast.expr, **kwargs: Any) -> ast.expr:
    keywords = [ast.keyword(k, literal(v)) for k, v in kwargs.items()]
    return ast.Call(np_attr(fn), list(args), keywords)


def method_call(obj: ast.expr, name: str, **kwargs: Any) -> ast.expr:
    """`obj.<name>(key=value, ...)`: reductions print as array methods (`g.sum(axis=0)`),
    which skip np.sum's Python-level argument handling."""
    return ast.Call(ast.Attribute(obj, name, ast.Load()), [], [ast.keyword(k, literal(v)) for k, v in kwargs.items()])


def literal(value: Any) -> ast.expr:
    """A static Python value (numbers, tuples, None, dtypes) as an expression."""
    import numpy as np

    if isinstance(value, ast.AST):
        return value
    if isinstance(value, tuple):
        return ast.Tuple([literal(v) for v in value], ast.Load())
    if isinstance(value, np.dtype):
        return np_attr(value.name)
    if isinstance(value, float) and not np.isfinite(value):
        name = "nan" if np.isnan(value) else "inf"
        return literal_sign(value < 0, np_attr(name))
    if isinstance(value, (bool, int, float, complex, str)) or value is None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            return literal_sign(True, ast.Constant(-value))
        return ast.Constant(value)
    raise TypeError(f"cannot print {type(value).__name__} as a literal")


def literal_sign(negative: bool, expr: ast.expr) -> ast.expr:
    return ast.UnaryOp(ast.USub(), expr) if negative else expr


def functions_for_methods(tree: Any, numbers: list[ast.expr], operands: list[ast.expr] = ()) -> Any:
    """`tree` with NumPy functions for the array methods it calls on `numbers`,
    operand expressions that are Python numbers at run time (a Python float argument,
    `a * 2.0`), which have no methods and no items: `a.max(axis=0)` ->
    `np.max(a, axis=0)`, `a.T` -> `np.transpose(a)`, `a[None]` -> `np.asarray(a)[None]`. The `operands` the tree was built around were
    rewritten when they were made, and are not walked again."""
    receivers, done = {id(expr) for expr in numbers}, {id(expr) for expr in operands}
    if not _reads_attribute_of(tree, receivers, done):
        return tree  # the common case, found without a NodeTransformer's walk
    return _MethodsAsFunctions(numbers, operands).visit(tree)


def _reads_attribute_of(tree: Any, receivers: set[int], done: set[int]) -> bool:
    """Whether `tree` reads an attribute (a method) of one of `receivers`, not looking
    inside `done`; True for any form it does not know, so that the rewrite looks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in done:
            continue
        kind = type(node)
        if kind is ast.Attribute:
            if id(node.value) in receivers:
                return True
            stack.append(node.value)
        elif kind is ast.Call:
            stack.append(node.func)
            stack.extend(node.args)
            stack.extend(k.value for k in node.keywords)
        elif kind is ast.BinOp:
            stack += (node.left, node.right)
        elif kind is ast.UnaryOp:
            stack.append(node.operand)
        elif kind is ast.Compare:
            stack.append(node.left)
            stack.extend(node.comparators)
        elif kind is ast.Subscript:
            if id(node.value) in receivers:
                return True
            stack += (node.value, node.slice)
        elif kind in (ast.Tuple, ast.List):
            stack.extend(node.elts)
        elif kind in (ast.Assign, ast.AugAssign):
            stack.append(node.value)
        elif kind not in (ast.Name, ast.Constant):
            return True
    return False


class _MethodsAsFunctions(ast.NodeTransformer):
    """The rewrite of `functions_for_methods`."""

    def __init__(self, numbers: list[ast.expr], operands: list[ast.expr]):
        self.receivers = {id(expr) for expr in numbers}
        self.done = {id(expr) for expr in operands}

    def visit(self, node: ast.AST) -> Any:
        return node if id(node) in self.done else super().visit(node)

    def visit_Call(self, call: ast.Call) -> ast.expr:
        func = call.func
        if isinstance(func, ast.Attribute) and id(func.value) in self.receivers:
            return ast.Call(np_attr(func.attr), [func.value, *map(self.visit, call.args)],
                            [self.visit(k) for k in call.keywords])
        return self.generic_visit(call)

    def visit_Attribute(self, attr: ast.Attribute) -> ast.expr:
        if attr.attr == "T" and id(attr.value) in self.receivers:
            return np_call("transpose", attr.value)
        return self.generic_visit(attr)

    def visit_Subscript(self, subscript: ast.Subscript) -> ast.expr:
        if id(subscript.value) in self.receivers:  # a Python number cannot be indexed: `np.asarray(a)[None]`
            return ast.Subscript(np_call("asarray", subscript.value), self.visit(subscript.slice), ast.Load())
        return self.generic_visit(subscript)

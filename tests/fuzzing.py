"""Random straight-line NumPy programs, and the checks that run them through adjoint.

A program is generated statement by statement. Every candidate statement is evaluated
eagerly on the program's own inputs while it is built, so the generator knows each
intermediate's shape and values: it keeps inputs inside each function's domain (log,
sqrt, power and division see values >= 0.2, or wrapped ones such as `x * x + 0.5`),
keeps magnitudes moderate, and rejects statements whose inputs lie within a margin of
a kink (abs/sign/relu at 0, near-ties of maximum/minimum/max/min, where-conditions and
clip bounds), so that centered finite differences are a valid reference.

The same builder runs on hypothesis draws (`programs()`, which shrinks) and on a seeded
`random.Random` (`random_program`, for `tests/fuzz_run.py`). A program renders as the
source of a module

    DTYPE = np.float64
    W = np.array(...)                       # fixed weights of the scalarisation

    def program(x0, x1, s0): ...            # the straight-line body, array-valued
    def loss(x0, x1, s0): return np.sum(program(x0, x1, s0) * W)
    def step_loss(params, s0): return loss(params["x0"], params["x1"], s0)

which is written to a real file and imported from it, once per dtype. `check_program`
runs jit, grad, value_and_grad, jvp, jacfwd and compile_step on it and compares with eager NumPy and
centered finite differences in float64.

Besides arithmetic, the families of the weights table `OPERATIONS` cover NumPy's
elementwise functions (each inside its domain, away from poles and steps), reductions,
scans and sorts (away from ties), einsum and the other contractions, np.linalg on
matrices made well-conditioned inside the program, shape functions, assignment into a
copy (`y = v.copy(); y[idx] += w`), Python int arguments (traced in arithmetic, static
where their value is needed), a `np.random.Generator` argument `rng` (every call, and
every finite-difference evaluation, gets a freshly seeded one), and np.where whose
discarded branch is NaN or inf: such a where reads a fresh input with exact zeros that
no other statement uses, and its reference gradient there is the one-sided difference.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import random
import re
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Optional, Sequence, TypeVar

import numpy as np
from hypothesis import strategies as st

from compiler import AdjointError, compile_step, grad, jacfwd, jit, jvp, value_and_grad
from compiler.primitives.control import NUMBER_RTOL
from runtime import nn, optim
from runtime.check import numerical_grad

T = TypeVar("T")

MAX_STATEMENTS = 8
MAX_ARRAY_INPUTS = 4
MAX_INPUT_ELEMENTS = 96    # bounds the cost of finite differences
MAX_SIZE = 128             # elements of any intermediate
MAX_MAGNITUDE = 50.0       # |value| of any intermediate
LR = 0.1

# tolerances: |actual - expected| <= atol * (1 + max|expected|) + rtol * |expected|
TOLERANCES = {
    ("forward", "float64"): (1e-9, 1e-9),
    ("gradient", "float64"): (1e-5, 1e-6),
    ("forward", "float32"): (2e-4, 2e-5),
    ("gradient", "float32"): (2e-3, 2e-4),
}


# --- choices: one interface over hypothesis draws and a seeded generator ------------

class Choices:
    """The decisions a program is built from. Subclasses supply `integer`; everything
    else is expressed through it, so hypothesis can shrink every decision towards the
    first option of each list."""

    def integer(self, low: int, high: int) -> int:
        raise NotImplementedError

    def pick(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) < percent

    def weighted(self, table: Sequence[tuple[int, T]]) -> T:
        ticket = self.integer(0, sum(w for w, _ in table) - 1)
        for weight, option in table:
            if ticket < weight:
                return option
            ticket -= weight
        raise AssertionError("unreachable")


class DrawnChoices(Choices):
    """Choices drawn by hypothesis (`draw` of a composite strategy)."""

    def __init__(self, draw: Callable[[st.SearchStrategy], Any]):
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))


class SeededChoices(Choices):
    """Choices from a seeded `random.Random`: no hypothesis overhead."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)


# --- programs -------------------------------------------------------------------------

@dataclass(frozen=True)
class Rng:
    """The value of a `np.random.Generator` input: each call gets a fresh
    `np.random.default_rng(seed)`, so compiled and eager code draw the same numbers."""
    seed: int


@dataclass
class Input:
    name: str
    # float64 array or Python float (both float32-exact; differentiated), Python int
    # (arithmetic or static uses), or Rng (a Generator drawn from at run time)
    value: Any
    alt: Any = None  # its value in the second input set of a program with control flow (None: the same)


def _argument(value: Any, dtype: str) -> Any:
    if isinstance(value, np.ndarray):
        return value.astype(dtype)
    if isinstance(value, Rng):
        return np.random.default_rng(value.seed)
    return value


def _differentiable(value: Any) -> bool:
    return isinstance(value, (np.ndarray, float))


@dataclass
class Program:
    """A generated program: inputs, statements `name = expression`, the weights of the
    scalarisation, and whether it is checked in float32 as well as float64."""

    inputs: list[Input]
    body: list[tuple[str, str]]  # (name, its code: `name = expr`, maybe assignments into it)
    outputs: list[str]  # the last statement, then up to two statements nothing uses
    weights: list[np.ndarray]  # one per output
    float32: bool
    # inputs holding branch points of a NaN-masking np.where: name -> (mask of the
    # elements exactly at the branch point, the side (-1 or +1) whose one-sided
    # derivative is the expected gradient there)
    branch_points: dict = field(default_factory=dict)
    # control flow on data: the number of statements with decisions, whether the second
    # input set (Input.alt) takes another path than the first, and the `float(...)` /
    # `.item()` calls used in arithmetic, which the finite-difference reference holds at
    # their values at the point differentiated (a constant to the derivative, as in PyTorch)
    controls: int = 0
    paths_differ: bool = False
    frozen: list = field(default_factory=list)
    _modules: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def differentiable(self) -> tuple[int, ...]:
        """Positions of the inputs that are differentiated (arrays and floats)."""
        return tuple(k for k, i in enumerate(self.inputs) if _differentiable(i.value))

    @property
    def params(self) -> list[str]:
        """Array inputs: the parameters of compile_step (scalars go in the batch)."""
        return [i.name for i in self.inputs if isinstance(i.value, np.ndarray)]

    @property
    def alt(self) -> bool:
        """Whether the program has a second input set (programs with control flow)."""
        return self.controls > 0

    def source(self, dtype: str = "float64", frozen: bool = False) -> str:
        """The module; `frozen` (the finite-difference reference): each `float(...)` of
        `self.frozen` returns the value it had at the last `FROZEN.clear()`ed call."""
        body = [f"    {line}" for _, code in self.body for line in code.split("\n")]
        prelude = []
        if frozen and self.frozen:
            for k, text in enumerate(self.frozen):
                body = [line.replace(text, f"_freeze({k}, lambda: {text})") for line in body]
            prelude = ["FROZEN = {}", "", "", "def _freeze(k, value):",
                       "    if k not in FROZEN:", "        FROZEN[k] = value()", "    return FROZEN[k]", ""]
        names = ", ".join(i.name for i in self.inputs)
        batch = [i.name for i in self.inputs if not isinstance(i.value, np.ndarray)]
        from_params = ", ".join(i.name if i.name in batch else f'params["{i.name}"]' for i in self.inputs)
        lines = [
            "import numpy as np",
            "",
            "from runtime import nn",
            "",
            f"DTYPE = np.{dtype}",
            *(f"W{k} = np.array({_literal_list(w)}, dtype=DTYPE)" for k, w in enumerate(self.weights)),
            *prelude,
            "",
            "",
            f"def program({names}):",
            *body,
            f"    return {', '.join(self.outputs)}",
            "",
            "",
            f"def loss({names}):",
            *self._loss_body(names),
            "",
            "",
            f"def step_loss({', '.join(['params', *batch])}):",
            f"    return loss({from_params})",
            "",
            "",
            f"def step_loss_aux({', '.join(['params', *batch])}):",
            f"    outputs = program({from_params})",
            f"    return {self._scalarisation('outputs')}, outputs",
            "",
        ]
        return "\n".join(lines)

    def _loss_body(self, names: str) -> list[str]:
        """The scalarisation: a weighted sum of every output with fixed weights."""
        if len(self.outputs) == 1:
            return [f"    return np.sum(program({names}) * W0)"]
        terms = " + ".join(f"np.sum({out} * W{k})" for k, out in enumerate(self.outputs))
        return [f"    {', '.join(self.outputs)} = program({names})", f"    return {terms}"]

    def _scalarisation(self, outputs: str) -> str:
        """The loss's weighted sum, of the program's result held in `outputs`."""
        if len(self.outputs) == 1:
            return f"np.sum({outputs} * W0)"
        return " + ".join(f"np.sum({outputs}[{k}] * W{k})" for k in range(len(self.outputs)))

    def arguments(self, dtype: str = "float64", world: int = 0) -> tuple:
        """Fresh copies of the inputs in `dtype` (scalar inputs stay Python floats and
        ints, a Generator input is a freshly seeded Generator); `world` 1: the second
        input set."""
        return tuple(_argument(i.alt if world and i.alt is not None else i.value, dtype) for i in self.inputs)

    def intermediate_dtypes(self, dtype: str) -> set[np.dtype]:
        """The dtypes of every statement's value, evaluated eagerly in `dtype`."""
        namespace = {"np": np, "nn": nn, "DTYPE": np.dtype(dtype).type}
        namespace.update((i.name, a) for i, a in zip(self.inputs, self.arguments(dtype)))
        dtypes = set()
        with np.errstate(all="ignore"):
            for name, code in self.body:
                exec(code, namespace)
                dtypes.add(np.result_type(namespace[name]))
        return dtypes

    def load(self, dtype: str = "float64", frozen: bool = False) -> ModuleType:
        """The program's module for `dtype`, imported from a real file."""
        if (dtype, frozen) not in self._modules:
            self._modules[(dtype, frozen)] = _import_source(self.source(dtype, frozen))
        return self._modules[(dtype, frozen)]


def _literal_list(weights: np.ndarray) -> str:
    return repr(np.round(weights, 2).tolist())


_TEMP_DIR = tempfile.TemporaryDirectory(prefix="adjoint-fuzz-")


def _import_source(source: str) -> ModuleType:
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    path = f"{_TEMP_DIR.name}/program_{digest}.py"
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"fuzz_program_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the builder ----------------------------------------------------------------------

class Reject(Exception):
    """The proposed statement is invalid or too close to a kink; propose another."""


class Var:
    """A named value: a float64 array (0-d included), or a Python float or int. A
    program with control flow has two input sets (worlds); `value` is the one of the
    world `Var.world` the builder is working in (`alt` None: the same in both)."""

    world = 0

    def __init__(self, name: str, value: Any, alt: Any = None):
        self.name, self.base, self.alt = name, value, alt

    @property
    def value(self) -> Any:
        return self.alt if Var.world and self.alt is not None else self.base

    def __repr__(self) -> str:
        return f"Var({self.name!r}, {self.base!r}, alt={self.alt!r})"


@dataclass
class Dual:
    """A statement a control-flow operation built in both worlds: its code (`{out}`
    for the name it defines) and its value in each."""
    code: str
    value: Any
    alt: Any


class Recorder(Choices):
    """Choices passed through and recorded, to be replayed in the other world."""

    def __init__(self, inner: Choices):
        self.inner, self.log = inner, []

    def integer(self, low: int, high: int) -> int:
        value = self.inner.integer(low, high)
        self.log.append((low, high, value))
        return value


class Replay(Choices):
    """The recorded choices again; a different request means the operation took other
    decisions on the other world's values: the statement is not the same there."""

    def __init__(self, log: list):
        self.log, self.at = log, 0

    def integer(self, low: int, high: int) -> int:
        if self.at >= len(self.log) or self.log[self.at][:2] != (low, high):
            raise Reject("another statement in the other world")
        self.at += 1
        return self.log[self.at - 1][2]

    @property
    def done(self) -> bool:
        return self.at == len(self.log)


def _fmt(x: float) -> str:
    """A short Python float literal, parenthesised when negative (safe as an operand)."""
    text = repr(float(x))
    return f"({text})" if x < 0 else text


def _margin(scale: Any) -> Any:
    return 1e-3 * (1.0 + np.abs(scale))


def _require_far(distance: Any, scale: Any) -> None:
    """Reject unless every |distance| clears the kink margin (exact zeros allowed:
    they come from structurally identical operands, such as a broadcast copy)."""
    d = np.abs(np.asarray(distance, dtype=np.float64))
    if np.any((d > 0) & (d < _margin(scale))):
        raise Reject("near a kink")


def _require_clear_of(values: Any, points: Sequence[float]) -> None:
    for p in points:
        if np.any(np.abs(np.asarray(values) - p) < _margin(p)):
            raise Reject("near a kink")


class Builder:
    """Builds one program from `choices`; inputs' values come from a numpy generator
    seeded by a drawn integer."""

    def __init__(self, choices: Choices):
        self.choices = choices
        self.rng = np.random.default_rng(choices.integer(0, 2**32 - 1))
        self.inputs: list[Var] = []
        self.body: list[Var] = []
        self.exprs: dict[str, str] = {}  # name -> the code of its statement
        self.reserved: set[str] = set()  # inputs holding branch points: used by one statement only
        self.branch_points: dict[str, tuple[np.ndarray, int]] = {}
        self.generator: np.random.Generator | None = None  # the Generator input's state after the body so far
        self._trial: np.random.Generator | None = None
        self.lenient = False  # the statement may compute NaN/inf in a discarded np.where branch
        # control flow on data: a second input set (world 1, each input's `alt`, from
        # `transform`) in which every statement is built again from the same choices
        # (`apply`) and must come out the same and valid; the decisions' outcomes in each
        # world (`notes`), and the float() calls used in arithmetic (`frozen`)
        self.control = False
        self.transform: tuple[float, float, bool] | None = None
        self.controls = 0
        self.notes: tuple[list, list] = ([], [])
        self.frozen: list[str] = []

    # values ---------------------------------------------------------------------

    @property
    def vars(self) -> list[Var]:
        return self.inputs + self.body

    @property
    def arrays(self) -> list[Var]:
        """The array values statements may use."""
        return [v for v in self.vars if isinstance(v.value, np.ndarray) and v.name not in self.reserved]

    def namespace(self) -> dict:
        namespace = {"np": np, "nn": nn, "DTYPE": np.float64}
        namespace.update((v.name, v.value) for v in self.vars if not isinstance(v.value, Rng))
        if self.generator is not None:  # draws start where the statements so far left off
            self._trial = namespace["rng"] = copy.deepcopy(self.generator)
        return namespace

    def eval(self, expr: str) -> Any:
        return self._evaluate(lambda namespace: eval(expr, namespace))

    def exec(self, code: str, name: str) -> Any:
        def run(namespace: dict) -> Any:
            exec(code, namespace)
            return namespace[name]
        return self._evaluate(run)

    def _evaluate(self, run: Callable[[dict], Any]) -> Any:
        namespace = self.namespace()
        invalid = "ignore" if self.lenient else "raise"
        try:
            with np.errstate(over="raise", invalid=invalid, divide=invalid, under="ignore"), warnings.catch_warnings():
                warnings.simplefilter("error")
                return run(namespace)
        except (ValueError, IndexError, TypeError, FloatingPointError, ZeroDivisionError, OverflowError,
                KeyError, AttributeError, Warning, np.exceptions.AxisError, np.linalg.LinAlgError) as err:
            raise Reject(str(err)) from None

    def _draw_values(self, shape: tuple[int, ...]) -> np.ndarray:
        kind = self.choices.pick(["normal", "positive", "negative", "wide"])
        if kind == "normal":
            values = self.rng.normal(size=shape)
        elif kind == "positive":
            values = self.rng.uniform(0.5, 2.0, size=shape)
        elif kind == "negative":
            values = self.rng.uniform(-2.0, -0.5, size=shape)
        else:
            values = self.rng.uniform(-3.0, 3.0, size=shape)
        return values.astype(np.float32).astype(np.float64)  # exact in both dtypes

    def fresh(self, shape: tuple[int, ...], values: np.ndarray | None = None) -> Var:
        """A new array input of `shape` (with `values` when given)."""
        arrays = [v for v in self.inputs if isinstance(v.value, np.ndarray)]
        total = sum(v.value.size for v in arrays) + int(np.prod(shape))
        if len(arrays) >= MAX_ARRAY_INPUTS or total > MAX_INPUT_ELEMENTS:
            raise Reject("too many inputs")
        values = self._draw_values(shape) if values is None else values
        var = Var(f"x{len(arrays)}", values, self.alt_value(values, first=not arrays))
        self.inputs.append(var)
        return var

    def alt_value(self, values: Any, first: bool = False) -> Any:
        """An input's value in the second input set: scaled and shifted (float32-exact)."""
        if self.transform is None:
            return None
        scale, shift, only_first = self.transform
        if only_first and not first:
            return None
        alt = np.float32(scale) * np.asarray(values, dtype=np.float32) + np.float32(shift)
        return float(alt) if type(values) is float else np.array(alt, dtype=np.float64)

    def int_input(self) -> Var:
        """A Python int input (an existing one, or a new one) in 1..3."""
        existing = [v for v in self.inputs if type(v.value) is int]
        if existing and self.choices.chance(60):
            return self.choices.pick(existing)
        if len(existing) >= 2:
            raise Reject("too many int inputs")
        var = Var(f"n{len(existing)}", self.choices.integer(1, 3))
        self.inputs.append(var)
        return var

    def generator_input(self) -> Var:
        """The `np.random.Generator` input `rng` (one per program)."""
        for v in self.inputs:
            if isinstance(v.value, Rng):
                return v
        var = Var("rng", Rng(self.choices.integer(0, 2**16)))
        self.generator = np.random.default_rng(var.value.seed)
        self.inputs.append(var)
        return var

    def scalar_input(self) -> Var:
        """A Python float input (an existing one, or a new one)."""
        existing = [v for v in self.inputs if type(v.value) is float]
        if existing and self.choices.chance(70):
            return self.choices.pick(existing)
        if len(existing) >= 2:
            raise Reject("too many scalar inputs")
        value = float(np.float32(self._draw_values(()).item()))
        var = Var(f"s{len(existing)}", value, self.alt_value(value))
        self.inputs.append(var)
        return var

    def literal(self, low: float = -2.0, high: float = 2.0) -> str:
        """A Python float literal with two decimals in [low, high], never 0.0."""
        return _fmt(round(low + (high - low) * self.choices.integer(0, 100) / 100, 2) or 0.5)

    def shape(self, min_dims: int = 0, max_dims: int = 3) -> tuple[int, ...]:
        ndim = self.choices.integer(min_dims, max_dims)
        return tuple(self.side() for _ in range(ndim))

    def side(self) -> int:
        """A dimension's length: 1 a third of the time, where broadcasting and
        reshapes are most often wrong."""
        return self.choices.weighted([(3, 1), (3, 2), (2, 3), (1, 4)])

    # operands -------------------------------------------------------------------

    def operand(self, accept: Callable[[Any], bool] = lambda v: True, scalars: bool = True) -> Var:
        """An existing value accepted by `accept` (most often the latest statement or
        a value nothing uses yet, so that the data flow joins up), or a fresh input
        when none is accepted; with `scalars`, sometimes a Python float input."""
        if scalars and self.choices.chance(6) and accept(np.zeros(())):
            # a Python float input into any operation family (a reduction, a method, np.exp, a
            # shape function): NumPy's functions return NumPy scalars there, operators Python floats
            scalar = self.scalar_input()
            return Var(scalar.name, np.array(scalar.value))
        candidates = [v for v in reversed(self.arrays) if accept(v.value)]
        unused = [v for v in candidates if not self.used(v.name)]
        if candidates and self.body and candidates[0] is self.body[-1] and self.choices.chance(60):
            return candidates[0]
        if unused and self.choices.chance(50):
            return self.choices.pick(unused)
        if candidates and self.choices.chance(80):
            return self.choices.pick(candidates)
        for _ in range(4):
            shape = self.shape()
            if accept(np.zeros(shape)):
                return self.fresh(shape)
        raise Reject("no operand")

    def used(self, name: str) -> bool:
        return any(re.search(rf"\b{name}\b", code) for other, code in self.exprs.items() if other != name)

    def partner(self, shape: tuple[int, ...]) -> str:
        """An operand that broadcasts with `shape`: an existing value, a fresh input of
        a related shape, a Python float literal or input, or a constant array."""
        kind = self.choices.weighted([(5, "existing"), (4, "fresh"), (3, "literal"), (2, "scalar"), (1, "ones"),
                                      (1, "int")])
        if kind == "literal":
            return self.literal()
        if kind == "scalar":
            return self.scalar_input().name
        if kind == "int":
            return self.int_input().name
        related = self.related_shape(shape)
        if kind == "ones":
            return f"np.ones({related}, dtype=DTYPE)"
        if kind == "existing":
            candidates = [v for v in self.arrays if _broadcasts(shape, v.value.shape)]
            if candidates:
                return self.choices.pick(candidates).name
        return self.fresh(related).name

    def related_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts with `shape`: some leading dims dropped or added,
        some dims replaced by 1."""
        dims = [1 if self.choices.chance(25) else d for d in shape]
        if self.choices.chance(40):
            return tuple(dims[self.choices.integer(0, len(dims)):])
        if self.choices.chance(20):
            return (self.choices.integer(1, 3), *dims)
        return tuple(dims)

    def positive(self, var: Var) -> str:
        """An expression of `var` whose values are >= 0.2 (domain of log, sqrt, ...)."""
        values = np.asarray(var.value)
        if values.min() >= 0.2 and self.choices.chance(70):
            return var.name
        n = var.name
        forms = [f"({n} * {n} + 0.5)", f"np.sqrt({n} * {n} + 1.0)", f"(nn.sigmoid({n}) + 0.5)", f"np.exp(np.tanh({n}))"]
        if np.abs(values).max() <= 3:
            forms.append(f"np.exp({n})")
        if np.abs(values).min() > _margin(0.0):
            forms.append(f"(np.abs({n}) + 0.5)")
        return self.choices.pick(forms)

    def nonzero(self, var: Var) -> str:
        """An expression of `var` whose values are at least 0.2 away from 0."""
        values = np.asarray(var.value)
        if np.abs(values).min() >= 0.2 and self.choices.chance(60):
            return var.name
        expr = self.positive(var)
        return f"(-{expr})" if self.choices.chance(30) else expr

    def bounded(self, var: Var, limit: float = 3.0) -> str:
        """`var`, or tanh of it when it is larger than `limit` (input of exp)."""
        return var.name if np.abs(var.value).max() <= limit else f"np.tanh({var.name})"

    def threshold(self, values: Any) -> str:
        """A Python float literal at least a margin away from every value: in a gap
        between two of them, or outside their range."""
        points = np.unique(np.round(np.asarray(values, dtype=np.float64), 6))
        candidates = [points[0] - 0.5, points[-1] + 0.5]
        candidates += [(a + b) / 2 for a, b in zip(points[:-1], points[1:]) if b - a > 4 * _margin(b)]
        c = candidates[self.choices.integer(0, len(candidates) - 1)]
        for text in (_fmt(round(c, 2)), _fmt(c)):
            if np.all(np.abs(points - float(text.strip("()"))) >= _margin(points)):
                return text
        raise Reject("no threshold")

    # statements -----------------------------------------------------------------

    def add(self, statement: str | list[str] | Dual) -> None:
        """Append a statement: an expression, or lines that make the value named
        `{out}` (a copy, then assignments into it), or a statement built in both worlds."""
        name = f"v{len(self.body)}"
        if isinstance(statement, Dual):
            code = statement.code.replace("{out}", name)
            self.append(name, code, _checked(statement.value), _checked(statement.alt))
            return
        code, value = self.evaluate(statement, name)
        self.append(name, code, value)

    def evaluate(self, statement: str | list[str], name: str) -> tuple[str, np.ndarray]:
        """The code of `statement` defining `name`, and its value in the current world."""
        if isinstance(statement, str):
            return f"{name} = {statement}", _checked(self.eval(statement))
        code = "\n".join(line.replace("{out}", name) for line in statement)
        return code, _checked(self.exec(code, name))

    def append(self, name: str, code: str, value: np.ndarray, alt: np.ndarray | None = None) -> None:
        if alt is not None and alt.shape != value.shape:
            raise Reject("another shape in the other world")
        self.body.append(Var(name, value, alt))
        self.exprs[name] = code
        if self.generator is not None:
            self.generator = self._trial

    def operations(self) -> list[tuple[int, Callable[[Builder], Any]]]:
        """The operations' table: with control flow, its operations too, and neither
        random draws (a decision with draws is refused) nor NaN-masking np.where (its
        one-sided reference is for the first input set only)."""
        if not self.control:
            return OPERATIONS
        return [(w, op) for w, op in OPERATIONS if op not in (op_random, op_where_nan)] + CONTROL_OPERATIONS

    def snapshot(self) -> tuple:
        return (list(self.inputs), list(self.body), set(self.reserved), dict(self.branch_points), self.generator,
                self.rng.bit_generator.state, self.controls, len(self.notes[0]), len(self.notes[1]),
                len(self.frozen))

    def restore(self, state: tuple, notes: bool = True) -> None:
        (inputs, body, reserved, branch_points, self.generator, self.rng.bit_generator.state,
         self.controls, n0, n1, nf) = state
        self.inputs, self.body, self.reserved, self.branch_points = list(inputs), list(body), set(reserved), \
            dict(branch_points)  # copies: a state may be restored more than once
        if notes:
            del self.notes[0][n0:], self.notes[1][n1:]
        del self.frozen[nf:]

    def apply(self, op: Callable[[Builder], Any]) -> None:
        """Append the statement `op` makes; with two worlds, an operation that is not
        a control-flow one runs in each from the same choices, and must make the same
        statement, valid in both."""
        if self.transform is None or getattr(op, "dual", False):
            self.add(op(self))
            return
        name = f"v{len(self.body)}"
        code, value, alt = self.in_both(op, name)
        self.append(name, code, value, alt)

    def in_both(self, op: Callable[[Builder], Any], name: str) -> tuple[str, np.ndarray, np.ndarray]:
        """`op`'s statement defining `name`, made in world 0 and again in world 1 (the
        same choices, the same new inputs): its code and value in each."""
        state = self.snapshot()
        recorder = Recorder(self.choices)
        self.choices = recorder
        try:
            statement = op(self)
            code, value = self.evaluate(statement, name)
        finally:
            self.choices = recorder.inner
        notes = list(self.notes[0][state[7]:])
        self.restore(state)
        self.choices = replay = Replay(recorder.log)
        Var.world = 1
        try:
            again = op(self)
            if again != statement or not replay.done:
                raise Reject("another statement in the other world")
            _, alt = self.evaluate(statement, name)
        finally:
            self.choices, Var.world = recorder.inner, 0
        self.notes[0].extend(notes)
        if alt.shape != value.shape:
            raise Reject("another shape in the other world")
        return code, value, alt

    def in_world(self, world: int, op: Callable[[Builder], Any], name: str) -> tuple[str, np.ndarray]:
        """`op`'s statement defining `name`, made and evaluated in `world` only."""
        Var.world = world
        try:
            return self.evaluate(op(self), name)
        finally:
            Var.world = 0

    def value_in(self, world: int, expr: str) -> Any:
        Var.world = world
        try:
            return self.eval(expr)
        finally:
            Var.world = 0

    def note(self, outcome: Any, alt: Any = None) -> None:
        """A decision's outcome in the current world (or in both, with `alt`): the
        compiled paths of the two input sets differ where any outcome does."""
        if alt is None:
            self.notes[Var.world].append(outcome)
        else:
            self.notes[0].append(outcome)
            self.notes[1].append(alt)

    def statement(self) -> None:
        """Append one statement, retrying other operations on rejection."""
        table = self.operations()
        for _ in range(8):
            op = self.choices.weighted(table)
            state = self.snapshot()
            self.lenient = False
            try:
                self.apply(op)
                return
            except Reject:
                self.restore(state)
        self.lenient = False
        state = self.snapshot()
        try:
            self.apply(op_tanh)
        except Reject:  # (with two worlds) a new input's operand was rejected
            self.restore(state)
            self.apply(lambda b: f"np.tanh({b.arrays[-1].name})")

    def build(self, float32: bool) -> Program:
        for _ in range(self.choices.integer(1, MAX_STATEMENTS)):
            self.statement()
        for _ in range(8 if self.control and not self.controls else 0):  # at least one decision
            state = self.snapshot()
            try:
                self.apply(self.choices.pick([op_if, op_if_expression, op_while]))
                break
            except Reject:
                self.restore(state)
        last = self.body[-1]
        dangling = [v for v in self.body[:-1] if not self.used(v.name)][-2:]
        outputs = [last] + [v for v in dangling if self.choices.chance(50)]
        return Program(
            [Input(v.name, v.value, v.alt if self.controls else None) for v in self.inputs],
            [(v.name, self.exprs[v.name]) for v in self.body],
            [v.name for v in outputs],
            [np.round(self.rng.normal(size=np.shape(v.value)), 2) for v in outputs],
            float32,
            dict(self.branch_points),
            self.controls,
            not _same_outcomes(self.notes[0], self.notes[1]),
            list(dict.fromkeys(self.frozen)),
        )


def _checked(value: Any) -> np.ndarray:
    """A statement's value as a float64 array, rejected unless a float array of a
    moderate size and magnitude."""
    if not isinstance(value, (np.ndarray, np.generic)) or value.dtype.kind != "f":
        raise Reject("not a float array")
    if value.size == 0 or value.size > MAX_SIZE:
        raise Reject("size")
    if not np.all(np.isfinite(value)) or np.abs(value).max() > MAX_MAGNITUDE:
        raise Reject("magnitude")
    return np.array(value, dtype=np.float64)


def op_tanh(b: Builder) -> str:
    """The fallback statement when every proposal was rejected."""
    return f"np.tanh({b.operand().name})"


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        return int(np.prod(np.broadcast_shapes(a, b))) <= MAX_SIZE
    except ValueError:
        return False


# --- operations: each returns the expression of a new statement ------------------------

def op_unary(b: Builder) -> str:
    a = b.operand()
    form = b.choices.pick([
        "-{a}", "np.negative({a})", "np.sin({a})", "np.cos({a})", "np.tanh({a})", "nn.tanh({a})",
        "np.square({a})", "{a} ** 2", "{a} ** 3", "nn.sigmoid({a})", "{a}.astype(DTYPE)",
        "{a}.astype(np.float64)", "np.isfinite({a}) * {a}",
    ])
    return form.format(a=a.name)


def op_exp(b: Builder) -> str:
    a = b.operand()
    return b.choices.pick(["np.exp({a})", "np.expm1({a})"]).format(a=b.bounded(a))


def op_domain(b: Builder) -> str:
    """log, sqrt, log1p and powers of positive values."""
    a = b.operand()
    p = b.positive(a)
    form = b.choices.pick(["np.log({p})", "np.sqrt({p})", "np.log1p({p})", "{p} ** 0.5", "{p} ** -1.5",
                           "np.power({p}, {c})", "{p} ** {c}"])
    return form.format(p=p, c=b.literal(-2.0, 2.5))


def op_kink(b: Builder) -> str:
    """abs, sign, relu, elu: away from 0."""
    a = b.operand()
    _require_clear_of(a.value, [0.0])
    return b.choices.pick(["np.abs({a})", "np.sign({a}) * {a}", "nn.relu({a})", "nn.elu({a})"]).format(a=a.name)


def op_binary(b: Builder) -> str:
    a = b.operand()
    other = b.partner(a.value.shape)
    x, y = (a.name, other) if b.choices.chance(70) else (other, a.name)
    form = b.choices.pick(["{x} + {y}", "{x} - {y}", "{x} * {y}", "np.add({x}, {y})", "np.subtract({x}, {y})",
                           "np.multiply({x}, {y})", "np.logaddexp({x}, {y})"])
    return form.format(x=x, y=y)


def op_divide(b: Builder) -> str:
    a = b.operand()
    other = b.partner(a.value.shape)
    if b.choices.chance(50):
        numerator, denominator = other, b.nonzero(a)
    else:
        numerator, denominator = a.name, _nonzero_expr(b, other)
    return b.choices.pick(["{n} / {d}", "np.divide({n}, {d})"]).format(n=numerator, d=denominator)


def _nonzero_expr(b: Builder, expr: str) -> str:
    """`expr` (a name or literal) made at least 0.2 away from 0."""
    var = next((v for v in b.vars if v.name == expr), None)
    if var is not None:
        return b.nonzero(var) if isinstance(var.value, np.ndarray) else f"({expr} * {expr} + 0.5)"
    value = b.eval(expr)
    return expr if np.all(np.abs(value) >= 0.2) else f"({expr} * {expr} + 0.5)"


def op_power(b: Builder) -> str:
    """x ** y with both operands traced: x positive, y moderate."""
    a = b.operand()
    other = b.partner(a.value.shape)
    exponent = f"np.tanh({other})" if re.fullmatch(r"[a-z]\w*", other) else other
    return b.choices.pick(["{p} ** {e}", "np.power({p}, {e})"]).format(p=b.positive(a), e=exponent)


def op_extremum(b: Builder) -> str:
    """np.maximum / np.minimum, away from ties."""
    a = b.operand()
    other = b.partner(a.value.shape)
    _require_far(a.value - b.eval(other), a.value)
    return b.choices.pick(["np.maximum({x}, {y})", "np.minimum({x}, {y})"]).format(x=a.name, y=other)


def op_where(b: Builder) -> str:
    cond = _condition(b)
    if b.choices.chance(30):
        cond = b.choices.pick(["np.logical_and({c}, {d})", "np.logical_or({c}, {d})"]).format(c=cond, d=_condition(b))
    elif b.choices.chance(15):
        cond = f"np.logical_not({cond})"
    shape = np.shape(b.eval(cond))
    x, y = b.partner(shape), b.partner(shape)
    if b.choices.chance(50):  # most often a branch is the latest value
        x = b.body[-1].name if b.body and _broadcasts(shape, b.body[-1].value.shape) else x
    return f"np.where({cond}, {x}, {y})"


def _condition(b: Builder) -> str:
    a = b.operand()
    op = b.choices.pick([">", "<", ">=", "<="])
    if b.choices.chance(60):
        other = b.threshold(a.value)
    else:
        other = b.partner(a.value.shape)
        _require_far(a.value - b.eval(other), a.value)
        if np.any(a.value - b.eval(other) == 0):
            raise Reject("exact tie in a comparison")
    if b.choices.chance(25):
        name = {">": "greater", "<": "less", ">=": "greater_equal", "<=": "less_equal"}[op]
        return f"np.{name}({a.name}, {other})"
    return f"({a.name} {op} {other})"


def op_clip(b: Builder) -> str:
    a = b.operand()
    lo = float(b.threshold(a.value).strip("()"))
    above = a.value[a.value > lo]
    hi = b.threshold(np.append(above, lo)) if above.size else _fmt(lo + 1.0)
    if float(hi.strip("()")) <= lo:
        hi = _fmt(lo + 1.0)
    lo_text, hi_text = b.choices.pick([(_fmt(lo), hi), (_fmt(lo), "None"), ("None", hi)])
    return f"np.clip({a.name}, {lo_text}, {hi_text})"


def _axis(b: Builder, ndim: int, allow_none: bool = True) -> tuple[str, Any]:
    """An axis argument (source, value): None, an int (maybe negative) or a tuple."""
    kinds = (["none"] if allow_none else []) + (["int", "tuple"] if ndim else [])
    kind = b.choices.pick(kinds)
    if kind == "none":
        return "None", None
    if kind == "int":
        axis = b.choices.integer(-ndim, ndim - 1)
        return str(axis), axis
    axes = sorted({b.choices.integer(0, ndim - 1) for _ in range(b.choices.integer(1, ndim))})
    axes = tuple(ax - ndim if b.choices.chance(30) else ax for ax in axes)
    return repr(axes), axes


def op_reduce(b: Builder) -> str:
    """sum / mean / max / min as functions or methods, with axis and keepdims."""
    a = b.operand()
    fn = b.choices.pick(["sum", "mean", "max", "min"])
    axis_text, axis = _axis(b, a.value.ndim)
    if fn in ("max", "min"):
        _require_no_near_ties(a.value if fn == "max" else -a.value, axis)
    args = []
    if axis is not None or b.choices.chance(30):
        args.append(axis_text if b.choices.chance(30) else f"axis={axis_text}")
    if b.choices.chance(35):
        args.append("keepdims=True")
    if b.choices.chance(40):
        return f"{a.name}.{fn}({', '.join(args)})"
    return f"np.{fn}({', '.join([a.name, *args])})"


def _require_no_near_ties(values: np.ndarray, axis: Any) -> None:
    """Reject if, along the reduced axes, a value is within the margin of the maximum
    without being equal to it."""
    top = np.max(values, axis=axis, keepdims=True)
    _require_far(top - values, top)


def op_logsumexp(b: Builder) -> str:
    a = b.operand()
    axis_text, _ = _axis(b, a.value.ndim)
    keepdims = ", keepdims=True" if b.choices.chance(35) else ""
    return f"nn.logsumexp({a.name}, axis={axis_text}{keepdims})"


def op_softmax(b: Builder) -> str:
    a = b.operand(lambda v: v.ndim >= 1)
    axis = b.choices.integer(-a.value.ndim, a.value.ndim - 1)
    return b.choices.pick(["nn.softmax({a}, axis={k})", "nn.log_softmax({a}, axis={k})",
                           "nn.log_softmax({a})"]).format(a=a.name, k=axis)


def op_activation_loss(b: Builder) -> str:
    """The fused losses: softmax_cross_entropy with integer labels or label rows, and
    binary_cross_entropy_with_logits."""
    if b.choices.chance(50):
        z = b.operand(lambda v: v.ndim >= 1)
        target = b.partner(z.value.shape) if b.choices.chance(60) else b.fresh(z.value.shape).name
        return f"nn.binary_cross_entropy_with_logits({z.name}, {target})"
    logits = b.operand(lambda v: v.ndim == 2)
    n, k = logits.value.shape
    if b.choices.chance(60):
        labels = [b.choices.integer(0, k - 1) for _ in range(n)]
        return f"nn.softmax_cross_entropy({logits.name}, np.array({labels}))"
    rows = b.choices.pick([v for v in b.arrays if np.shape(v.value) == (n, k)] + [b.fresh((n, k))])
    return f"nn.softmax_cross_entropy({logits.name}, {rows.name})"


def op_matmul(b: Builder) -> str:
    a = b.operand(lambda v: v.ndim >= 1)
    left = b.choices.chance(60)
    form = b.choices.pick(["{x} @ {y}", "np.matmul({x}, {y})", "np.dot({x}, {y})", "np.outer({x}, {y})"])
    if "outer" in form:
        other = b.operand()
        x, y = (a.name, other.name) if left else (other.name, a.name)
        return form.format(x=x, y=y)
    max_dims = 2 if "dot" in form else 4
    if a.value.ndim > max_dims:
        raise Reject("dot of a >2-D array")
    shape = _matmul_partner_shape(b, a.value.shape, left, max_dims)
    fits = lambda v: _matmul_ok(a.value.shape, v.shape, left) and v.ndim <= max_dims  # noqa: E731
    existing = [v for v in b.arrays if fits(v.value)]
    other = b.choices.pick(existing) if existing and b.choices.chance(40) else b.fresh(shape)
    x, y = (a.name, other.name) if left else (other.name, a.name)
    return form.format(x=x, y=y)


def _matmul_partner_shape(b: Builder, shape: tuple[int, ...], left: bool, max_dims: int) -> tuple[int, ...]:
    """A shape S such that `a @ S` (left) or `S @ a` is valid for `a` of `shape`."""
    inner = shape[-1] if left else (shape[-2] if len(shape) >= 2 else shape[0])
    other = b.choices.integer(1, 4)
    kind = b.choices.pick(["vector", "matrix", "batched"][: 2 if max_dims == 2 else 3])
    if kind == "vector":
        return (inner,)
    matrix = (inner, other) if left else (other, inner)
    if kind == "matrix":
        return matrix
    batch = b.related_shape(shape[:-2]) if len(shape) > 2 else (b.choices.integer(1, 3),)
    return batch[-2:] + matrix


def _matmul_ok(a: tuple[int, ...], other: tuple[int, ...], left: bool) -> bool:
    x, y = (a, other) if left else (other, a)
    try:
        np.matmul(np.zeros(x), np.zeros(y))
        return True
    except ValueError:
        return False


def op_reshape(b: Builder) -> str:
    a = b.operand()
    shape = _factorization(b, a.value.size)
    if shape and b.choices.chance(30):
        shape[b.choices.integer(0, len(shape) - 1)] = -1
    text = repr(tuple(shape))
    return b.choices.pick(["{a}.reshape({s})", "np.reshape({a}, {s})", "{a}.reshape({s})"]).format(
        a=a.name, s=text if len(shape) != 1 or b.choices.chance(50) else str(shape[0]))


def _factorization(b: Builder, size: int) -> list[int]:
    """Random dims with product `size`, size-1 dims included."""
    ndim = b.choices.integer(0 if size == 1 else 1, 4)
    if ndim == 0:
        return []
    dims = [1] * ndim
    for prime in (2, 3, 5, 7, 11, 13):
        while size % prime == 0:
            size //= prime
            dims[b.choices.integer(0, ndim - 1)] *= prime
    dims[0] *= size
    return dims


def op_transpose(b: Builder) -> str:
    a = b.operand()
    ndim = a.value.ndim
    perm = list(range(ndim))
    for i in range(ndim - 1, 0, -1):
        j = b.choices.integer(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    forms = ["{a}.T", "np.transpose({a})", "np.transpose({a}, {p})", "{a}.transpose({p})"]
    if ndim:
        forms.append("np.swapaxes({a}, {i}, {j})")
    i, j = (b.choices.integer(-ndim, ndim - 1) for _ in range(2)) if ndim else (0, 0)
    return b.choices.pick(forms).format(a=a.name, p=tuple(perm), i=i, j=j)


def op_dims(b: Builder) -> str:
    """expand_dims, squeeze, ravel, broadcast_to."""
    a = b.operand()
    shape = a.value.shape
    kind = b.choices.pick(["expand_dims", "squeeze", "ravel", "broadcast_to"])
    if kind == "expand_dims":
        if b.choices.chance(30):
            axes = tuple(sorted({b.choices.integer(0, len(shape) + 1) for _ in range(2)}))
            return f"np.expand_dims({a.name}, {axes})"
        return f"np.expand_dims({a.name}, {b.choices.integer(-len(shape) - 1, len(shape))})"
    if kind == "squeeze":
        ones = [i for i, d in enumerate(shape) if d == 1]
        if ones and b.choices.chance(60):
            axis = b.choices.pick(ones)
            return f"np.squeeze({a.name}, axis={axis - len(shape) if b.choices.chance(30) else axis})"
        return f"np.squeeze({a.name})"
    if kind == "ravel":
        return f"np.ravel({a.name})"
    target = tuple(b.choices.integer(2, 3) if d == 1 and b.choices.chance(60) else d for d in shape)
    target = tuple(b.choices.integer(1, 3) for _ in range(b.choices.integer(0, 2))) + target
    return f"np.broadcast_to({a.name}, {target})"


def op_join(b: Builder) -> str:
    """concatenate and stack of two or three operands."""
    a = b.operand()
    shape = a.value.shape
    stack = not shape or b.choices.chance(40)
    axis = b.choices.integer(-len(shape) - stack, len(shape) - 1 + stack)
    parts = [a.name]
    for _ in range(b.choices.integer(1, 2)):
        need = list(shape)
        if not stack:
            need[axis] = b.choices.integer(1, 3)
        same = [v for v in b.arrays if np.shape(v.value) == tuple(need)]
        parts.append(b.choices.pick(same).name if same and b.choices.chance(60) else b.fresh(tuple(need)).name)
    seq = f"[{', '.join(parts)}]" if b.choices.chance(60) else f"({', '.join(parts)})"
    fn = "np.stack" if stack else "np.concatenate"
    axis_text = "" if axis == 0 and b.choices.chance(40) else f", axis={axis}"
    return f"{fn}({seq}{axis_text})"


def op_index(b: Builder) -> str:
    a = b.operand()
    parts = [_index_part(b, n) for n in a.value.shape]
    if parts and b.choices.chance(40):
        while parts and parts[-1] == ":":
            parts.pop()
    for _ in range(b.choices.integer(0, 2) if b.choices.chance(30) else 0):
        parts.insert(b.choices.integer(0, len(parts)), "None")
    if b.choices.chance(25):
        start = b.choices.integer(0, len(parts))
        stop = b.choices.integer(start, len(parts))
        if all(p in (":", "None") for p in parts[start:stop]) or start == stop:
            parts[start:stop] = [p for p in parts[start:stop] if p == "None"] + ["..."]
    if not parts:
        parts = [b.choices.pick(["()", "...", "None"])]
        return f"{a.name}[{parts[0]}]"
    return f"{a.name}[{', '.join(parts)}]"


def _index_part(b: Builder, n: int) -> str:
    kind = b.choices.weighted([(3, "all"), (3, "int"), (3, "slice"), (2, "array"), (1, "computed")])
    if kind == "int":
        return str(b.choices.integer(-n, n - 1))
    if kind == "computed":
        return _computed_index(b, n)
    if kind == "array":
        idx = [b.choices.integer(-n, n - 1) for _ in range(b.choices.integer(1, 4))]
        return f"np.array({idx})" if b.choices.chance(50) else repr(idx)
    if kind == "slice":
        step = b.choices.pick([1, 2, -1, -2, 3, None])
        start = b.choices.pick([None, b.choices.integer(-n, n - 1)])
        stop = b.choices.pick([None, b.choices.integer(-n - 1, n)])
        if len(range(n)[slice(start, stop, step)]):
            text = f"{'' if start is None else start}:{'' if stop is None else stop}"
            return text + ("" if step is None else f":{step}")
    return ":"


def _computed_index(b: Builder, n: int) -> str:
    """An integer array computed from a small traced value, a margin away from the
    steps of floor/round/`//`: shifted by one, then brought into range by np.mod or
    np.clip, or made negative (NumPy indexes from the end)."""
    v = b.operand(lambda value: 1 <= value.size <= 4)
    data = f"{v.name} * 2.0" if v.value.ndim == 1 else f"np.ravel({v.name}) * 2.0"
    raw = b.choices.pick(["np.floor({x}).astype(int)", "np.round({x}).astype(int)", "({x} // 1).astype(int)"])
    _require_off_steps(v.value * 2.0, offset=0.5 if "round" in raw else 0.0)
    index = raw.format(x=data) + b.choices.pick(["", " + 1"])
    into = b.choices.pick(["np.mod({i}, {n})", "np.clip({i}, 0, {last})", "np.mod({i}, {n}) - {n}", "{i} % {n}"])
    return into.format(i=index, n=n, last=n - 1)


# --- more of NumPy: elementwise ---------------------------------------------------------

def _require_off_steps(values: Any, period: float = 1.0, offset: float = 0.0) -> None:
    """Reject unless every value is a margin away from each step `offset + k * period`
    (exact hits included)."""
    v = np.asarray(values, dtype=np.float64)
    q = (v - offset) / period
    if np.any(np.abs(q - np.round(q)) * period < _margin(v)):
        raise Reject("near a step")


def _require_clear_of_zero(values: Any) -> None:
    """Reject values within a margin of 0, exact zeros included (signed zeros differ)."""
    if np.any(np.abs(np.asarray(values, dtype=np.float64)) < 1e-3):
        raise Reject("near zero")


def _inside(b: Builder, var: Var, limit: float) -> str:
    """`var`, or a squashed form of it, with |values| < limit."""
    if np.abs(var.value).max() < limit and b.choices.chance(60):
        return var.name
    return b.choices.pick(["({l} * np.tanh({a}))", "({l} * np.sin({a}))"]).format(l=limit, a=var.name)


def op_unary_more(b: Builder) -> str:
    """tan, the inverse trigonometric and hyperbolic functions, log2/log10/exp2, cbrt,
    reciprocal, sinc, fabs, deg2rad: each on an argument inside its domain."""
    a = b.operand()
    fn = b.choices.pick(["tan", "arcsin", "arccos", "arctanh", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
                         "log2", "log10", "exp2", "cbrt", "reciprocal", "sinc", "fabs", "deg2rad"])
    if fn == "tan":
        arg = _inside(b, a, 1.2)
    elif fn in ("arcsin", "arccos", "arctanh"):
        arg = _inside(b, a, 0.9)
    elif fn in ("sinh", "cosh", "exp2"):
        arg = b.bounded(a)
    elif fn == "arccosh":
        arg = a.name if a.value.min() > 1.1 and b.choices.chance(50) else f"(1.1 + {b.positive(a)})"
    elif fn in ("log2", "log10"):
        arg = b.positive(a)
    elif fn in ("cbrt", "reciprocal"):
        arg = b.nonzero(a)
    elif fn == "fabs":
        _require_clear_of_zero(a.value)
        arg = a.name
    else:
        arg = a.name
    return f"np.{fn}({arg})"


def op_binary_more(b: Builder) -> str:
    """hypot, arctan2, logaddexp2, fmax/fmin, copysign, float_power, %, remainder,
    fmod and // (away from their discontinuities)."""
    a = b.operand()
    other = b.partner(a.value.shape)
    x, y = (a.name, other) if b.choices.chance(70) else (other, a.name)
    fn = b.choices.pick(["hypot", "arctan2", "logaddexp2", "fmax", "fmin", "copysign", "float_power",
                         "%", "remainder", "fmod", "//"])
    if fn in ("fmax", "fmin"):
        _require_far(b.eval(x) - b.eval(y), b.eval(x))
    elif fn == "hypot":
        if np.any(np.hypot(b.eval(x), b.eval(y)) < 0.2):
            raise Reject("near the origin")
    elif fn == "arctan2":
        yv, xv = b.eval(x), b.eval(y)  # np.arctan2(x1, x2): angle of the point (x2, x1)
        if np.any(np.hypot(xv, yv) < 0.2) or np.any((xv < 0) & (np.abs(yv) < 1e-2)):
            raise Reject("near the origin or the branch cut")
    elif fn == "copysign":
        _require_clear_of_zero(b.eval(x))
        _require_clear_of_zero(b.eval(y))
    elif fn == "float_power":
        x = b.positive(a)
        y = f"np.tanh({other})" if re.fullmatch(r"[a-z]\w*", other) else other
    elif fn in ("%", "remainder", "fmod", "//"):
        y = _nonzero_expr(b, y)
        _require_off_steps(b.eval(x) / b.eval(y))
    if fn == "%":
        return f"{x} % {y}"
    if fn == "//":
        return f"{x} // {y}" + (f" + {a.name}" if b.choices.chance(50) else "")
    return f"np.{fn}({x}, {y})"


def op_steps(b: Builder) -> str:
    """Piecewise-constant functions (zero gradient), away from their steps."""
    a = b.operand()
    fn = b.choices.pick(["floor", "ceil", "trunc", "fix", "rint", "round", "round1", "heaviside", "sign", "floordiv"])
    if fn in ("floor", "ceil", "trunc", "fix"):
        _require_off_steps(a.value)
        expr = f"np.{fn}({a.name})"
    elif fn in ("rint", "round"):
        _require_off_steps(a.value, 1.0, 0.5)
        expr = b.choices.pick([f"np.{fn}({a.name})", f"np.around({a.name})", f"{a.name}.round()"]) if fn == "round" \
            else f"np.rint({a.name})"
    elif fn == "round1":
        _require_off_steps(a.value, 0.1, 0.05)
        expr = b.choices.pick([f"np.round({a.name}, 1)", f"{a.name}.round(1)"])
    elif fn in ("heaviside", "sign"):
        _require_clear_of_zero(a.value)
        expr = f"np.heaviside({a.name}, 0.5)" if fn == "heaviside" else f"np.sign({a.name})"
    else:
        c = b.choices.pick([0.3, 0.75, 1.5, -0.5])
        _require_off_steps(a.value / c)
        expr = f"{a.name} // {_fmt(c)}"
    form = b.choices.pick(["{e}", "{a} * {e}", "{e} + {a}", "np.sin({a}) * {e}"])
    return form.format(e=expr, a=a.name)


# --- more of NumPy: reductions, scans, sorts --------------------------------------------

def _reduced(values: np.ndarray, axis: Any) -> np.ndarray:
    """`values` with the reduced axes moved last and flattened: (rest..., count)."""
    if axis is None:
        return values.reshape(1, -1)
    axes = tuple(a % values.ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    moved = np.moveaxis(values, axes, tuple(range(-len(axes), 0)))
    return moved.reshape(moved.shape[:values.ndim - len(axes)] + (-1,))


def _require_distinct(values: np.ndarray, axis: Any, b: Optional[Builder] = None) -> None:
    """Reject near-ties along the reduced axes (median and sort are smooth without).
    Exact ties pass (structurally equal operands stay tied when an input moves), unless
    the program holds an input at a branch point (`b.branch_points`): its exact zero
    can tie values only at that point (`np.outer` of it spreads zeros over a column),
    where the one-sided reference follows one of them."""
    rows = np.sort(_reduced(values, axis), axis=-1)
    _require_far(np.diff(rows, axis=-1), rows[..., 1:])
    if b is not None and b.branch_points and np.any(np.diff(rows, axis=-1) == 0):
        raise Reject("a tie beside a branch point")


def _keepdims(b: Builder) -> str:
    return ", keepdims=True" if b.choices.chance(35) else ""


def op_statistics(b: Builder) -> str:
    """prod, var/std (ddof 0/1), nansum, nanmean, ptp, amax/amin, nanmax/nanmin, average."""
    a = b.operand()
    fn = b.choices.pick(["prod", "var", "std", "nansum", "nanmean", "ptp", "amax", "amin", "nanmax", "nanmin",
                         "average"])
    axis_text, axis = _axis(b, a.value.ndim)
    keep = _keepdims(b)
    if fn in ("amax", "nanmax", "ptp"):
        _require_no_near_ties(a.value, axis)
    if fn in ("amin", "nanmin", "ptp"):
        _require_no_near_ties(-a.value, axis)
    if fn in ("var", "std"):
        ddof = b.choices.integer(0, 1)
        if _reduced(a.value, axis).shape[-1] <= ddof:
            raise Reject("ddof")
        if fn == "std" and np.min(np.var(a.value, axis=axis, ddof=ddof)) < 1e-2:
            raise Reject("std near 0")
        extra = f", ddof={ddof}" if ddof or b.choices.chance(30) else ""
        if b.choices.chance(40):
            return f"{a.name}.{fn}(axis={axis_text}{extra}{keep})"
        return f"np.{fn}({a.name}, axis={axis_text}{extra}{keep})"
    if fn == "average":
        return _average(b, a, axis_text, axis, keep)
    if fn == "prod" and b.choices.chance(30):
        return f"{a.name}.prod(axis={axis_text}{keep})"
    return f"np.{fn}({a.name}, axis={axis_text}{keep})"


def _average(b: Builder, a: Var, axis_text: str, axis: Any, keep: str) -> str:
    if b.choices.chance(25):
        return f"np.average({a.name}, axis={axis_text}{keep})"
    shape = a.value.shape
    if isinstance(axis, int) and b.choices.chance(50):
        shape = (shape[axis],)
    if b.choices.chance(30):
        weights = repr([round(0.5 + 0.5 * b.choices.integer(0, 4), 1) for _ in range(int(np.prod(shape)))])
        weights = f"np.reshape({weights}, {shape})" if len(shape) != 1 else weights
    else:
        same = [v for v in b.arrays if v.value.shape == shape]
        w = b.choices.pick(same) if same and b.choices.chance(50) else b.fresh(shape)
        weights = b.positive(w)
    return f"np.average({a.name}, axis={axis_text}, weights={weights}{keep})"


def op_scan(b: Builder) -> str:
    """cumsum and cumprod along an axis or over the flattened array."""
    a = b.operand()
    fn = b.choices.pick(["cumsum", "cumprod"])
    if a.value.ndim == 0 or b.choices.chance(20):
        return f"np.{fn}({a.name})"
    axis = b.choices.integer(-a.value.ndim, a.value.ndim - 1)
    if b.choices.chance(40):
        return f"{a.name}.{fn}({axis})"
    return f"np.{fn}({a.name}, axis={axis})"


def op_order(b: Builder) -> str:
    """median (odd and even counts) and sort, away from ties."""
    a = b.operand()
    if b.choices.chance(50):
        axis_text, axis = _axis(b, a.value.ndim)
        _require_distinct(a.value, axis, b)
        return f"np.median({a.name}, axis={axis_text}{_keepdims(b)})"
    if a.value.ndim == 0:
        raise Reject("sort of a 0-d array")
    if b.choices.chance(20):
        _require_distinct(a.value, None, b)
        return f"np.sort({a.name}, axis=None)"
    axis = b.choices.integer(-a.value.ndim, a.value.ndim - 1)
    _require_distinct(a.value, axis, b)
    form = b.choices.pick(["np.sort({a}, axis={k})", "np.sort({a}, {k})", "-np.sort(-{a}, axis={k})",
                           "np.sort({a}, axis={k}, kind='stable')"])
    return form.format(a=a.name, k=axis)


# --- more of NumPy: contractions and linalg ---------------------------------------------

def op_einsum(b: Builder) -> str:
    """np.einsum with random valid subscripts built from the operands' ranks: matrix
    products, batches, traces and diagonals ('ii'), outer products, sums over axes,
    transposes, and an ellipsis for leading axes."""
    a = b.operand(lambda v: 1 <= v.ndim <= 3)
    shape = a.value.shape
    letters = iter("ijklmnopq")
    subs, sizes = [], {}
    for d in shape:  # a repeated letter where two axes have the same length: a diagonal
        same = [c for c in subs if sizes[c] == d and subs.count(c) == 1]
        if same and b.choices.chance(30):
            subs.append(b.choices.pick(same))
        else:
            c = next(letters)
            sizes[c] = d
            subs.append(c)
    if len(shape) >= 3 and b.choices.chance(25):  # batched matrix product over an ellipsis
        other = b.fresh(b.related_shape(shape[:-2]) + (shape[-1], b.choices.integer(1, 3)))
        return f"np.einsum('...ij,...jk->...ik', {a.name}, {other.name})"
    operands = [(a.name, subs)]
    for _ in range(b.choices.weighted([(3, 0), (5, 1), (1, 2)])):
        mine = [c for c in dict.fromkeys(subs) if b.choices.chance(50)]
        for _ in range(b.choices.integer(0 if mine else 1, 2)):
            c = next(letters)
            sizes[c] = b.choices.integer(1, 3)
            mine.append(c)
        perm = _permutation(b, len(mine))
        mine = [mine[p] for p in perm]
        need = tuple(sizes[c] for c in mine)
        same = [v for v in b.arrays if v.value.shape == need]
        var = b.choices.pick(same) if same and b.choices.chance(40) else b.fresh(need)
        operands.append((var.name, mine))
    all_letters = list(dict.fromkeys(c for _, s in operands for c in s))
    inputs = ",".join("".join(s) for _, s in operands)
    if b.choices.chance(30):
        spec = inputs  # implicit output: letters used once, in alphabetical order
    else:
        out = [c for c in all_letters if b.choices.chance(50)]
        spec = f"{inputs}->{''.join(out[p] for p in _permutation(b, len(out)))}"
    return f"np.einsum('{spec}', {', '.join(n for n, _ in operands)})"


def _permutation(b: Builder, n: int) -> list[int]:
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = b.choices.integer(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def op_contract(b: Builder) -> str:
    """tensordot, inner, vdot, kron, cross, convolve, trace, diagonal, diag, tril, triu."""
    fn = b.choices.pick(["tensordot", "inner", "vdot", "kron", "cross", "convolve", "trace", "diagonal", "diag",
                         "tril", "triu"])
    if fn == "tensordot":
        a = b.operand(lambda v: v.ndim <= 3)
        count = b.choices.integer(0, min(2, a.value.ndim))
        shape = a.value.shape[a.value.ndim - count:] + tuple(b.choices.integer(1, 3) for _ in range(b.choices.integer(0, 2)))
        other = _existing_or_fresh(b, shape)
        if count and b.choices.chance(40):
            axes = (list(range(a.value.ndim - count, a.value.ndim)), list(range(count)))
            return f"np.tensordot({a.name}, {other}, axes={axes})"
        return f"np.tensordot({a.name}, {other}, axes={count})" if b.choices.chance(70) or count != 2 else \
            f"np.tensordot({a.name}, {other})"
    if fn == "inner":
        a = b.operand(lambda v: 1 <= v.ndim <= 2)
        shape = tuple(b.choices.integer(1, 3) for _ in range(b.choices.integer(0, 1))) + a.value.shape[-1:]
        return f"np.inner({a.name}, {_existing_or_fresh(b, shape)})"
    if fn == "vdot":
        a = b.operand()
        return f"np.vdot({a.name}, {_existing_or_fresh(b, a.value.shape)})"
    if fn == "kron":
        a = b.operand(lambda v: v.size <= 12)
        shape = tuple(b.choices.integer(1, 3) for _ in range(b.choices.integer(1, 2)))
        return f"np.kron({a.name}, {_existing_or_fresh(b, shape)})"
    if fn == "cross":
        a = b.operand(lambda v: v.ndim >= 1 and v.shape[-1] == 3)
        return f"np.cross({a.name}, {_existing_or_fresh(b, b.related_shape(a.value.shape[:-1]) + (3,))})"
    if fn == "convolve":
        a = b.operand(lambda v: v.ndim == 1)
        mode = b.choices.pick(["full", "same", "valid"])
        return f"np.convolve({a.name}, {_existing_or_fresh(b, (b.choices.integer(1, 4),))}, mode='{mode}')"
    if fn in ("tril", "triu"):
        a = b.operand(lambda v: v.ndim >= 1)
        return f"np.{fn}({a.name}, {b.choices.integer(-2, 2)})"
    if fn == "diag":
        a = b.operand(lambda v: 1 <= v.ndim <= 2)
        return f"np.diag({a.name}, {b.choices.integer(-1, 1)})"
    a = b.operand(lambda v: v.ndim >= 2)
    ndim = a.value.ndim
    axis1 = b.choices.integer(0, ndim - 1)
    axis2 = b.choices.pick([k for k in range(ndim) if k != axis1])
    offset = b.choices.integer(-1, 1)
    if b.choices.chance(40):
        return f"np.{fn}({a.name}, {offset})"
    if fn == "diagonal" and b.choices.chance(40):
        return f"{a.name}.diagonal({offset}, {axis1}, {axis2})"
    return f"np.{fn}({a.name}, {offset}, axis1={axis1}, axis2={axis2 - ndim if b.choices.chance(30) else axis2})"


def _existing_or_fresh(b: Builder, shape: tuple[int, ...]) -> str:
    same = [v for v in b.arrays if v.value.shape == tuple(shape)]
    return (b.choices.pick(same) if same and b.choices.chance(50) else b.fresh(tuple(shape))).name


def _square(b: Builder) -> str:
    """A well-conditioned (batch of) square matrix, built inside the program."""
    a = b.operand(lambda v: 1 <= v.ndim <= 3)
    shape = a.value.shape
    kind = b.choices.pick(["gram", "dominant"])
    if kind == "dominant" and len(shape) >= 2 and shape[-1] == shape[-2]:
        n = shape[-1]
        expr = f"(np.tanh({a.name}) + {float(n + 1)} * np.eye({n}))"
    else:
        if len(shape) == 1:
            a = Var(f"{a.name}[:, None]", a.value[:, None])
        n = a.value.shape[-2]
        t = f"{a.name}.T" if a.value.ndim == 2 and b.choices.chance(50) else f"np.swapaxes({a.name}, -1, -2)"
        scale = b.choices.pick([1.0, 2.0, 3.0])
        expr = f"({a.name} @ {t} + {scale} * np.eye({n}))"
    matrix = b.eval(expr)
    if np.max(np.linalg.cond(matrix)) > 30 or np.abs(matrix).max() > MAX_MAGNITUDE:
        raise Reject("ill-conditioned")
    return expr


def op_linalg(b: Builder) -> str:
    """inv, solve, det, slogdet, matrix_power and cholesky of well-conditioned matrices."""
    fn = b.choices.pick(["inv", "solve", "det", "slogdet", "matrix_power", "cholesky"])
    if fn == "matrix_power" and b.choices.chance(40):  # a nonnegative power of any square operand
        a = b.operand(lambda v: v.ndim >= 2 and v.shape[-1] == v.shape[-2])
        return f"np.linalg.matrix_power({a.name}, {b.choices.integer(0, 3)})"
    m = _square(b)
    n = b.eval(m).shape[-1]
    batch = b.eval(m).shape[:-2]
    if fn == "solve":
        shape = (n,) if b.choices.chance(40) else batch + (n, b.choices.integer(1, 3))
        return f"np.linalg.solve({m}, {_existing_or_fresh(b, shape)})"
    if fn == "slogdet":
        return b.choices.pick([f"np.linalg.slogdet({m})[1]", f"np.linalg.slogdet({m}).logabsdet",
                               f"np.linalg.slogdet({m})[0] * np.linalg.slogdet({m})[1]"])
    if fn == "matrix_power":
        return f"np.linalg.matrix_power({m}, {b.choices.integer(-2, 3)})"
    if fn == "cholesky" and "eye" in m and "tanh" in m:
        raise Reject("cholesky of a non-symmetric matrix")
    return f"np.linalg.{fn}({m})"


def op_norm(b: Builder) -> str:
    """np.linalg.norm: vector 2-, 1- and inf-norms, Frobenius, away from kinks."""
    a = b.operand(lambda v: v.ndim >= 1)
    ndim = a.value.ndim
    ord_ = b.choices.pick([None, 2, 1, "np.inf", "'fro'"])
    keep = _keepdims(b)
    if ord_ == "'fro'":
        if ndim < 2:
            raise Reject("fro of a vector")
        axis, axis_text = (-2, -1), b.choices.pick(["(-2, -1)", f"({ndim - 2}, {ndim - 1})", "(-1, -2)"])
    elif ord_ is None and b.choices.chance(30):
        axis, axis_text = None, None
    else:
        axis = b.choices.integer(-ndim, ndim - 1)
        axis_text = str(axis)
    values = _reduced(a.value, axis)
    if np.min(np.sqrt(np.sum(values ** 2, axis=-1))) < 0.1:
        raise Reject("norm near 0")
    if ord_ == 1:
        _require_clear_of_zero(values)
    if ord_ == "np.inf":
        _require_no_near_ties(np.abs(values), -1)
    args = [a.name]
    if ord_ is not None:
        args.append(str(ord_) if b.choices.chance(50) else f"ord={ord_}")
    if axis_text is not None:
        args.append(f"axis={axis_text}")
    return f"np.linalg.norm({', '.join(args)}{keep if axis_text is not None else ''})"


# --- more of NumPy: shapes ---------------------------------------------------------------

def op_shape_more(b: Builder) -> str:
    """tile, repeat, pad (constant/edge/reflect/symmetric/wrap), flip, rot90, roll,
    moveaxis, atleast_Nd."""
    a = b.operand()
    shape, ndim = a.value.shape, a.value.ndim
    fn = b.choices.pick(["tile", "repeat", "pad", "flip", "roll", "moveaxis", "atleast", "rot90"])
    axis = b.choices.integer(-ndim, ndim - 1) if ndim else None
    if fn == "tile":
        reps = b.choices.integer(1, 3) if b.choices.chance(40) else \
            tuple(b.choices.integer(1, 3) for _ in range(b.choices.integer(1, 3)))
        return f"np.tile({a.name}, {reps})"
    if fn == "repeat":
        if axis is None or b.choices.chance(25):
            return f"np.repeat({a.name}, {b.choices.integer(1, 3)})"
        if b.choices.chance(50):
            counts = [b.choices.integer(0, 3) for _ in range(shape[axis])]
            return f"np.repeat({a.name}, {counts}, axis={axis})"
        return f"{a.name}.repeat({b.choices.integer(1, 3)}, {axis})"
    if fn == "pad":
        if not ndim:
            raise Reject("pad of a 0-d array")
        mode = b.choices.pick(["constant", "edge", "reflect", "symmetric", "wrap"])
        if b.choices.chance(40):
            widths = repr(b.choices.integer(1, 2))
        else:
            widths = repr(tuple((b.choices.integer(0, 2), b.choices.integer(0, 2)) for _ in shape))
        if mode == "constant":
            extra = b.choices.pick(["", f", constant_values={b.literal()}"])
            return f"np.pad({a.name}, {widths}{extra})"
        return f"np.pad({a.name}, {widths}, mode='{mode}')"
    if fn == "atleast":
        return f"np.atleast_{b.choices.integer(1, 3)}d({a.name})"
    if axis is None:
        raise Reject("needs an axis")
    if fn == "flip":
        return b.choices.pick([f"np.flip({a.name})", f"np.flip({a.name}, {axis})", f"np.flip({a.name}, axis=({axis},))",
                               f"np.flipud({a.name})"] + ([f"np.fliplr({a.name})"] if ndim >= 2 else []))
    if fn == "roll":
        shift = b.choices.integer(-4, 4)
        return b.choices.pick([f"np.roll({a.name}, {shift})", f"np.roll({a.name}, {shift}, axis={axis})"])
    if fn == "moveaxis":
        return f"np.moveaxis({a.name}, {axis}, {b.choices.integer(-ndim, ndim - 1)})"
    if ndim < 2:
        raise Reject("rot90 of a vector")
    return f"np.rot90({a.name}, {b.choices.integer(-1, 2)})"


def op_stack_split(b: Builder) -> str:
    """hstack, vstack, dstack, column_stack, append, diff, split and array_split."""
    a = b.operand()
    shape, ndim = a.value.shape, a.value.ndim
    fn = b.choices.pick(["hstack", "vstack", "dstack", "column_stack", "append", "diff", "split"])
    if fn in ("hstack", "vstack", "dstack", "column_stack", "append"):
        target = list(shape)
        axis = {"hstack": 1 if ndim >= 2 else 0, "vstack": 0, "dstack": 2, "column_stack": 1, "append": 0}[fn]
        if axis < ndim and b.choices.chance(60):
            target[axis] = b.choices.integer(1, 3)
        other = _existing_or_fresh(b, tuple(target))
        if fn == "append":
            return f"np.append({a.name}, {other}" + (f", axis={axis})" if ndim and b.choices.chance(60) else ")")
        seq = f"[{a.name}, {other}]" if b.choices.chance(60) else f"({other}, {a.name})"
        return f"np.{fn}({seq})"
    if not ndim:
        raise Reject("needs an axis")
    axis = b.choices.integer(-ndim, ndim - 1)
    length = shape[axis]
    if fn == "diff":
        n = b.choices.integer(1, 2)
        extra = b.choices.pick(["", f", prepend={b.literal()}", f", append={b.literal()}"])
        return f"np.diff({a.name}, {n}, axis={axis}{extra})"
    if b.choices.chance(50):
        sections = b.choices.pick([d for d in range(1, length + 1) if length % d == 0])
        k = b.choices.integer(0, sections - 1)
        if b.choices.chance(30):
            return f"np.concatenate(np.split({a.name}, {sections}, axis={axis})[::-1], axis={axis})"
        return f"np.split({a.name}, {sections}, axis={axis})[{k}]"
    points = sorted(b.choices.integer(0, length) for _ in range(b.choices.integer(1, 2)))
    pieces = [p for p in np.split(np.arange(length), points)]
    k = b.choices.pick([i for i, p in enumerate(pieces) if p.size])
    return f"np.array_split({a.name}, {points}, axis={axis})[{k}]"


def op_take(b: Builder) -> str:
    """take and take_along_axis with constant integer arrays (repeats included)."""
    a = b.operand(lambda v: v.ndim >= 1)
    shape, ndim = a.value.shape, a.value.ndim
    axis = b.choices.integer(-ndim, ndim - 1)
    length = shape[axis]
    if b.choices.chance(50):
        picks = [b.choices.integer(-length, length - 1) for _ in range(b.choices.integer(1, 5))]
        form = b.choices.pick(["np.take({a}, np.array({p}), axis={k})", "np.take({a}, {p}, axis={k})",
                               "{a}.take({p}, {k})", "np.take({a}, {i}, axis={k})", "np.take({a}, {p})"])
        flat = [b.choices.integer(-a.value.size, a.value.size - 1) for _ in picks]
        return form.format(a=a.name, p=flat if form.endswith("{p})") else picks, k=axis, i=picks[0])
    if b.choices.chance(20):
        flat = [b.choices.integer(0, a.value.size - 1) for _ in range(b.choices.integer(1, 6))]
        return f"np.take_along_axis({a.name}, np.array({flat}), axis=None)"
    index_shape = [b.choices.pick([1, d]) for d in shape]
    index_shape[axis] = b.choices.integer(1, 4)
    indices = np.array([b.choices.integer(-length, length - 1) for _ in range(int(np.prod(index_shape)))])
    text = repr(indices.reshape(index_shape).tolist())
    return f"np.take_along_axis({a.name}, np.array({text}), axis={axis})"


# --- assignment -------------------------------------------------------------------------

def op_assign(b: Builder) -> list[str]:
    """A new array (a copy, or zeros/ones like a value), then one or two writes into it:
    basic and integer-array indices (repeats: the last write wins), masks, `=` and the
    augmented operators."""
    a = b.operand(lambda v: v.ndim >= 1)
    base = b.choices.pick(["{a}.copy()", "np.copy({a})", "np.zeros_like({a})", "np.ones_like({a})", "{a} * 1.0"])
    lines = ["{out} = " + base.format(a=a.name)]
    for _ in range(b.choices.weighted([(3, 1), (1, 2)])):
        if b.choices.chance(20):  # a traced mask takes one value, written with `=`
            index = f"{a.name} {b.choices.pick(['>', '<'])} {b.threshold(a.value)}"
            value = b.choices.pick([b.literal(), b.scalar_input().name])
            lines.append(f"{{out}}[{index}] = {value}")
            continue
        parts = [_index_part(b, n) for n in a.value.shape]
        if b.choices.chance(30):
            parts[0] = b.choices.pick(["1:", ":-1", "::2"]) if a.value.shape[0] > 1 else parts[0]
        index = ", ".join(parts)
        target = b.eval(f"np.empty({a.value.shape})[{index}]").shape
        op = b.choices.weighted([(4, "="), (3, "+="), (1, "-="), (1, "*="), (1, "/=")])
        value = b.partner(b.related_shape(target) if target else ())
        if b.choices.chance(30) and any(v.name == value for v in b.arrays):
            value = f"np.sin({value})"
        if op == "/=":
            value = f"({value} * {value} + 0.5)"
        lines.append(f"{{out}}[{index}] {op} {value}")
    return lines


# --- ints, Generators, and np.where with a NaN in the discarded branch -------------------

def op_int(b: Builder) -> str:
    """A Python int argument in arithmetic (traced) or where its value is needed (a
    range, a shape, a repeat count, a slice bound: static)."""
    n = b.int_input().name
    a = b.operand()
    ndim = a.value.ndim
    axis = b.choices.integer(-ndim, ndim - 1) if ndim else None
    forms = ["{a} * {n}", "{n} * {a} + {a}", "{a} / {n}", "{a} ** {n}", "{a} - {n}", "np.tile({a}, {n})",
             "sum({a} * k for k in range({n}))", "np.ones(({n},) + {a}.shape, dtype=DTYPE) * {a}",
             "np.arange({n}, dtype=DTYPE).reshape(({n},) + (1,) * {a}.ndim) * {a}"]
    if axis is not None:
        forms += ["np.repeat({a}, {n}, axis={k})", "np.roll({a}, {n}, axis={k})", "{a}[:{n}]",
                  "np.diff({a}, {n} - 1, axis={k})", "np.pad({a}, {n} - 1)"]
    return b.choices.pick(forms).format(a=a.name, n=n, k=axis)


def op_random(b: Builder) -> str:
    """Draws from a `np.random.Generator` argument: dropout masks and noise."""
    a = b.operand()
    rng = b.generator_input().name
    shape = a.value.shape if b.choices.chance(70) else b.related_shape(a.value.shape)
    p = b.choices.pick([0.5, 0.8])
    forms = ["np.where({r}.random({s}) < {p}, {a} / {p}, 0.0)", "{a} * ({r}.random({s}) < {p})",
             "{a} + 0.1 * {r}.standard_normal({s}).astype(DTYPE)", "{a} * {r}.uniform(0.5, 1.5, size={s}).astype(DTYPE)",
             "{a} + {r}.normal(0.0, 0.1, size={s}).astype(DTYPE)", "{a} * {r}.integers(0, 2, size={s})"]
    return b.choices.pick(forms).format(a=a.name, r=rng, s=shape, p=p)


# (form, the side whose one-sided derivative is the gradient at z == 0)
WHERE_NAN_FORMS = [
    ("np.where({z} > 0, np.sqrt({z}), 0.0)", -1),
    ("np.where({z} > 0, np.log({z}), {c})", -1),
    ("np.where({z} > 0, {z} * np.log({z}), 0.0)", -1),
    ("np.where({z} <= 0, 0.0, np.sqrt({z}) * {y})", -1),
    ("np.where({z} > 0, 1.0 / {z}, {z})", -1),
    ("np.where(np.greater({z}, 0), np.arccosh({z} + 1.0), 0.5 * {z})", -1),
    ("np.where({z} < 0, np.sqrt(-{z}), {c} * {z})", 1),
    ("np.where({z} != 0, np.sin({z}) / {z}, 1.0)", -1),
    ("np.where({z} == 0, 1.0, np.sinh({z}) / {z})", -1),
    ("np.where({z} > 0, np.sqrt({z}), 0.0) * {y}", -1),
    ("np.where({z} > 0, np.power({z}, 0.5) + {y}, {y})", -1),
    ("np.where({z} > 0, np.arcsin(1.0 - {z}), {y})", -1),
]


def op_where_nan(b: Builder) -> str:
    """np.where whose discarded branch is NaN or inf at some points (sqrt, log, 1/z of
    zeros and negatives): a fresh input z with an exact zero, used by this statement only.
    The gradient must be finite, and at z == 0 the one-sided derivative."""
    shape = b.shape(min_dims=1, max_dims=2)
    size = int(np.prod(shape))
    # one exact zero: two independent zeros could tie later (np.ptp, np.max of them),
    # a kink where no finite difference is a valid reference
    kinds = np.array([b.choices.integer(1, 2) for _ in range(size)])
    kinds[b.choices.integer(0, size - 1)] = 0
    magnitudes = np.round(b.rng.uniform(0.3, 2.0, size=size), 3)
    values = np.where(kinds == 0, 0.0, np.where(kinds == 1, -magnitudes, magnitudes)).reshape(shape)
    z = b.fresh(shape, values.astype(np.float32).astype(np.float64))
    b.reserved.add(z.name)
    form, side = b.choices.pick(WHERE_NAN_FORMS)
    b.branch_points[z.name] = (values == 0, side)
    b.lenient = True
    y = b.partner(shape) if "{y}" in form else ""
    return form.format(z=z.name, y=y, c=b.literal())


# (weight, operation): hypothesis shrinks towards the first entries
OPERATIONS: list[tuple[int, Callable[[Builder], str]]] = [
    (6, op_binary), (5, op_unary), (2, op_exp), (3, op_domain), (2, op_kink), (2, op_divide),
    (1, op_power), (2, op_extremum), (3, op_where), (1, op_clip), (4, op_reduce), (1, op_logsumexp),
    (1, op_softmax), (1, op_activation_loss), (3, op_matmul), (3, op_reshape), (2, op_transpose),
    (4, op_dims), (2, op_join), (5, op_index),
    # the rest of NumPy the compiler supports, one family per entry
    (3, op_unary_more), (3, op_binary_more), (1, op_steps), (3, op_statistics), (1, op_scan), (2, op_order),
    (2, op_einsum), (2, op_contract), (2, op_linalg), (1, op_norm), (3, op_shape_more), (2, op_stack_split),
    (2, op_take), (3, op_assign), (2, op_int), (1, op_random), (1, op_where_nan),
]


# --- control flow on data ----------------------------------------------------------------
#
# A program with control flow has a second input set (`Input.alt`: each input scaled and
# shifted, see TRANSFORMS) and is built in both: a straight-line statement must come out
# the same from the same choices in each (`Builder.apply`), and valid in each; a
# decision's threshold is chosen a margin away from its value in both sets (so that x ± eps
# takes the same path), between them where it can (so that the second set takes the other
# path). A branch is built in the input set(s) that take it. The checker calls each
# compiled function on the first set, the second, then the first again.

CONTROL_PERCENT = 25
# (scale, shift, only the first input): the second input set from the first
TRANSFORMS = [(-1.0, 0.0, False), (1.0, 0.8, False), (1.0, -0.8, False), (0.5, 0.0, False), (-1.0, 0.0, True),
              (1.0, 1.0, True), (1.5, -0.3, False)]
# scalars a decision is taken on ("float(" and ".item()" guard the value itself)
DECISION_SCALARS = ["np.sum({a})", "np.mean({a})", "np.max({a})", "np.min({a})", "{a}.sum()", "{a}.mean()",
                    "np.sqrt(np.sum({a} * {a}))", "float(np.sum({a}))", "np.mean({a}).item()", "abs(np.sum({a}))",
                    "float(np.max({a}))"]
LOOP_UPDATES = ["0.5 * {v}", "0.7 * {v} + 0.1", "np.sin({v})", "{v} - 0.25 * np.tanh({v})",
                "0.8 * {v} + 0.1 * np.tanh({a})", "0.5 * ({v} + {a} / ({a} * {a} + 1.0))"]
LOOP_CONDITIONS = [("np.sum(np.abs({v}))", ">"), ("np.max({v})", ">"), ("np.mean({v} * {v})", ">"),
                   ("np.sqrt(np.sum({v} * {v}))", ">"), ("np.min({v})", "<"), ("float(np.sum({v} * {v}))", ">")]


def _both(b: Builder, expr: str, **extra: Any) -> tuple[Any, Any]:
    """`expr`'s value in each world."""
    values = []
    for world in (0, 1):
        Var.world = world
        try:
            values.append(b._evaluate(lambda namespace: eval(expr, {**namespace, **extra})))
        finally:
            Var.world = 0
    return values[0], values[1]


def _split(b: Builder, values: Sequence[float]) -> str:
    """A threshold literal a margin away from each of `values` (a decision's scalar in
    each world): most often between the two worlds' values, so that they decide apart."""
    points = sorted(set(float(v) for v in values))
    gaps = [(lo + hi) / 2 for lo, hi in zip(points[:-1], points[1:]) if hi - lo > 4 * _margin(hi)]
    if gaps and b.choices.chance(80):
        c = b.choices.pick(gaps)
    else:
        c = b.choices.pick([points[0] - 0.5, points[-1] + 0.5])
    for text in (_fmt(round(c, 2)), _fmt(c)):
        t = float(text.strip("()"))
        if all(abs(v - t) >= _margin(v) for v in points):
            return text
    raise Reject("no threshold")


def _atom(b: Builder) -> tuple[str, str | None]:
    """A comparison decided on data: a scalar of a computed array against a literal,
    or np.all/np.any of an elementwise comparison; and the scalar where a float() or
    .item() guards its value itself. (No Python float operand: np.sum of one is
    float64, which would fail the float32-throughout check for nothing.)"""
    a = b.operand(scalars=False)
    if b.choices.chance(15):
        values = np.concatenate([np.ravel(v) for v in _both(b, a.name)])
        fn, op = b.choices.pick(["np.all", "np.any"]), b.choices.pick([">", "<"])
        return f"{fn}({a.name} {op} {b.threshold(values)})", None
    scalar = b.choices.pick(DECISION_SCALARS).format(a=a.name)
    s0, s1 = (float(v) for v in _both(b, scalar))
    text = f"{scalar} {b.choices.pick(['>', '<', '>=', '<='])} {_split(b, [s0, s1])}"
    if b.choices.chance(15):
        text = f"bool({text})"
    return text, scalar if "float(" in scalar or ".item()" in scalar else None


def _decision(b: Builder) -> tuple[str, bool, bool]:
    """A condition (comparisons, `and`/`or`/`not`) and its truth in each world; the
    outcome of each comparison evaluated (`and`/`or` short-circuit) noted."""
    atoms = [_atom(b)]
    text = atoms[0][0]
    joint = None
    if b.choices.chance(30):
        atoms.append(_atom(b))
        joint = b.choices.pick(["and", "or"])
        text = f"{atoms[0][0]} {joint} {atoms[1][0]}"
    if b.choices.chance(15):
        text = f"not ({text})"
    outcomes: tuple[list, list] = ([], [])
    for atom, scalar in atoms:
        truths = _both(b, atom)
        values = _both(b, scalar) if scalar else (None, None)
        for world in (0, 1):
            first = outcomes[world][0] if outcomes[world] else None
            if first is not None and (first is False) == (joint == "and"):
                continue  # short-circuited: not evaluated
            if scalar:
                outcomes[world].append(float(values[world]))  # the guard is on the value itself
            outcomes[world].append(bool(truths[world]))
            if scalar:  # keep the truth first, for the short-circuit test above
                outcomes[world][-2:] = outcomes[world][-1:] + outcomes[world][-2:-1]
    b.note(tuple(outcomes[0]), tuple(outcomes[1]))
    t0, t1 = (bool(v) for v in _both(b, text))
    return text, t0, t1


def _block(b: Builder, worlds: tuple[int, ...], out: str, shape: tuple[int, ...] | None,
           expression: bool) -> tuple[str, tuple[int, ...]]:
    """A branch: a straight-line statement defining `out`, built in the world(s) that
    take it (in world 0 where none does: never run), of `shape` when given."""
    table = [(w, op) for w, op in OPERATIONS if op not in (op_random, op_where_nan)]
    for _ in range(8):
        op = b.choices.weighted(table)
        state = b.snapshot()
        try:
            if len(worlds) == 2:
                code, value, alt = b.in_both(op, out)
                values = [value, alt]
            else:
                code, value = b.in_world(worlds[0] if worlds else 0, op, out)
                values = [value]
            single = "\n" not in code
            if expression and not single:
                raise Reject("a branch of a conditional expression is an expression")
            if shape is not None and values[0].shape != shape:
                if not single:
                    raise Reject("another shape")
                expr = code[len(out) + 3:]
                if _broadcasts(values[0].shape, shape) and np.broadcast_shapes(values[0].shape, shape) == shape:
                    code = f"{out} = ({expr}) * np.ones({shape}, dtype=DTYPE)"
                else:
                    code = f"{out} = np.mean({expr}) * np.ones({shape}, dtype=DTYPE)"
            return code, values[0].shape if shape is None else shape
        except Reject:
            b.restore(state)
    raise Reject("no branch")


def _indent(code: str) -> str:
    return "\n".join(f"    {line}" for line in code.split("\n"))


def _control(b: Builder, code: str, out: str) -> Dual:
    """The control-flow statement `code` defining `out`, evaluated in both worlds."""
    values = []
    for world in (0, 1):
        Var.world = world
        try:
            values.append(b.exec(code, out))
        finally:
            Var.world = 0
    b.controls += 1
    return Dual(code, values[0], values[1])


def op_if(b: Builder) -> Dual:
    """`if <decision>: out = ... else: out = ...`: each branch built where it is taken."""
    out = f"v{len(b.body)}"
    cond, t0, t1 = _decision(b)
    taken, shape = {}, None
    for branch in (t0, not t0):
        worlds = tuple(w for w, t in ((0, t0), (1, t1)) if t == branch)
        taken[branch], shape = _block(b, worlds, out, shape, expression=False)
    return _control(b, f"if {cond}:\n{_indent(taken[True])}\nelse:\n{_indent(taken[False])}", out)


def op_if_expression(b: Builder) -> Dual:
    """`out = <expr> if <decision> else <expr>`."""
    out = f"v{len(b.body)}"
    cond, t0, t1 = _decision(b)
    taken, shape = {}, None
    for branch in (t0, not t0):
        worlds = tuple(w for w, t in ((0, t0), (1, t1)) if t == branch)
        code, shape = _block(b, worlds, out, shape, expression=True)
        taken[branch] = code[len(out) + 3:]
    return _control(b, f"{out} = ({taken[True]}) if {cond} else ({taken[False]})", out)


def op_while(b: Builder) -> Dual:
    """A loop on data bounded by a Python counter: `while <cond> and k < K:` (or
    `k < K and <cond>`, or `for _ in range(K): if not <cond>: break`), the threshold a
    margin away from every condition value evaluated in either world."""
    out = f"v{len(b.body)}"
    a = b.operand(scalars=False)
    init = b.choices.pick(["{a}", "np.tanh({a})", "{a} * 1.0"]).format(a=a.name)
    update = b.choices.pick(LOOP_UPDATES)
    scalar, op = b.choices.pick(LOOP_CONDITIONS)
    bound = b.choices.integer(2, 6)
    style = b.choices.pick(["while-and", "and-while", "for-break"])
    sequences = []
    for world in (0, 1):
        Var.world = world
        try:
            v = b.eval(init)
            seq = [float(b._evaluate(lambda ns: eval(scalar.format(v="_v"), {**ns, "_v": v})))]
            for _ in range(bound):
                v = b._evaluate(lambda ns: eval(update.format(v="_v", a=a.name), {**ns, "_v": v}))
                seq.append(float(b._evaluate(lambda ns: eval(scalar.format(v="_v"), {**ns, "_v": v}))))
        finally:
            Var.world = 0
        sequences.append(seq)
    t = _split(b, [s for seq in sequences for s in seq])
    threshold = float(t.strip("()"))
    go = (lambda s: s > threshold) if op == ">" else (lambda s: s < threshold)

    def evaluated(seq: list[float]) -> list[float]:
        seen = []
        for j in range(bound + 1):
            if style != "while-and" and j >= bound:
                break
            seen.append(seq[j])
            if not go(seq[j]) or j >= bound:
                break
        return seen

    for seq in sequences:
        if any(abs(s - threshold) < _margin(s) for s in evaluated(seq)):
            raise Reject("near the loop's threshold")
    # the path: each evaluated condition's outcome (and, for float(), its value)
    b.note(*(tuple((go(s), s if "float(" in scalar else None) for s in evaluated(seq)) for seq in sequences))
    cond = f"{scalar.format(v=out)} {op} {t}"
    step = update.format(v=out, a=a.name)
    if style == "for-break":
        code = f"{out} = {init}\nfor _ in range({bound}):\n    if not {cond}:\n        break\n    {out} = {step}"
    else:
        k = f"{out}_k"
        head = f"{cond} and {k} < {bound}" if style == "while-and" else f"{k} < {bound} and {cond}"
        code = f"{out} = {init}\n{k} = 0\nwhile {head}:\n    {out} = {step}\n    {k} += 1"
    return _control(b, code, out)


FOR_UPDATES = ["0.9 * np.tanh({v}) + 0.1 * {a}", "{v} + 0.1 * np.sin({a} * ({k} + 1))",
               "0.8 * {v} + 0.2 * np.sum({c}[{k} % {n}])", "{v} * 0.5 + {c}[{k} % {n}].sum() * 0.25",
               "np.sin({v}) + 0.01 * {k}", "0.6 * {v} + 0.3 * np.sum({c}[{n} - 1 - {k} % {n}] * 1.0)"]


def op_for(b: Builder) -> Dual:
    """A Python `for` loop over a fixed count (4 to 9: long enough that the generated
    code keeps it a loop, compiler/rolling.py), carrying a value and sometimes an
    accumulator, reading the loop index through arithmetic and `c[k % n]` (a
    constant index that moves each iteration and wraps)."""
    out = f"v{len(b.body)}"
    a = b.operand(scalars=False)
    c = b.operand(lambda v: np.ndim(v) >= 1, scalars=False)
    k = f"{out}_k"
    update = b.choices.pick(FOR_UPDATES).format(v=out, a=a.name, c=c.name, k=k, n=c.value.shape[0])
    lines = [f"{out} = {a.name} * 1.0"]
    if b.choices.chance(40):
        acc = f"{out}_acc"
        lines += [f"{acc} = 0.0", f"for {k} in range({b.choices.integer(4, 9)}):", f"    {out} = {update}",
                  f"    {acc} = {acc} + {out} * 0.5", f"{out} = {out} + {acc}"]
    else:
        lines += [f"for {k} in range({b.choices.integer(4, 9)}):", f"    {out} = {update}"]
    return _control(b, "\n".join(lines), out)


def op_float(b: Builder) -> str:
    """`float(...)` / `.item()` of a computed value in arithmetic: a constant to the
    derivative (the finite-difference reference holds it, see Program.frozen)."""
    a = b.operand()
    c = b.operand(scalars=False)
    forms = ["float(np.mean({c}))", "float(np.sum({c}))", "np.sum({c}).item()", "np.max({c}).item()"]
    if c.value.ndim == 0:  # (x.item() of a 1-element array of 1 or more dimensions: TypeError in the tracer)
        forms.append("{c}.item()")
    text = b.choices.pick(forms).format(c=c.name)
    value = b.eval(text)
    if not isinstance(value, float) or abs(value) > 10:
        raise Reject("not a moderate float")
    b.note(value)
    b.frozen.append(text)
    form = b.choices.pick(["{a} * {f}", "{a} + {f}", "{a} * np.tanh({f})", "{a} / (1.0 + abs({f}))",
                           "np.sin({a} * {f})"])
    return form.format(a=a.name, f=text)


def op_builtin(b: Builder) -> str:
    """Python's max/min of a 1-element traced value and a literal or another (a
    decision), and abs of one (np.absolute), away from their kinks."""
    a = b.operand()
    c = b.operand(scalars=False)
    s = b.choices.pick(["np.sum({c})", "np.mean({c})", "np.max({c})"]).format(c=c.name)
    fn = b.choices.pick(["max", "min", "abs"])
    if fn == "abs":
        _require_clear_of_zero(b.eval(s))
        return b.choices.pick(["{a} * abs({s})", "abs({s}) + {a}"]).format(a=a.name, s=s)
    other = b.literal() if b.choices.chance(60) else f"np.mean({b.operand(scalars=False).name})"
    x, y = float(b.eval(s)), float(b.eval(other))
    if abs(x - y) < _margin(max(abs(x), abs(y))):
        raise Reject("near a tie")
    b.note(x > y)
    pair = f"{s}, {other}" if b.choices.chance(50) else f"{other}, {s}"
    return b.choices.pick(["{a} * {f}({p})", "{f}({p}) + {a}"]).format(a=a.name, f=fn, p=pair)


op_if.dual = op_if_expression.dual = op_while.dual = op_for.dual = True

CONTROL_OPERATIONS: list[tuple[int, Callable[[Builder], Any]]] = [
    (8, op_if), (4, op_if_expression), (4, op_while), (3, op_float), (3, op_builtin), (4, op_for),
]


def build_program(choices: Choices) -> Program:
    """One program from `choices`; about a third are also checked in float32."""
    builder = Builder(choices)
    if choices.chance(CONTROL_PERCENT):
        builder.control = True
        builder.transform = choices.pick(TRANSFORMS)
    first = builder.shape()
    builder.fresh(first)
    return builder.build(float32=choices.chance(35))


@st.composite
def programs(draw: Callable[[st.SearchStrategy], Any]) -> Program:
    """Hypothesis strategy of random programs (valid by construction)."""
    return build_program(DrawnChoices(draw))


def random_program(seed: int) -> Program:
    """The program of a seed, without hypothesis: what `tests/fuzz_run.py` runs."""
    return build_program(SeededChoices(seed))


# --- the checker ---------------------------------------------------------------------

@dataclass
class Failure:
    """kind: "crash" (an exception inside the compiler or generated code), "refusal"
    (an AdjointError on a valid program), "mismatch" (wrong values), "dtype" (wrong
    dtype or shape) or "mutation" (an input changed). check: what was run."""

    kind: str
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.check}: {self.detail}"


@dataclass
class Report:
    failures: list[Failure] = field(default_factory=list)
    gradients_checked: int = 0


def check_program(program: Program) -> Report:
    """Run `program` through jit, grad, value_and_grad and compile_step in float64 (and
    float32 when the program says so) and compare with eager NumPy and finite
    differences of the float64 loss."""
    report = Report()
    reference = reference_gradients(program)
    alt_reference = reference_gradients(program, world=1) if program.alt else None
    for dtype in ("float64", "float32") if program.float32 else ("float64",):
        _Checks(program, dtype, reference, report, alt_reference).run()
    return report


def reference_gradients(program: Program, world: int = 0) -> list:
    """Centered finite differences of the float64 loss for each differentiable input
    (every evaluation with a freshly seeded Generator), at the first input set or
    (`world` 1) the second; `float(...)` calls in arithmetic held at their values
    there; at the branch points of a NaN-masking np.where, where centered differences
    are invalid, the one-sided derivative from the side that selects the same branch."""
    frozen = bool(program.frozen)
    module = program.load("float64", frozen)
    args = program.arguments("float64", world)
    argnums = program.differentiable
    if frozen:
        module.FROZEN.clear()
        with np.errstate(all="ignore"):
            module.loss(*args)  # holds each float() at its value at `args`

    def loss(*values: Any) -> Any:
        fresh = program.arguments("float64")
        return module.loss(*(f if isinstance(i.value, Rng) else v for i, v, f in zip(program.inputs, values, fresh)))

    with np.errstate(all="ignore"):
        reference = list(numerical_grad(loss, *args, argnums=argnums))
        for slot, k in enumerate(argnums):
            name = program.inputs[k].name
            if name not in program.branch_points:
                continue
            mask, side = program.branch_points[name]
            values = list(args)
            for idx in zip(*np.nonzero(mask)):
                x = np.array(args[k], dtype=np.float64)
                samples = []
                for step in (0, 1, 2):
                    x[idx] = args[k][idx] + side * step * ONE_SIDED_STEP
                    values[k] = x
                    samples.append(float(loss(*values)))
                # second-order one-sided difference
                reference[slot][idx] = side * (-3 * samples[0] + 4 * samples[1] - samples[2]) / (2 * ONE_SIDED_STEP)
    return reference


ONE_SIDED_STEP = 1e-5


def _leaves(tree: Any) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in _leaves(t)]
    return [tree]


class _Checks:
    """The checks of one program at one dtype, appending to a shared report."""

    def __init__(self, program: Program, dtype: str, reference: tuple, report: Report, alt_reference: Any = None):
        self.program, self.dtype, self.reference, self.report = program, dtype, reference, report
        self.alt_reference = alt_reference
        self.module = program.load(dtype)
        self.argnums = program.differentiable
        with np.errstate(all="ignore"):
            self.out = self.module.program(*program.arguments(dtype))
            self.loss = self.module.loss(*program.arguments(dtype))
            if program.alt:
                self.alt_out = self.module.program(*program.arguments(dtype, 1))
                self.alt_loss = self.module.loss(*program.arguments(dtype, 1))

    def run(self) -> None:
        for check in (self.jit_program, self.jit_loss, self.grad, self.value_and_grad, self.jvp, self.jacfwd,
                      self.compile_step, self.compile_step_aux):
            check()

    def fail(self, kind: str, check: str, detail: str) -> None:
        self.report.failures.append(Failure(kind, f"{check}[{self.dtype}]", detail))

    def call(self, check: str, fn: Callable, *args: Any) -> Any:
        """`fn(*args)`, or None after recording a crash or refusal. Only the compiler's
        own work runs in here, so an exception in the checker is not mistaken for one."""
        try:
            with np.errstate(all="ignore"):
                return fn(*args)
        except AdjointError as err:
            self.fail("refusal", check, f"{type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - every other exception is a crash
            frames = traceback.format_exception(type(err), err, err.__traceback__)
            self.fail("crash", check, f"{type(err).__name__}: {err}\n" + "".join(frames[-6:]))
        return None

    def unmutated(self, check: str, fn: Callable, args: tuple) -> Any:
        """`fn(*args)` through `call`, failing if it changes any argument."""
        before = [None if isinstance(a, np.random.Generator) else np.copy(a) for a in args]
        result = self.call(check, fn, *args)
        for name, a, b in zip(self.names, args, before):
            if b is not None and not (np.array_equal(a, b) and np.result_type(a) == np.result_type(b)):
                self.fail("mutation", check, f"argument {name} changed from {b!r} to {a!r}")
        self.fresh(check, result, args)
        return result

    def fresh(self, check: str, result: Any, args: tuple) -> None:
        """Returned arrays share memory with no argument and no other result (a caller
        may write into each)."""
        leaves = [r for r in _leaves(result) if isinstance(r, np.ndarray)]
        for k, leaf in enumerate(leaves):
            for name, a in zip(self.names, args):
                if isinstance(a, np.ndarray) and np.shares_memory(leaf, a):
                    self.fail("mutation", check, f"result {k} shares memory with argument {name}")
            if any(np.shares_memory(leaf, other) for other in leaves[:k]):
                self.fail("mutation", check, f"result {k} shares memory with another result")

    # checks ----------------------------------------------------------------------

    def jit_program(self) -> None:
        args = self.program.arguments(self.dtype)
        fn = self.call("jit_program", jit, self.module.program)
        out = None if fn is None else self.unmutated("jit_program", fn, args)
        if out is not None:
            expected = self.out if isinstance(self.out, tuple) else (self.out,)
            actual = out if isinstance(out, tuple) else (out,)
            if len(actual) != len(expected) or isinstance(out, tuple) != isinstance(self.out, tuple):
                self.fail("dtype", "jit_program", f"returned {type(out).__name__} of {len(actual)}, "
                          f"eager NumPy {type(self.out).__name__} of {len(expected)}")
                return
            for name, a, e in zip(self.program.outputs, actual, expected):
                self.compare("jit_program", f"output {name}", a, e, "forward")
        if fn is not None and self.alternate:
            for world, label, expected in ((1, "second input set", self.alt_out), (0, "first input set again", self.out)):
                out = self.unmutated("jit_program", fn, self.program.arguments(self.dtype, world))
                if out is None:
                    return
                actual = out if isinstance(out, tuple) else (out,)
                expected = expected if isinstance(expected, tuple) else (expected,)
                for name, a, e in zip(self.program.outputs, actual, expected):
                    self.compare("jit_program", f"output {name} ({label})", a, e, "forward")
            self.check_paths("jit_program", fn)

    @property
    def alternate(self) -> bool:
        """Whether jit, value_and_grad and compile_step also run on the second input set
        (in float64: each compiles another path; grad does in every dtype)."""
        return self.program.alt and self.dtype == "float64"

    def check_paths(self, check: str, fn: Any) -> None:
        """After calls on the first input set, the second, and the first again: one
        path compiled per path the values take (the first reused on the third call),
        and once more where the second path made an int argument static (the first
        path is then traced again under the new signature)."""
        if self.dtype != "float64":
            return  # the paths are predicted from float64 values: in float32 two of them may round alike
        expected = 2 if self.program.paths_differ else 1
        made_static = any(fn.static_ints.values())
        if not expected <= fn.trace_count <= expected + made_static:
            self.fail("mismatch", check, f"traced {fn.trace_count} times for calls on the first input set, the "
                      f"second and the first again (the two sets take {expected} path{'s' * (expected - 1)})")

    def jit_loss(self) -> None:
        args = self.program.arguments(self.dtype)
        out = self.unmutated("jit_loss", jit(self.module.loss), args)
        if out is not None:
            self.compare("jit_loss", "loss", out, self.loss, "forward")

    def grad(self) -> None:
        args = self.program.arguments(self.dtype)
        fn = grad(self.module.loss, argnums=self.argnums)
        grads = self.unmutated("grad", fn, args)
        if grads is None:
            return
        self.compare_grads("grad", grads, args)
        self.check_float32_throughout(args)
        again = self.call("grad", fn, *self.program.arguments(self.dtype))  # a fresh Generator, if any
        for name, g, h in zip(self.diff_names, grads, again or grads):
            if not np.array_equal(g, h):
                self.fail("mismatch", "grad", f"second call (cached) gives another gradient of {name}: {h!r} vs {g!r}")
        if self.program.alt:
            alt_args = self.program.arguments(self.dtype, 1)
            alt = self.unmutated("grad", fn, alt_args)
            if alt is None:
                return
            self.compare_grads("grad", alt, alt_args, self.alt_reference, " (second input set)")
            third = self.unmutated("grad", fn, self.program.arguments(self.dtype))
            for name, g, h in zip(self.diff_names, grads, third or grads):
                if not np.array_equal(g, h):
                    self.fail("mismatch", "grad", f"the first input set again (after the second) gives another "
                              f"gradient of {name}: {h!r} vs {g!r}")
            self.check_paths("grad", fn)

    def check_float32_throughout(self, args: tuple) -> None:
        """A float32 program whose eager intermediates are all float32 must compile to
        a gradient graph without float64 arrays (Python scalars stay weak: NEP 50).
        Only the array inputs are differentiated: a Python float's own gradient is
        rightly float64."""
        if self.dtype != "float32" or self.program.intermediate_dtypes("float32") != {np.dtype(np.float32)}:
            return
        arrays = tuple(k for k, a in enumerate(args) if isinstance(a, np.ndarray))
        graph = self.call("grad", grad(self.module.loss, argnums=arrays).ir, *args)
        # a Generator draws float64, in NumPy as here: forward nodes of those lines are exempt
        widened = [] if graph is None else [
            n for n in graph.nodes() if n.dtype.kind == "f" and n.dtype != np.float32 and not n.aval.weak
            and not (n.grad_of is None and n.loc is not None and "rng." in (n.loc.text or ""))
            and not _of_python_numbers(graph, n)
        ]
        if widened:
            n = widened[0]
            self.fail("dtype", "grad", f"float32 program computes in float64 ({len(widened)} nodes), e.g. "
                      f"{n.op} -> {n.aval} from line {n.loc.line} `{n.loc.text}`")

    def value_and_grad(self) -> None:
        fn = value_and_grad(self.module.loss, argnums=self.argnums)
        worlds = [(0, "", self.loss, self.reference)]
        if self.alternate:  # the second input set, then the first again, in the same function
            worlds += [(1, " (second input set)", self.alt_loss, self.alt_reference),
                       (0, " (first input set again)", self.loss, self.reference)]
        for world, label, loss, reference in worlds:
            args = self.program.arguments(self.dtype, world)
            result = self.unmutated("value_and_grad", fn, args)
            if result is None:
                return
            value, grads = result
            self.compare("value_and_grad", "value" + label, value, loss, "forward")
            self.compare_grads("value_and_grad", grads, args, reference, label)

    def jvp(self) -> None:
        """Forward mode along a random direction of the differentiable inputs: the
        loss's tangent against the finite-difference gradient dotted with it."""
        args = self.program.arguments(self.dtype)
        rng = np.random.default_rng(len(args))
        tangents = list(self.program.arguments(self.dtype))
        for k in self.argnums:
            tangents[k] = (rng.normal(size=np.shape(args[k])).astype(args[k].dtype) if isinstance(args[k], np.ndarray)
                           else float(rng.normal()))
        result = self.call("jvp", jvp, self.module.loss, tuple(args), tuple(tangents))
        if result is None:
            return
        value, tangent = result
        self.compare("jvp", "value", value, self.loss, "forward")
        terms = [np.asarray(g, dtype=np.float64) * np.asarray(tangents[k], dtype=np.float64)
                 for k, g in zip(self.argnums, self.reference)]
        expected = float(sum(np.sum(t) for t in terms))
        scale = float(sum(np.sum(np.abs(t)) for t in terms))
        rtol, atol = TOLERANCES[("gradient", self.dtype)]
        self.report.gradients_checked += 1
        if not abs(float(tangent) - expected) <= rtol * scale + atol * (1.0 + scale):
            self.fail("mismatch", "jvp", f"loss tangent {float(tangent)!r}, finite differences give {expected!r} "
                      f"(scale {scale:.3g})")

    def jacfwd(self) -> None:
        """The loss's Jacobian by forward mode (one batched tangent pass per
        differentiable input, every basis direction at once): the gradient, in the
        precision of the loss and the input together."""
        args = self.program.arguments(self.dtype)
        grads = self.unmutated("jacfwd", jacfwd(self.module.loss, argnums=self.argnums), args)
        if grads is None:
            return
        for k, name, g, expected in zip(self.argnums, self.diff_names, grads, self.reference):
            self.report.gradients_checked += 1
            dtype = np.result_type(np.result_type(self.loss), np.result_type(args[k]))  # the precision of either
            if np.result_type(g) != dtype or np.shape(g) != np.shape(args[k]):
                self.fail("dtype", "jacfwd", f"Jacobian of the loss in {name} is {_describe(g)}, expected {dtype} "
                          f"and shape {np.shape(args[k])}")
            else:
                self.compare("jacfwd", f"Jacobian of the loss in {name} (vs finite differences)", g, expected,
                             "gradient", check_dtype=False)

    def compile_step(self) -> None:
        step = compile_step(self.module.step_loss, optim.SGD(lr=LR))
        worlds = [(0, "", self.loss, self.reference)]
        if self.alternate:  # fresh parameters of the second input set, then of the first again
            worlds += [(1, " (second input set)", self.alt_loss, self.alt_reference),
                       (0, " (first input set again)", self.loss, self.reference)]
        for world, label, expected_loss, reference in worlds:
            args = self.program.arguments(self.dtype, world)
            params = {i.name: a for i, a in zip(self.program.inputs, args) if isinstance(a, np.ndarray)}
            batch = [a for a in args if not isinstance(a, np.ndarray)]
            old = {k: v.copy() for k, v in params.items()}
            loss = self.call("compile_step", step, params, *batch)
            if loss is None:
                return
            self.compare("compile_step", "returned loss" + label, loss, expected_loss, "forward", check_dtype=False)
            for i, g in zip(self.diff_inputs, reference):
                if i.name in params:
                    expected = (old[i.name] - LR * g).astype(self.dtype)
                    self.compare("compile_step", f"updated {i.name}{label}", params[i.name], expected, "gradient")

    def compile_step_aux(self) -> None:
        """The program's outputs as a step's aux: right at the old params, and left alone
        by the next step (a step keeps large values in arrays between calls; an aux, or
        a view of one, must not be one of them)."""
        args = self.program.arguments(self.dtype)
        params = {i.name: a for i, a in zip(self.program.inputs, args) if isinstance(a, np.ndarray)}
        batch = [a for a in args if not isinstance(a, np.ndarray)]
        step = compile_step(self.module.step_loss_aux, optim.SGD(lr=LR), has_aux=True)
        first = self.call("compile_step_aux", step, params, *batch)
        if first is None:
            return
        aux = first[1] if isinstance(first[1], tuple) else (first[1],)
        expected = self.out if isinstance(self.out, tuple) else (self.out,)
        saved = [np.copy(a) for a in aux]
        for k, (a, e) in enumerate(zip(aux, expected)):
            self.compare("compile_step_aux", f"aux output {k}", a, e, "forward", check_dtype=False)
        try:
            with np.errstate(all="ignore"):
                self.module.step_loss_aux({k: np.copy(v) for k, v in params.items()}, *batch)
        except (IndexError, ValueError):
            return  # the updated params take a computed index out of bounds: NumPy itself fails there
        if self.call("compile_step_aux", step, params, *batch) is None:
            return
        for k, (a, before) in enumerate(zip(aux, saved)):
            a = np.asarray(a)
            same = (a == before) | ((a != a) & (before != before)) if a.dtype.kind in "fc" else a == before
            if not np.all(same):
                self.fail("mutation", "compile_step_aux", f"aux output {k} of the first step changed in the second")

    # comparisons -----------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.program.inputs]

    @property
    def diff_inputs(self) -> list[Input]:
        return [self.program.inputs[k] for k in self.argnums]

    @property
    def diff_names(self) -> list[str]:
        return [i.name for i in self.diff_inputs]

    def compare_grads(self, check: str, grads: tuple, args: tuple, reference: Any = None, label: str = "") -> None:
        args = [args[k] for k in self.argnums]
        reference = self.reference if reference is None else reference
        for name, g, expected, arg in zip(self.diff_names, grads, reference, args):
            self.report.gradients_checked += 1
            if np.result_type(g) != np.result_type(arg) or np.shape(g) != np.shape(arg):
                self.fail("dtype", check, f"gradient of {name}{label} is {_describe(g)}, argument is {_describe(arg)}")
            else:
                self.compare(check, f"gradient of {name}{label} (vs finite differences)", g, expected, "gradient",
                             check_dtype=False)

    def compare(self, check: str, what: str, actual: Any, expected: Any, quantity: str,
                check_dtype: bool = True) -> None:
        if check_dtype and (np.result_type(actual) != np.result_type(expected) or np.shape(actual) != np.shape(expected)):
            self.fail("dtype", check, f"{what} is {_describe(actual)}, eager NumPy gives {_describe(expected)}")
            return
        rtol, atol = TOLERANCES[(quantity, self.dtype)]
        a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        if a.shape != e.shape:
            self.fail("dtype", check, f"{what} has shape {a.shape}, expected {e.shape}")
            return
        err = np.abs(a - e)
        tol = atol * (1.0 + (np.abs(e).max() if e.size else 0.0)) + rtol * np.abs(e)
        if not np.all(err <= tol):  # also catches nan
            flat = np.nanargmax(np.where(np.isnan(err), np.inf, err - tol))
            worst = tuple(int(i) for i in np.unravel_index(flat, err.shape))
            self.fail("mismatch", check, f"{what}: max error {np.nanmax(err):.3g} at {worst}\n"
                      f"  got:      {_array(a)}\n  expected: {_array(e)}")


def _same_outcomes(first: list, second: list) -> bool:
    """Whether two input sets take the same path: the same decisions, numbers equal to
    the guards' tolerance (a float's last bits do not make another path)."""
    def same(a: Any, b: Any) -> bool:
        if isinstance(a, tuple) and isinstance(b, tuple):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, float) and isinstance(b, float) and np.isfinite(a) and a != 0:
            return abs(a - b) <= NUMBER_RTOL * abs(a)
        return a == b

    return len(first) == len(second) and all(same(a, b) for a, b in zip(first, second))


def _of_python_numbers(graph: Any, node: Any) -> bool:
    """Whether `node` is computed from Python numbers alone (besides constants): NumPy
    computes those in float64 too (np.ravel(s0) of a float s0, in a computed index or
    a decision), so they are no widening of the float32 program."""
    inputs = [graph.node(j) for j in graph.ancestors([node.id]) if graph.node(j).is_input]
    return bool(inputs) and all(i.aval.weak for i in inputs)


def _describe(x: Any) -> str:
    return f"{type(x).__name__} of dtype {np.result_type(x)} and shape {np.shape(x)}"


def _array(x: np.ndarray) -> str:
    return np.array2string(x, precision=6, threshold=40, separator=", ").replace("\n", "\n            ")


def describe(program: Program, report: Report) -> str:
    """A failure report: the failures, then the source of the program."""
    dtype = "float32" if any("float32" in f.check for f in report.failures) else "float64"
    lines = [str(f) for f in report.failures]
    lines += ["", f"program ({dtype}; inputs: {_inputs_text(program)}):"]
    if program.alt:
        lines[-1] = lines[-1][:-2] + f"; second input set: {_inputs_text(program, 1)}; "
        lines[-1] += f"{'different paths' if program.paths_differ else 'the same path'}):"
    lines += [program.source(dtype)]
    if program.frozen:
        lines += [f"constants to the derivative (the reference holds them): {', '.join(program.frozen)}"]
    if program.branch_points:
        lines += [f"branch points (one-sided reference): {', '.join(program.branch_points)}"]
    return "\n".join(lines)


def _inputs_text(program: Program, world: int = 0) -> str:
    return ", ".join(f"{i.name}={_input_text(i.alt if world and i.alt is not None else i.value)}"
                     for i in program.inputs)


def _input_text(value: Any) -> str:
    if isinstance(value, Rng):
        return f"np.random.default_rng({value.seed})"
    return np.array2string(np.asarray(value), precision=8, separator=', ')

"""Loops in generated code: statements that repeat are printed as a `for` loop.

A Python loop traces to its iterations one after another, and so does every
transform of it: its adjoint is the same iterations in reverse order. The emitter
hands this module one `Unit` per IR node (the node's statements); `print_units`
finds runs of units where iteration after iteration performs the same statements
on the same kinds of operands, and prints each run of at least `MIN_ITERATIONS`
iterations as a loop:

    x_1 = x                          # the carry's value before the loop
    x_1s = []
    for i in range(9999):
        x_1 = np.sin(x_1) * 1.001 + 0.1
        x_1s.append(x_1)             # each iteration's value, for a later reader

Two iterations match when their statements are the same syntax tree except for
names and int constants; when every name they read refers to the same kind of
definition: a value of the same iteration, a value of the previous iteration (a
carry, seeded before the loop from the value the first iteration read), one value
defined before the run (the same in every iteration), or the values of an earlier
loop's iterations a + b*i (read from that loop's list); and when every int
constant moves by the same step each iteration (`xs[i]`, `xs[998 - i]`). The loop
then performs exactly the statements the unrolled code performs, on the same
objects, in the same order, so it computes the same values bit for bit; only names
differ. The lists hold references, as the unrolled code's names did: no copies.
Module-level constants an iteration reads one per iteration (`xs[t]` of an array
the trace holds) are stacked into one array the module binds (`xss[i]`).
Code after a loop reads the last iteration's values by the loop's names and
earlier iterations' from the lists.
"""
from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from compiler import printer
from compiler.naming import RESERVED

MIN_ITERATIONS = 4  # fewer repeats stay unrolled: a loop of two or three reads worse
MAX_PERIOD = 512  # the most units one iteration may have
_CANDIDATE_PERIODS = 8  # periods tried at a position: the distances to the next units alike
_LOOKAHEAD = 2048  # units compared by skeleton alone when ranking periods (ties go to the shorter)
_MAX_BANNED = 8  # runs found unprintable (their units then stay unrolled) before all are printed unrolled

LOAD, STORE, DELETE = "load", "store", "delete"
_TEMPORARY = re.compile(r"t\d+")  # compiler/naming.py's temporaries


@dataclass
class Unit:
    """The statements one IR node prints as: `header` comment lines before them,
    `suffix` (a `# file.py:LINE` comment) after the first line of each, then
    `after` (a `del`, a NaN check) without it."""

    stmts: list
    header: tuple = ()
    suffix: str = ""
    after: list = field(default_factory=list)


@dataclass
class _Scanned:
    """A unit's syntax with names and int constants taken out (`skeleton`), and those
    in evaluation order: ("name", node, kind, definition) and ("num", node, value)
    (an int or float constant)."""

    skeleton: tuple
    occurrences: list


@dataclass
class _Run:
    """A run of `count` iterations of `period` units from unit `start`."""

    start: int
    period: int
    count: int
    inits: dict = field(default_factory=dict)  # (slot, store) -> the definition the first iteration read
    relations: list = field(default_factory=list)  # per slot, per occurrence: the template's relation
    affine: dict = field(default_factory=dict)  # (slot, occurrence) -> (first value, step)
    sequences: dict = field(default_factory=dict)  # (slot, occurrence) -> the module names each iteration reads

    @property
    def end(self) -> int:
        return self.start + self.period * self.count

    def iteration_of(self, unit: int) -> tuple[int, int]:
        return divmod(unit - self.start, self.period)


def print_units(units: list[Unit], fresh: Callable[[str], str], roll: bool = True,
                gather: Callable[[tuple], Optional[tuple]] = lambda names: None,
                tabulate: Callable[[tuple], Optional[str]] = lambda numbers: None,
                reserved: frozenset = frozenset()) -> list[str]:
    """The function body's lines for `units` (indented one level), with runs that
    repeat printed as loops when `roll`; `fresh(hint)` gives unused identifiers,
    `gather(names)` says where the module-level values `names` (one per iteration)
    lie stacked: (module-level name, first index, step, whether its rows are 0-d),
    or None where they cannot,
    and `tabulate(numbers)` names a module-level tuple of the Python numbers (one
    per iteration: `0.1 * t` computed in the user's loop), or None where it cannot.
    `reserved` holds names the function has that its body may not show (parameters)."""
    if not roll or len(units) < MIN_ITERATIONS:
        return [line for unit in units for line in _unit_lines(unit, 1)]
    scanned = _scan_all(units)
    banned: set[int] = set()
    for _ in range(_MAX_BANNED + 1):
        runs = _find_runs(scanned, banned)
        if not runs:
            break
        try:
            return _Printer(units, scanned, runs, fresh, gather, tabulate, reserved).lines()
        except _Unrollable as err:  # a run other code reads in a way a loop cannot serve: its units stay unrolled
            banned.update(range(err.run.start, err.run.end))
    return [line for unit in units for line in _unit_lines(unit, 1)]


class _Unrollable(Exception):
    """A run found that cannot print as a loop after all."""

    def __init__(self, run: "_Run"):
        super().__init__(run.start)
        self.run = run


# --- reading units --------------------------------------------------------------------

def _scan_all(units: list[Unit]) -> list[_Scanned]:
    """Every unit scanned, each name read resolved to its definition: (unit, store
    index), or ("free", name) for a name no unit defines (a parameter, a module-level
    name)."""
    defs: dict[str, Any] = {}
    scanned = []
    for u, unit in enumerate(units):
        skeleton: list = [unit.suffix]
        occurrences: list = []
        for stmt in unit.stmts:
            _scan(stmt, skeleton, occurrences)
        skeleton.append(len(unit.after))
        for stmt in unit.after:
            _scan(stmt, skeleton, occurrences)
        stores = 0
        for k, occ in enumerate(occurrences):
            if occ[0] != "name":
                continue
            _, node, kind, _ = occ
            if kind == STORE:
                occurrences[k] = ("name", node, STORE, (u, stores))
                defs[node.id] = (u, stores)
                stores += 1
            else:
                occurrences[k] = ("name", node, kind, defs.get(node.id, ("free", node.id)))
        scanned.append(_Scanned(tuple(skeleton), occurrences))
    return scanned


def _scan(node: Any, skeleton: list, occurrences: list) -> None:
    """Append `node`'s syntax to `skeleton` and its names and ints to `occurrences`,
    in the order Python evaluates them (an assignment's value before its target)."""
    kind = type(node)
    if kind is ast.Name:
        skeleton.append("N")
        ctx = type(node.ctx)
        occurrences.append(("name", node, STORE if ctx is ast.Store else DELETE if ctx is ast.Del else LOAD, None))
        return
    if kind is ast.Constant:
        value = node.value
        if type(value) in (int, float):
            skeleton.append("I")
            occurrences.append(("num", node, value))
        else:
            skeleton.append((type(value), repr(value)))
        return
    if kind is ast.BinOp:  # the common forms first, spelled out (the generic walk below is slow)
        skeleton.append((kind, type(node.op)))
        _scan(node.left, skeleton, occurrences)
        _scan(node.right, skeleton, occurrences)
        return
    if kind is ast.Call:
        skeleton.append((kind, len(node.args), tuple(k.arg for k in node.keywords)))
        _scan(node.func, skeleton, occurrences)
        for arg in node.args:
            _scan(arg, skeleton, occurrences)
        for keyword in node.keywords:
            _scan(keyword.value, skeleton, occurrences)
        return
    if kind is ast.Attribute:
        skeleton.append((kind, node.attr, type(node.ctx)))
        _scan(node.value, skeleton, occurrences)
        return
    if kind is ast.Assign:
        skeleton.append(kind)
        _scan(node.value, skeleton, occurrences)
        for target in node.targets:
            _scan(target, skeleton, occurrences)
        return
    if kind is ast.AugAssign:
        skeleton.append((kind, type(node.op)))
        target = node.target
        if type(target) is ast.Name:  # `g += v`: reads g, then binds it
            skeleton.append("N")
            occurrences.append(("name", target, LOAD, None))
            _scan(node.value, skeleton, occurrences)
            occurrences.append(("name", target, STORE, None))
        else:
            _scan(node.value, skeleton, occurrences)
            _scan(target, skeleton, occurrences)
        return
    skeleton.append(kind)
    for name in kind._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            skeleton.append(len(value))
            for item in value:
                if isinstance(item, ast.AST):
                    _scan(item, skeleton, occurrences)
                else:
                    skeleton.append(item)
        elif isinstance(value, ast.AST):
            _scan(value, skeleton, occurrences)
        else:
            skeleton.append(value)


# --- finding runs -----------------------------------------------------------------------

def _find_runs(scanned: list[_Scanned], banned: set[int]) -> list[_Run]:
    """The runs to print as loops, in order, none overlapping: at each unit, of the
    periods at which its skeleton repeats, the one whose run covers the most units
    (candidates are verified longest first, and only while one could still win)."""
    ids: dict[tuple, int] = {}
    kinds = [ids.setdefault(s.skeleton, len(ids)) for s in scanned]  # skeletons as ints: cheap to compare
    where: dict[int, list[int]] = {}
    for u, kind in enumerate(kinds):
        where.setdefault(kind, []).append(u)
    runs: list[_Run] = []
    owner: dict[int, _Run] = {}  # unit -> the accepted run holding it
    n = len(scanned)
    s = 0
    while s < n - 1:
        best = None
        if s not in banned:
            alike = where[kinds[s]]
            k = bisect.bisect_right(alike, s)
            candidates = []
            for later in alike[k:k + _CANDIDATE_PERIODS]:
                period = later - s
                if period > MAX_PERIOD:
                    break
                count = _repeats(kinds, s, period)
                if count >= MIN_ITERATIONS:
                    candidates.append((count * period, period))
            for reach, period in sorted(candidates, key=lambda c: (-c[0], c[1])):
                if best is not None and best.count * best.period >= reach:
                    break
                run = _verified(scanned, s, period, owner, banned)
                if run is not None and (best is None or run.count * run.period > best.count * best.period):
                    best = run
        if best is None:
            s += 1
            continue
        runs.append(best)
        for u in range(best.start, best.end):
            owner[u] = best
        s = best.end
    return runs


def _repeats(kinds: list[int], start: int, period: int) -> int:
    """How many iterations of `period` units from `start` have the same skeletons
    (counted up to _LOOKAHEAD units: a bound that keeps the search linear)."""
    n, u = min(len(kinds), start + max(period * MIN_ITERATIONS, _LOOKAHEAD)), start + period
    while u < n and kinds[u] == kinds[u - period]:
        u += 1
    return (u - start) // period


def _relation(occ: tuple, unit: int, start: int, period: int, owner: dict) -> tuple:
    """What an occurrence in `unit` refers to, relative to a run from `start`:
    (static part, value that may move by a step per iteration)."""
    if occ[0] == "num":
        return ("num",), occ[2]
    _, _, kind, definition = occ
    if kind == STORE:
        return (STORE,), None
    if definition[0] == "free":  # a parameter or module-level name: np, a constant (maybe one per iteration)
        return (kind, "free"), definition[1]
    du, store = definition
    if du >= start:
        back = (unit - start) // period - (du - start) // period
        return (kind, "in", back, (du - start) % period, store), None
    producer = owner.get(du)
    if producer is None:
        return (kind, "fixed", definition), None
    r, slot = producer.iteration_of(du)
    return (kind, "list", producer.start, slot, store), r


def _verified(scanned: list[_Scanned], start: int, period: int, owner: dict, banned: set[int]) -> Optional[_Run]:
    """The longest run from `start` whose iterations match (see the module
    docstring) and hold no `banned` unit, or None when fewer than MIN_ITERATIONS do."""
    n = len(scanned)

    def iteration(i: int) -> Optional[list]:
        base = start + i * period
        if base + period > n:
            return None
        rels = []
        for j in range(period):
            u = base + j
            if u in banned:
                return None
            if i and scanned[u].skeleton is not scanned[u - period].skeleton and scanned[u].skeleton != scanned[u - period].skeleton:
                return None
            rels.append([_relation(occ, u, start, period, owner) for occ in scanned[u].occurrences])
        return rels

    first, template = iteration(0), iteration(1)
    if template is None:
        return None
    run = _Run(start, period, 2, relations=[[static for static, _ in slot] for slot in template])
    for j, slot in enumerate(template):
        for k, (static, value) in enumerate(slot):
            seed_static, seed_value = first[j][k]
            if static[0] in (LOAD, DELETE) and static[1] == "in":
                if static[2] > 1:
                    return None
                if static[2] == 1:  # a carry: the first iteration read its seed from before the run
                    if seed_static[0] != static[0] or seed_static[1] == "in":
                        return None
                    seed = ((LOAD,) + seed_static[1:], seed_value)  # (a `del` of the seed reads it too)
                    if run.inits.setdefault((static[3], static[4]), seed) != seed:
                        return None
                    continue
            if seed_static != static:
                return None
            if static[1:2] == ("free",) or static == ("num",):
                run.sequences[(j, k)] = [seed_value, value]
            elif value is not None:
                run.affine[(j, k)] = (seed_value, value - seed_value)
    while True:
        rels = iteration(run.count)
        if rels is None or not _same(rels, template, run, run.count):
            break
        for (j, k), values in run.sequences.items():
            values.append(rels[j][k][1])
        run.count += 1
    if run.count < MIN_ITERATIONS:
        return None
    for key, values in list(run.sequences.items()):
        if len({repr(v) for v in values}) == 1:
            del run.sequences[key]  # the same in every iteration
        elif all(type(v) is int for v in values) and _steps_evenly(values):
            run.affine[key] = (values[0], values[1] - values[0])  # an index: `xs[i]`, `xs[998 - i]`
            del run.sequences[key]
    return run


def _steps_evenly(values: list[int]) -> bool:
    step = values[1] - values[0]
    return all(b - a == step for a, b in zip(values, values[1:]))


def _same(rels: list, template: list, run: _Run, i: int) -> bool:
    for j, (slot, model) in enumerate(zip(rels, template)):
        for k, ((static, value), (model_static, _)) in enumerate(zip(slot, model)):
            if static != model_static:
                return False
            if static == ("num",):
                if _breaks(run.sequences[(j, k)], value):
                    return False
            elif value is not None and static[1:2] != ("free",):
                first, step = run.affine[(j, k)]
                if value != first + step * i:
                    return False
    return True


def _breaks(values: list, value: Any) -> bool:
    """Whether a number ends a run: one that was the same in every iteration so far,
    or an int moving by a fixed step, and is not now (the run ends there rather than
    read its numbers from a table); numbers that differ from the start (`0.1 * t`)
    go on, into a table."""
    first, second = values[0], values[1]  # (the run has gone on so far: they decide what it keeps to)
    if repr(first) == repr(second):
        return repr(value) != repr(first)
    if type(first) is int and type(second) is int:
        return not (type(value) is int and value - values[-1] == second - first)
    return False


# --- printing ------------------------------------------------------------------------------

_DROP = ast.Name("<dropped>", ast.Del())  # a `del` target the loop leaves out (a row read again)


class _Printer:
    """Prints units and runs. A name read after a run is rewritten to the loop's name
    (the last iteration's value) or to the run's list (an earlier iteration's). Every
    rewrite is planned before any syntax tree changes, so a run found unprintable
    (`_Unrollable`) leaves the units as they were."""

    def __init__(self, units: list[Unit], scanned: list[_Scanned], runs: list[_Run], fresh: Callable[[str], str],
                 gather: Callable[[tuple], Optional[tuple]], tabulate: Callable[[tuple], Optional[str]],
                 reserved: frozenset):
        self.units, self.scanned, self.runs, self.fresh = units, scanned, runs, fresh
        self.gather, self.tabulate = gather, tabulate
        self.reserved = reserved
        self.previous: dict[str, str] = {}  # loop name -> its copy at the top of the body (`prev_h`)
        self.turn: Optional[int] = None  # while a loop counting down is planned: where it starts
        self.owner = {u: run for run in runs for u in range(run.start, run.end)}
        self.by_start = {run.start: run for run in runs}
        self.names = {run.start: self._loop_names(run) for run in runs}  # run -> (slot, store) -> name
        self.lists: dict[int, dict] = {run.start: {} for run in runs}  # run -> (slot, store) -> list name
        self.rows = {run.start: self._rows(run) for run in runs}  # run -> (slot, store) -> (array, first, step)
        self._plan_lists()
        self.list_names = {name for lists in self.lists.values() for name in lists.values()}
        self.index = fresh("i") if runs else ""

    def _stores(self, u: int) -> list[str]:
        return [occ[1].id for occ in self.scanned[u].occurrences if occ[0] == "name" and occ[2] == STORE]

    def _loop_names(self, run: _Run) -> dict:
        """(slot, store) -> the loop's name for it: the first iteration's, or the last
        one's where the first has only a temporary's (`t12`) and the last a real name
        (`g_Wh`, the accumulated gradient). Names shared by several stores must be
        shared in the same pattern in every iteration (`g += v` binds one name)."""
        first, template, last = {}, {}, {}
        for j in range(run.period):
            stores = zip(self._stores(run.start + j), self._stores(run.start + run.period + j),
                         self._stores(run.end - run.period + j))
            for q, (a, b, c) in enumerate(stores):
                first[(j, q)], template[(j, q)], last[(j, q)] = a, b, c
        nicer = {key: last[key] if _TEMPORARY.fullmatch(name) and not _TEMPORARY.fullmatch(last[key]) else name
                 for key, name in first.items()}
        for names in (nicer, first):
            if _same_pattern(names, template):
                return names
        raise _Unrollable(run)

    def _rows(self, run: _Run) -> dict:
        """The run's values that are a row of a module-level name or argument at an
        index moving by a step (`t1 = xs[i]`): later code reads `xs[995 - i]` again
        rather than a list of them. Such a name is never rebound or deleted, and the
        row is a view, so it reads what the row read (an in-place update of the
        array shows in both)."""
        rows = {}
        for j in range(run.period):
            u = run.start + run.period + j
            stmts, occurrences = self.units[u].stmts, self.scanned[u].occurrences
            if len(stmts) != 1 or self.units[u].after or len(occurrences) != 3:
                continue
            stmt = stmts[0]
            if not (type(stmt) is ast.Assign and type(stmt.value) is ast.Subscript
                    and type(stmt.value.value) is ast.Name and type(stmt.value.slice) is ast.Constant):
                continue
            array, number, target = occurrences
            if (array[0], array[2], number[0], target[2]) != ("name", LOAD, "num", STORE):
                continue
            if run.relations[j][0][:2] != (LOAD, "free") or (j, 0) in run.sequences or (j, 1) not in run.affine:
                continue
            rows[(j, 0)] = (array[1].id, *run.affine[(j, 1)])
        return rows

    def _plan_lists(self) -> None:
        """Which values of which runs later code reads by iteration (a list each)."""
        for u, scanned in enumerate(self.scanned):
            here = self.owner.get(u)
            j = (u - here.start) % here.period if here is not None else None
            for k, occ in enumerate(scanned.occurrences):
                if occ[0] != "name" or occ[2] == STORE or isinstance(occ[3][0], str):
                    continue
                producer = self.owner.get(occ[3][0])
                if producer is None or producer is here:
                    continue
                r, slot = producer.iteration_of(occ[3][0])
                by_iteration = here is not None and (j, k) in here.affine and here.affine[(j, k)][1] != 0
                key = (slot, occ[3][1])
                if (by_iteration or r != producer.count - 1) and key not in self.rows[producer.start]:
                    lists = self.lists[producer.start]
                    if key not in lists:
                        lists[key] = self.fresh(self.names[producer.start][key] + "s")

    def _reference(self, definition: tuple, moving: Optional[tuple[int, int]] = None) -> Optional[ast.expr]:
        """How code outside a run reads `definition`: None (by its own name), the
        loop's name, a row again (`xs[3]`), or the run's list at the definition's own
        iteration, or, `moving` = (first, step), at iteration first + step*i of the
        reading loop."""
        if isinstance(definition[0], str):
            return None
        producer = self.owner.get(definition[0])
        if producer is None:
            return None
        r, slot = producer.iteration_of(definition[0])
        return self._iteration_of(producer, (slot, definition[1]), r, moving)

    def _iteration_of(self, producer: _Run, key: tuple, r: int, moving: Optional[tuple[int, int]]) -> ast.expr:
        """A run's value `key` at its iteration r, or at first + step*i (`moving`)."""
        first, step = moving if moving is not None else (r, 0)
        row = self.rows[producer.start].get(key)
        if row is not None:  # xs[a + b*r] for r = first + step*i
            array, a, b = row
            return ast.Subscript(ast.Name(array, ast.Load()), self._position(a + b * first, b * step), ast.Load())
        if step == 0 and first == producer.count - 1:
            return ast.Name(self.names[producer.start][key], ast.Load())
        index = self._position(first, step)
        return ast.Subscript(ast.Name(self.lists[producer.start][key], ast.Load()), index, ast.Load())

    def _position(self, first: int, step: int) -> ast.expr:
        """`first + step * i` for the loop being printed, in its counting direction: a
        loop that reads last iteration first counts down, from `turn` (`hs[i]`,
        `hs[i - 1]` where counting up would read `hs[995 - i]`)."""
        if self.turn is None or step == 0:
            return _affine(first, step, self._index())
        return _affine(first + step * self.turn, -step, self._index())

    def _turn(self, run: _Run) -> Optional[int]:
        """Where a loop whose every moving index steps down counts down from (the
        first one's start), or None: it counts up."""
        steps = [(first, step) for first, step in run.affine.values() if step]
        if not steps or any(step > 0 for _, step in steps):
            return None
        ones = [first for first, step in steps if step == -1]
        return ones[0] if ones else None

    def _deleted(self, ref: ast.expr) -> ast.expr:
        """`del` of a rewritten name: a name stays a name; a list entry is released
        (`hs[45 - i] = None`: the list keeps its length) and a row read again is
        left alone."""
        if type(ref) is ast.Name:
            return ast.Name(ref.id, ast.Del())
        if type(ref.value) is ast.Name and ref.value.id in self.list_names:
            return ast.Subscript(ref.value, ref.slice, ast.Del())
        return _DROP

    def _index(self) -> ast.expr:
        return ast.Name(self.index, ast.Load())

    def lines(self) -> list[str]:
        pieces: list = []  # planned: (unit, replacements) or a loop's (before, header, body)
        u = 0
        while u < len(self.units):
            run = self.by_start.get(u)
            if run is not None:
                pieces.append(self._loop(run))
                u = run.end
                continue
            pieces.append((self.units[u], self._outside(u)))
            u += 1
        entries: list = []  # comment and `for` lines, and (unit, depth)
        for piece in pieces:
            if isinstance(piece, _Loop):
                entries.extend(self._loop_entries(piece))
            else:
                unit, replace = piece
                entries.append((_replaced(unit, replace), 1))
        rename = self._shorter_names(entries)
        out: list[str] = []
        for entry in entries:
            if isinstance(entry, str):
                out.append(entry)
            else:
                unit, depth = entry
                out.extend(_unit_lines(_renamed(unit, rename) if rename else unit, depth))
        return out

    def _shorter_names(self, entries: list) -> dict[str, str]:
        """Loop names without the numbering of the iteration they were taken from
        (`g_h_994` -> `g_h`, and its list `g_hs`) where the shorter name appears nowhere
        else in the function (an iteration that had it was rolled away): renaming an
        identifier the code does not otherwise use changes nothing it computes."""
        taken = set(self.reserved) | set(RESERVED) | {self.index}
        for entry in entries:
            if not isinstance(entry, str):
                taken.update(_names_in(entry[0]))
        rename: dict[str, str] = {}

        def shorten(name: str, short: str) -> None:
            if short != name and short.isidentifier() and short not in taken:
                rename[name] = short
                taken.add(short)

        for run in self.runs:
            for name in dict.fromkeys(self.names[run.start].values()):
                shorten(name, re.sub(r"_\d+$", "", name))
            for key, name in sorted(self.lists[run.start].items()):
                loop_name = self.names[run.start][key]
                shorten(name, rename.get(loop_name, loop_name) + "s")
        for key_name, name in self.previous.items():
            shorten(name, "prev_" + rename.get(key_name, key_name))
        return rename

    def _outside(self, u: int) -> dict:
        replace: dict[int, ast.expr] = {}
        for occ in self.scanned[u].occurrences:
            if occ[0] != "name" or occ[2] == STORE:
                continue
            ref = self._reference(occ[3])
            if ref is not None:
                replace[id(occ[1])] = self._deleted(ref) if occ[2] == DELETE else ref
            if occ[2] == LOAD and ref is not None and _binds(self.scanned[u], occ[1]):
                if not (type(ref) is ast.Name and ref.id == occ[1].id):  # `g += v` must read the name it binds
                    raise _Unrollable(self.owner[occ[3][0]])
        return replace

    def _loop(self, run: _Run) -> tuple:
        names, lists = self.names[run.start], self.lists[run.start]
        self.turn = self._turn(run)
        previous: dict[tuple, str] = {}  # carries read after this iteration bound their name again
        seeds = []
        for key, (static, value) in sorted(run.inits.items()):
            seed = self._seed(static, value)
            if not (type(seed) is ast.Name and seed.id == names[key]):
                seeds.append((ast.Name(names[key], ast.Store()), seed))
        before: list[ast.stmt] = []
        if seeds:
            targets, values = zip(*seeds)
            if len(seeds) == 1:
                before.append(ast.Assign([targets[0]], values[0]))
            else:
                before.append(ast.Assign([ast.Tuple(list(targets), ast.Store())], ast.Tuple(list(values), ast.Load())))
        for key in sorted(lists):
            before.append(ast.Assign([ast.Name(lists[key], ast.Store())], ast.List([], ast.Load())))
        bound_before = self._bound_before(run)
        body: list = []
        for j in range(run.period):
            u = run.start + run.period + j  # the second iteration is the template
            replace: dict[int, ast.expr] = {}
            stores = 0
            for k, occ in enumerate(self.scanned[u].occurrences):
                static = run.relations[j][k]
                if occ[0] == "num":
                    if (j, k) in run.affine and run.affine[(j, k)][1]:
                        replace[id(occ[1])] = self._position(*run.affine[(j, k)])
                    elif (j, k) in run.sequences:  # a number per iteration: read from a tuple of them
                        table = self.tabulate(tuple(run.sequences[(j, k)]))
                        if table is None:
                            raise _Unrollable(run)
                        replace[id(occ[1])] = ast.Subscript(ast.Name(table, ast.Load()), self._position(0, 1), ast.Load())
                    continue
                node, kind = occ[1], occ[2]
                if kind == STORE:
                    name = names[(j, stores)]
                    read = replace.get(id(node))  # `g += v` reads the name it binds: one name
                    if read is not None and not (type(read) is ast.Name and read.id == name):
                        raise _Unrollable(run)
                    replace[id(node)] = ast.Name(name, ast.Store())
                    stores += 1
                    continue
                if static[1] == "in":
                    key = (static[3], static[4])
                    name = names[key]
                    if static[2] == 1 and name in bound_before[(j, k)]:
                        if key not in previous:
                            previous[key] = self.previous[name] = self.fresh("prev_" + name)
                        name = previous[key]
                    ref = ast.Name(name, ast.Load())
                elif static[1] == "list":
                    first, step = run.affine[(j, k)]
                    ref = self._reference(occ[3], (first, step) if step else None)
                elif static[1] == "free":
                    ref = None
                    if (j, k) in run.sequences:  # a module constant per iteration: one stacked array
                        stacked = self.gather(tuple(run.sequences[(j, k)]))
                        if stacked is None or kind == DELETE:
                            raise _Unrollable(run)
                        name, first, step, scalar_rows = stacked
                        row = self._position(first, step)
                        if scalar_rows:  # `ws[i, ...]`: a 0-d array (`ws[i]` would be a NumPy scalar, no `out=`)
                            row = ast.Tuple([row, ast.Constant(Ellipsis)], ast.Load())
                        ref = ast.Subscript(ast.Name(name, ast.Load()), row, ast.Load())
                else:
                    ref = self._reference(occ[3])
                if ref is not None:
                    replace[id(node)] = self._deleted(ref) if kind == DELETE else ref
            appends = [(name, names[key]) for key, name in sorted(lists.items()) if key[0] == j]
            body.append((self.units[u], replace, appends))
        carried = [ast.Assign([ast.Name(name, ast.Store())], ast.Name(names[key], ast.Load()))
                   for key, name in sorted(previous.items())]
        header = self.units[run.start].header
        if header == self.units[run.start + run.period].header:
            header = ()
        turn, self.turn = self.turn, None
        return _Loop(before, carried, header, run.count, body, turn)

    def _bound_before(self, run: _Run) -> dict:
        """(slot, occurrence) -> the loop names an iteration has bound before it."""
        bound: set = set()
        out = {}
        for j in range(run.period):
            stores = 0
            for k, occ in enumerate(self.scanned[run.start + run.period + j].occurrences):
                out[(j, k)] = frozenset(bound)
                if occ[0] == "name" and occ[2] == STORE:
                    bound.add(self.names[run.start][(j, stores)])
                    stores += 1
        return out

    def _loop_entries(self, loop: "_Loop") -> list:
        entries: list = list(loop.header)
        entries.append((Unit(list(loop.before)), 1))
        if loop.turn is None:
            entries.append(f"    for {self.index} in range({loop.count}):")
        else:  # counting down: the backward pass of a loop
            entries.append(f"    for {self.index} in range({loop.turn}, {loop.turn - loop.count}, -1):")
        entries.append((Unit(list(loop.carried)), 2))
        for unit, replace, appends in loop.body:
            unit = _replaced(unit, replace)
            unit = Unit(unit.stmts, unit.header, unit.suffix, list(unit.after))
            for name, value in appends:
                append = ast.Attribute(ast.Name(name, ast.Load()), "append", ast.Load())
                unit.after.append(ast.Expr(ast.Call(append, [ast.Name(value, ast.Load())], [])))
            entries.append((unit, 2))
        return entries

    def _seed(self, static: tuple, value: Any) -> ast.expr:
        """The value a carry starts from: what the first iteration read."""
        if static[1] == "free":
            return ast.Name(value, ast.Load())
        if static[1] == "list":  # an earlier loop's value
            return self._iteration_of(self.by_start[static[2]], (static[3], static[4]), value, None)
        definition = static[2]
        ref = self._reference(definition)
        return ref if ref is not None else ast.Name(_name_of(self.scanned, definition), ast.Load())


@dataclass
class _Loop:
    """A run, planned: `before` it (carries seeded, lists made), the `carried` copies
    at the top of its body (`prev_h = h`: last iteration's value, kept where this
    iteration binds the name before reading it), and per unit of the body the
    unit, its replacements and the lists it appends to."""

    before: list
    carried: list
    header: tuple
    count: int
    body: list
    turn: Optional[int] = None  # counting down from there (see _Printer._position)




def _names_in(unit: Unit) -> set[str]:
    return {node.id for stmt in unit.stmts + unit.after for node in ast.walk(stmt) if type(node) is ast.Name}


def _renamed(unit: Unit, rename: dict[str, str]) -> Unit:
    """A copy of `unit` with the identifiers in `rename` renamed."""
    replace = {id(node): ast.Name(rename[node.id], node.ctx) for stmt in unit.stmts + unit.after
               for node in ast.walk(stmt) if type(node) is ast.Name and node.id in rename}
    return _replaced(unit, replace)


def _replaced(unit: Unit, replace: dict) -> Unit:
    """A copy of `unit` with the name and constant nodes in `replace` swapped."""
    if not replace:
        return unit
    renamer = _Renamer(replace)

    def renamed(stmts: list) -> list:
        out = []
        for stmt in stmts:
            stmt = renamer.visit(stmt)
            if type(stmt) is ast.Delete:  # names deleted; list entries set to None (`del hs[3]` would shift the rest)
                names = [t for t in stmt.targets if type(t) is ast.Name and t is not _DROP]
                entries = [t for t in stmt.targets if type(t) is ast.Subscript]
                out.extend([ast.Delete(names)] if names else [])
                out.extend(ast.Assign([ast.Subscript(t.value, t.slice, ast.Store())], ast.Constant(None))
                           for t in entries)
                continue
            out.append(stmt)
        return out

    return Unit(renamed(unit.stmts), unit.header, unit.suffix, renamed(unit.after))


def _same_pattern(names: dict, template: dict) -> bool:
    """Whether two namings of the same stores make the same stores share a name."""
    pairs = set(zip(names.values(), template.values()))
    return len(pairs) == len(set(names.values())) == len(set(template.values()))


def _binds(scanned: _Scanned, node: ast.Name) -> bool:
    """Whether `node` is also bound where it is read (an augmented assignment's target)."""
    return any(occ[0] == "name" and occ[1] is node and occ[2] == STORE for occ in scanned.occurrences)


def _name_of(scanned: list[_Scanned], definition: tuple) -> str:
    """The name unit u's `store`-th binding binds (definition = (u, store))."""
    u, store = definition
    return [occ[1].id for occ in scanned[u].occurrences if occ[0] == "name" and occ[2] == STORE][store]


def _affine(first: int, step: int, index: ast.expr) -> ast.expr:
    """`first + step * i`, spelled as a person would: `i`, `i + 3`, `998 - i`."""
    if step == 0:
        return ast.Constant(first)
    term = index if step in (1, -1) else ast.BinOp(ast.Constant(abs(step)), ast.Mult(), index)
    if first == 0:
        return term if step > 0 else ast.UnaryOp(ast.USub(), term)
    if step > 0:
        return ast.BinOp(term, ast.Add(), ast.Constant(first)) if first > 0 else ast.BinOp(term, ast.Sub(), ast.Constant(-first))
    return ast.BinOp(ast.Constant(first), ast.Sub(), term)


def _binds_itself(stmt: ast.stmt) -> bool:
    """`x = x`, which renaming makes of `g_2 = g_1` when both are the loop's `g`."""
    return (type(stmt) is ast.Assign and len(stmt.targets) == 1 and type(stmt.targets[0]) is ast.Name
            and type(stmt.value) is ast.Name and stmt.targets[0].id == stmt.value.id)


def _unparse(stmt: ast.stmt) -> str:
    """A statement's text (compiler/printer.py: `ast.unparse`'s text, faster)."""
    return printer.unparse(stmt)


class _Renamer(ast.NodeTransformer):
    """Copies of statements with some Name and Constant nodes replaced (the originals
    are left as they were)."""

    def __init__(self, replace: dict):
        self.replace = replace

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.replace.get(id(node), node)

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        return self.replace.get(id(node), node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        changed = {}
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                new = [self.visit(item) if isinstance(item, ast.AST) else item for item in value]
                if any(a is not b for a, b in zip(new, value)):
                    changed[name] = new
            elif isinstance(value, ast.AST):
                new = self.visit(value)
                if new is not value:
                    changed[name] = new
        if not changed:
            return node
        copy = type(node)(**{name: getattr(node, name, None) for name in node._fields})
        for name, value in changed.items():
            setattr(copy, name, value)
        return copy


def _unit_lines(unit: Unit, depth: int) -> list[str]:
    indent = "    " * depth
    lines = ["    " * (depth - 1) + line for line in unit.header]
    for stmt in unit.stmts:
        if _binds_itself(stmt):
            continue  # `g = g`: a loop's name already holds the value
        first, *rest = _unparse(stmt).split("\n")
        lines.append(indent + first + unit.suffix)
        lines.extend(indent + line for line in rest)
    for stmt in unit.after:
        lines.extend(indent + line for line in _unparse(stmt).split("\n"))
    return lines

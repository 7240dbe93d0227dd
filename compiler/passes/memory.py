"""Memory planning: the order values are computed in, which of them are printed
inside another expression, which overwrite a dead buffer in place, and where each
large temporary is released.

Code generation prints exactly what the plan says. The plan is made over the IR:

- **Order.** A topological order, ties broken by node id (a node ranks as early as
  its earliest reader), except that work needed only for in-place updates (a
  training step's backward pass and optimizer update) is scheduled after everything
  the returned values need, so a late read of a parameter by the loss never follows
  the parameter's update; and each update runs as soon as the other reads of its
  buffer are done (`W2 -= lr_g_W2` right after the backward pass last reads W2).
- **Inlining.** A value used once, with no user name and no cotangent role, is
  printed inside its consumer's expression (at most `MAX_INLINE` operations per
  expression). An inlined value is evaluated where its consumer is.
- **In place.** The new value of an updated buffer (`W_new = W - lr * g_W`) is
  written as augmented assignments (`W -= lr * g_W`), through chains of inlined
  temporaries (`v *= mu; v += g`), when every read of the buffer's old value, and
  of every view of it, is evaluated before; otherwise the value is computed into a
  new array and copied into the buffer at the very end.
- **Reuse.** Values from `MIN_IN_PLACE_SIZE` elements reuse arrays a careful
  hand-written step would: a bias add goes into the matmul's fresh result
  (`z1 = x @ W1; z1 += b1`), an activation or a mask into a temporary that dies there
  (`np.maximum(z1, 0, out=z1)`, `np.multiply(g, a > 0, out=g)`), and `W -= lr * g`
  scales a dying `g` in place first (`g *= lr; W -= g`).
- **Kept arrays** (a training step, `workspace=True`). Large values go into arrays
  the module keeps between calls (`out=ws1`), shared by values never alive at once
  (as views when their shapes differ), so a step allocates no large array after its
  first call; never a value that is returned, or whose view is.
- **Release.** A large temporary is deleted right after the statement that reads
  it last, so peak memory stays where a careful hand-written function keeps it.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from compiler.aliasing import is_view, views_of
from compiler.passes.dce import effects
from compiler.ir import Aval, Graph, Node, ids_are_topological, topological_order
from compiler.primitives import registry

MAX_INLINE = 8  # operations folded into one expression before a temporary is named
MIN_DEL_SIZE = 4096  # elements: smaller arrays cost less to keep than a `del` line costs to read
# elements: from here on, writing into a dead array (`z += b`, `out=z`) saves more than
# the extra line or keyword costs (an allocation; measured at the benchmark's A step)
MIN_IN_PLACE_SIZE = 256
MMAP_THRESHOLD = 128 * 1024  # bytes: glibc serves larger blocks from fresh pages, at first

# One augmented assignment: (target, operator, operand): `target <op>= operand`, where the
# target is the updated buffer, or a dead temporary scaled before it is subtracted.
Step = tuple[int, ast.operator, int]


@dataclass
class MemoryPlan:
    """What code generation prints, in order."""

    order: list[int]  # every node except graph inputs, in evaluation order
    inlined: set[int]  # printed inside their single consumer's expression
    in_place: dict[int, tuple[int, list[Step]]]  # node -> (buffer input, augmented steps)
    copies: list[tuple[int, int]]  # (buffer input, node): `buffer[...] = node` at the end
    release: dict[int, list[int]] = field(default_factory=dict)  # statement -> values to delete after it
    # statement -> operand k: `v = <operand k>; v <op>= <other>` (into the fresh array)
    into_fresh: dict[int, int] = field(default_factory=dict)
    # statement -> operand: `v = np.f(t, out=t)`, t a temporary whose last read this is
    out_into: dict[int, int] = field(default_factory=dict)
    # node -> kept array number: large values computed into arrays kept between calls
    workspace: dict[int, int] = field(default_factory=dict)


def plan_memory(graph: Graph, returned: Iterable[int], updates: Iterable[tuple[int, int]] = (),
                inline: bool = True, workspace: bool = False) -> MemoryPlan:
    """Plan a function that returns the nodes `returned` and writes each update's
    node into its buffer (a graph input) in place. With `workspace`, large values
    that are not returned are computed into arrays kept between calls (a training
    step: after the first call it allocates no large array)."""
    returned = list(returned)
    updates = list(updates)
    order = _schedule(graph, returned, updates)
    targets = {node: buffer for buffer, node in reversed(updates)}  # first buffer per node
    inlined = _inlined(graph, order, set(graph.outputs) | set(returned) | {node for _, node in updates}, inline)
    position = _positions(graph, order, inlined)
    in_place: dict[int, tuple[int, list[Step]]] = {}
    copies = []
    for buffer, node in updates:
        if node not in in_place and targets.get(node) == buffer:
            steps = _chain(graph, buffer, node, inlined)
            if steps is not None and _old_value_dead(graph, buffer, node, inlined, position):
                in_place[node] = (buffer, _scale_dead_operand(graph, steps, inlined, returned))
                continue
        copies.append((buffer, node))
    plan = MemoryPlan(order, inlined, in_place, copies)
    plan.into_fresh = _into_fresh(graph, order, inlined, in_place, position, set(returned) | set(graph.outputs))
    plan.out_into = _out_into(graph, order, inlined, in_place, position, set(returned) | set(graph.outputs))
    if workspace:
        plan.workspace = _workspace(graph, plan, set(returned) | set(graph.outputs), position)
    plan.release = _releases(graph, plan, position, returned)
    return plan


def _workspace(graph: Graph, plan: MemoryPlan, kept: set[int], position: dict[int, int]) -> dict[int, int]:
    """Large values a ufunc computes (matmul, arithmetic, exp, ...) that are not
    returned and not written in place, with the array each is computed into: arrays
    the function keeps between calls (`np.matmul(x, W1, out=ws1)`). A matmul that a
    bias add follows counts too (`into_fresh`): its product goes into the array, the
    add onto it. Values whose lifetimes do not overlap share an array of their dtype,
    whatever their shapes (each a view of it: `ws5_b = ws5[:65536].reshape(256, 256)`),
    so the kept arrays take about what the values alive at once take, as a careful
    step's temporaries do. A free array of the same size is taken first, then the
    smallest larger one, then the largest, grown."""
    lives_in = {operand: node for node, operand in plan.out_into.items()}  # z1's array then holds a1
    free: dict[np.dtype, list[tuple[int, int]]] = {}  # dtype -> (last read, array) of arrays free from then on
    sizes: dict[int, int] = {}  # array -> elements
    chosen: dict[int, int] = {}
    candidates = [i for i in plan.order if _kept_candidate(graph, plan, i, kept)]
    largest = max((graph.node(i).aval.size for i in candidates), default=0)
    for i in candidates:
        node = graph.node(i)
        if not _worth_keeping(node.aval, largest):
            continue
        holders = [i]
        while holders[-1] in lives_in:
            holders.append(lives_in[holders[-1]])
        if any(alias in kept for h in holders for alias in views_of(graph, h)):
            continue  # a result would be one of the kept arrays, or a view of one
        end = max((position[r] for h in holders for alias in views_of(graph, h)
                   for r in graph.users(alias) if r not in holders), default=position[i])
        pool = free.setdefault(node.dtype, [])
        reusable = [k for k, (last, _) in enumerate(pool) if last < position[i]]
        need = node.aval.size
        if reusable:
            k = min(reusable, key=lambda k: (sizes[pool[k][1]] != need, sizes[pool[k][1]] < need,
                                             abs(sizes[pool[k][1]] - need)))
            array = pool.pop(k)[1]
            sizes[array] = max(sizes[array], need)
        else:
            array = len(sizes) + 1
            sizes[array] = need
        chosen[i] = array
        pool.append((end, array))
    return chosen


def _worth_keeping(aval: Aval, largest: int) -> bool:
    """Whether an array is kept between calls: one malloc may serve from fresh pages
    (128 KiB and up, glibc's first mmap threshold), or one at least a sixteenth of the
    function's largest, whose reuse holds its memory down; not the small change of a
    large step (logits, a bias gradient), which allocate cheaply and would only add
    arrays to read."""
    return aval.size * aval.dtype.itemsize >= MMAP_THRESHOLD or aval.size * 16 >= largest


def _kept_candidate(graph: Graph, plan: MemoryPlan, i: int, kept: set[int]) -> bool:
    node = graph.node(i)
    if i in plan.inlined or i in plan.in_place or i in kept or i in plan.out_into or not node.is_call:
        return False
    if node.aval.size < MIN_IN_PLACE_SIZE or node.aval.weak:
        return False
    if i in plan.into_fresh:
        k = plan.into_fresh[i]
        first = graph.node(node.inputs[k])
        return node.inputs[k] in plan.inlined and registry.get(first.op).ufunc and first.aval == node.aval
    return registry.get(node.op).ufunc


def _statements_to_reuse(graph: Graph, order: list[int], inlined: set[int],
                         in_place: dict) -> Iterable[tuple[int, Node, registry.Primitive]]:
    """The calls printed as statements of their own, large enough (MIN_IN_PLACE_SIZE)
    for writing into a dead array to pay, with their primitives."""
    for i in order:
        node = graph.node(i)
        if i not in inlined and i not in in_place and node.is_call and node.aval.size >= MIN_IN_PLACE_SIZE:
            yield i, node, registry.get(node.op)


def _out_into(graph: Graph, order: list[int], inlined: set[int], in_place: dict, position: dict[int, int],
              kept: set[int]) -> dict[int, int]:
    """Large `v = np.maximum(z, 0)` (or any ufunc, operators included: `v = g * mask`)
    whose operand z is a temporary of v's shape and dtype read for the last time
    there: printed `v = np.maximum(z, 0, out=z)` or `v = np.multiply(g, mask, out=g)`,
    reusing z's array (as careful code applies an activation or a mask in place)."""
    out = {}
    for i, node, prim in _statements_to_reuse(graph, order, inlined, in_place):
        if not (prim.takes_out or (prim.ufunc and prim.lanewise)):  # lanewise: exact overlap is safe
            continue
        for j in dict.fromkeys(node.inputs):
            operand = graph.node(j)
            if (j in inlined or j in in_place or j in kept or not _fresh(operand) or operand.aval != node.aval
                    or registry.get(operand.op).emit is None):
                continue
            aliases = views_of(graph, j)
            if any(alias in kept for alias in aliases):
                continue  # a returned view of it would see the overwrite
            readers = [r for alias in aliases for r in graph.users(alias) if r != j]
            if all(position[r] <= position[i] for r in readers) and j not in out.values():
                out[i] = j
                break
    return out


def _into_fresh(graph: Graph, order: list[int], inlined: set[int], in_place: dict, position: dict[int, int],
                kept: set[int]) -> dict[int, int]:
    """Large statements `v = a + b` where `b` is an inlined, freshly allocated array of
    v's own shape and dtype, printed `v = a; v += b` when `a` is a temporary read for
    the last time there (a running total: `g_W += np.outer(h, g)`, as careful code
    accumulates a gradient), else `v = b; v += a` (`v = x @ w; v += bias`, as careful
    code writes a bias add): the sum needs no second array. Either operand, when
    commutative."""
    out = {}
    taken: set[int] = set()
    for i, node, prim in _statements_to_reuse(graph, order, inlined, in_place):
        if prim.augmented is None or prim.emit is None:
            continue
        sides = (0, 1) if prim.commutative else (0,)
        fresh = [k for k in sides if node.inputs[k] in inlined and graph.node(node.inputs[k]).aval == node.aval
                 and _fresh(graph.node(node.inputs[k]))]
        if not fresh:
            continue  # (a dying operand alone is left to `_out_into`: np.maximum(z, 0, out=z))
        dying = [k for k in sides if node.inputs[k] not in taken and node.inputs[k] != node.inputs[1 - k]
                 and _dies_into(graph, node.inputs[k], i, inlined, in_place, position, kept)]
        out[i] = (dying or fresh)[0]
        taken.add(node.inputs[out[i]])
    return out


def _dies_into(graph: Graph, j: int, i: int, inlined: set[int], in_place: dict, position: dict[int, int],
               kept: set[int]) -> bool:
    """Whether statement `i` may overwrite operand `j`'s array: a fresh temporary of
    i's shape and dtype, printed as its own statement, that nothing reads after i
    (through any view of it) and that is not returned."""
    operand, node = graph.node(j), graph.node(i)
    if (j in inlined or j in in_place or j in kept or not _fresh(operand) or operand.aval != node.aval
            or registry.get(operand.op).emit is None):
        return False
    aliases = views_of(graph, j)
    if any(alias in kept for alias in aliases):
        return False
    return all(position[r] <= position[i] for alias in aliases for r in graph.users(alias) if r != j)


def _fresh(node: Node) -> bool:
    """Whether a call's result is an array it allocated (not a view, not a Python number)."""
    return node.is_call and not is_view(node) and not node.aval.weak and node.aval.shape != ()


def _schedule(graph: Graph, returned: list[int], updates: list[tuple[int, int]]) -> list[int]:
    """Topological order by node id, with nodes that no returned value needs last
    (random draws count as needed: they stay in the order the function made them).
    A node ranks as early as the earliest node that reads it, so a value a rewrite
    made (with a new, high id) for an older consumer is computed where that
    consumer is, not after everything else. An in-place update runs as soon as its
    value is ready and every other read of its buffer is done (`W2 -= lr_g_W2` right
    after the backward pass last reads W2), so its operands die early, as in a
    careful hand-written step."""
    needed = graph.ancestors(list(returned) + effects(graph))
    inputs = set(graph.inputs)
    demand: dict[int, int] = {}
    for i in reversed(graph.order()):
        demand[i] = min([i] + [demand[u] for u in graph.users(i)])
    after = _buffer_reads_before_updates(graph, updates)
    checks = [i for i, node in graph.dag.nodes(data="node") if node.is_call and registry.get(node.op).checks]
    for _, node in updates if checks else ():  # a step writes nothing in place before its last guard
        after.setdefault(node, set()).update(checks)
    if len(needed) == graph.dag.number_of_nodes() and not after:
        # with ids topological every node's demand is its id: the order by id
        order = sorted(graph.dag) if ids_are_topological(graph.dag) else topological_order(
            graph.dag, key=lambda i: (demand[i], i))
    else:
        order = topological_order(graph.dag, key=lambda i: (i not in needed, i not in after, demand[i], i),
                                  after=after)
    return [i for i in order if i not in inputs]


def _buffer_reads_before_updates(graph: Graph, updates: list[tuple[int, int]]) -> dict[int, set[int]]:
    """For each updated node, the other reads of its buffer's old value (and of views
    of it), which must come first: ordering edges for the schedule."""
    out: dict[int, set[int]] = {}
    for buffer, node in updates:
        later = graph.descendants([node]) | {node}
        readers = {r for alias in views_of(graph, buffer) for r in graph.users(alias)}
        readers -= later
        readers -= set(views_of(graph, buffer))
        if readers:
            out.setdefault(node, set()).update(readers)
    return out


def _inlined(graph: Graph, order: list[int], kept: set[int], inline: bool) -> set[int]:
    """Values printed inside their consumer: used once, unnamed, small expressions."""
    inlined: set[int] = set()
    sizes: dict[int, int] = {}
    for i in order:
        node = graph.node(i)
        if node.is_const:
            if node.aval.weak:
                inlined.add(i)  # a Python number prints as a literal
            continue
        size = 1 + sum(sizes.get(j, 0) for j in node.inputs if j in inlined)
        if inline and _inlinable(graph, node, kept) and size <= MAX_INLINE:
            inlined.add(i)
            sizes[i] = size
    return inlined


def _inlinable(graph: Graph, node: Node, kept: set[int]) -> bool:
    if node.id in kept or node.name or node.cotangent_of is not None or node.tangent_of is not None:
        return False
    prim = registry.get(node.op)
    if prim.emit is None or prim.effectful or graph.use_count(node.id) != 1:
        return False
    users = graph.users(node.id)
    return not users or registry.get(graph.node(users[0]).op).inline_operands


def _positions(graph: Graph, order: list[int], inlined: set[int]) -> dict[int, int]:
    """Where each value is evaluated: a statement's own place, or for an inlined
    value the place of the statement whose expression holds it."""
    position: dict[int, int] = {}
    for k, i in enumerate(order):
        if i not in inlined:
            position[i] = k
    for i in reversed(order):
        if i in inlined:
            users = graph.users(i)
            position[i] = position[users[0]] if users else len(order)
    return position


def _chain(graph: Graph, buffer: int, i: int, inlined: set[int]) -> Optional[list[Step]]:
    """Augmented assignments that turn `buffer` into node `i`'s value, or None."""
    if i == buffer:
        return []
    node = graph.node(i)
    prim = registry.get(node.op) if node.is_call else None
    if prim is None or prim.augmented is None or node.aval != graph.node(buffer).aval:
        return None
    x, y = node.inputs
    for link, other in [(x, y), (y, x)] if prim.commutative else [(x, y)]:
        if link != buffer and link not in inlined:
            continue
        before = _chain(graph, buffer, link, inlined)
        if before is None or (before and _touches(graph, other, buffer, inlined)):
            continue  # `other` would be read after the buffer has changed
        return before + [(buffer, prim.augmented, other)]
    return None


def _scale_dead_operand(graph: Graph, steps: list[Step], inlined: set[int], returned: list[int]) -> list[Step]:
    """`W -= lr * g` as `g *= lr; W -= g` when `g` is a temporary that dies there: the
    product then needs no array of its own (a careful hand-written update, and no
    fresh allocation, so no page faults, per step)."""
    out = []
    for target, op, operand in steps:
        node = graph.node(operand)
        scaled = _dead_scaled_temporary(graph, node, inlined, returned) if operand in inlined else None
        if scaled is not None and graph.node(scaled).aval == graph.node(target).aval:
            factor = node.inputs[0] if node.inputs[1] == scaled else node.inputs[1]  # the number
            out += [(scaled, ast.Mult(), factor), (target, op, scaled)]
        else:
            out.append((target, op, operand))
    return out


def _dead_scaled_temporary(graph: Graph, node: Node, inlined: set[int], returned: list[int]) -> Optional[int]:
    """For `c * t` with c a Python number (a literal or a hyperparameter argument) and t
    a fresh temporary read only here, t."""
    if node.op != "multiply":
        return None
    for k in (0, 1):
        c, t = graph.node(node.inputs[k]), graph.node(node.inputs[1 - k])
        if not c.aval.weak or t.id in inlined or not t.is_call or is_view(t):
            continue
        if t.id in returned or t.id in graph.outputs or graph.use_count(t.id) != 1:
            continue
        if registry.get(t.op).emit is None:  # multi-statement values may be shared buffers
            continue
        return t.id
    return None


def _touches(graph: Graph, i: int, buffer: int, inlined: set[int]) -> bool:
    """Whether evaluating node `i` reads `buffer`'s memory: directly, through a view
    of it, or through an inlined operand that does."""
    pending, seen = [i], set()
    while pending:
        j = pending.pop()
        if j == buffer:
            return True
        if j in seen:
            continue
        seen.add(j)
        node = graph.node(j)
        if is_view(node):
            pending.append(node.inputs[0])
        if j in inlined:
            pending.extend(node.inputs)
    return False


def _old_value_dead(graph: Graph, buffer: int, node: int, inlined: set[int], position: dict[int, int]) -> bool:
    """Every read of `buffer`'s old value (or of a view of it) happens before `node`
    overwrites it, and no view of it outlives the function as a result."""
    expression = _expression(graph, node, inlined)
    aliases = views_of(graph, buffer)
    if any(i in graph.outputs for i in aliases if i != buffer):
        return False
    for alias in aliases:
        for reader in graph.users(alias):
            if reader in expression or reader in aliases:
                continue
            if position[reader] >= position[node]:
                return False
    return True


def _expression(graph: Graph, i: int, inlined: set[int]) -> set[int]:
    """Node `i` and the inlined operands its expression is built from."""
    out, pending = set(), [i]
    while pending:
        j = pending.pop()
        out.add(j)
        pending.extend(k for k in graph.node(j).inputs if k in inlined)
    return out


def _releases(graph: Graph, plan: MemoryPlan, position: dict[int, int], returned: list[int]) -> dict[int, list[int]]:
    """For each statement, the large temporaries whose last read it is."""
    kept = set(returned) | {node for _, node in plan.copies} | set(graph.inputs)
    statements = [i for i in plan.order if i not in plan.inlined]
    reads: list[set[int]] = [set() for _ in statements]
    index = {i: k for k, i in enumerate(statements)}
    for i in plan.order:
        if graph.node(i).inputs:
            reads[index[_statement_of(graph, i, plan.inlined)]].update(graph.node(i).inputs)
    releasable = {
        i for i in statements
        if i not in kept and i not in plan.in_place and not _in_kept_array(plan, i) and not graph.node(i).is_const
        and graph.node(i).aval.size >= MIN_DEL_SIZE
    }
    return {statements[k]: names for k, names in release_points(reads, releasable).items()}


def _in_kept_array(plan: MemoryPlan, i: int) -> bool:
    """Whether value `i` lives in a workspace array (directly, or written `out=` into
    one): deleting its name would free nothing."""
    while i in plan.out_into:
        i = plan.out_into[i]
    return i in plan.workspace


def _statement_of(graph: Graph, i: int, inlined: set[int]) -> int:
    """The statement whose expression evaluates node `i`."""
    while i in inlined:
        i = graph.users(i)[0]
    return i


def release_points(reads: list[set], releasable: set) -> dict[int, list]:
    """For statement index k, the releasable values whose last read is statement k."""
    last: dict = {}
    for k, names in enumerate(reads):
        for name in names & releasable:
            last[name] = k
    points: dict[int, list] = {}
    for name, k in sorted(last.items(), key=lambda item: (item[1], item[0])):
        points.setdefault(k, []).append(name)
    return points

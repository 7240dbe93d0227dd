"""Compile time stays linear in graph size. Timings flake on shared machines, so
these tests count work instead: topological sorts per compile, name probes per
fresh name, stack depth, nodes the optimizer's rounds try, shape rules evaluated,
nodes the reverse transform leaves dead. benchmarks/compile_time.py measures the
seconds.
"""
import inspect
import random
import sys
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest

import compiler.ir as ir
import compiler.validation as validation
from compiler import grad
from compiler.ir import Aval, Dag, Graph, OutputList, topological_order
from compiler.naming import Namespace
from compiler.validation import validate

SCALAR = Aval((), np.dtype(float))


def chain(n: int):
    """`x = sin(x) * 1.001 + 0.1` n times, then a sum (benchmarks/compile_time.py's
    program): a fresh function each call."""

    def f(x):
        for _ in range(n):
            x = np.sin(x) * 1.001 + 0.1
        return np.sum(x)

    return f


def reference_order(graph: Graph) -> list[int]:
    return list(nx.lexicographical_topological_sort(graph.dag, key=lambda i: i))


# ---------------------------------------------------------------- topological order


@pytest.fixture
def sorts(monkeypatch):
    """Counts full topological sorts: Graph's own and any networkx one."""
    counts = {"ir": 0, "networkx": 0}
    ir_sort, nx_sort = ir.topological_order, nx.lexicographical_topological_sort

    def counting_ir(*args, **kwargs):
        counts["ir"] += 1
        return ir_sort(*args, **kwargs)

    def counting_nx(*args, **kwargs):
        counts["networkx"] += 1
        return nx_sort(*args, **kwargs)

    monkeypatch.setattr(ir, "topological_order", counting_ir)
    monkeypatch.setattr(nx, "lexicographical_topological_sort", counting_nx)
    return counts


def test_sorts_per_compile_do_not_grow_with_the_graph(sorts):
    per_size = []
    for n in (20, 400):
        sorts["ir"] = sorts["networkx"] = 0
        grad(chain(n))(np.linspace(0.1, 1.0, 3))
        per_size.append(sorts["ir"] + sorts["networkx"])
    assert per_size[0] == per_size[1], per_size
    assert per_size[1] <= 16, per_size  # was 11 full networkx sorts per compile before caching


def test_nodes_reuses_the_order_until_the_graph_changes(sorts):
    g = Graph()
    x = g.add_input(SCALAR)
    y = g.add("sin", (x,), {}, SCALAR)
    z = g.add("multiply", (y, y), {}, SCALAR)
    for _ in range(5):
        assert [n.id for n in g.nodes()] == [x, y, z]
    assert sorts["ir"] == 1
    # every kind of structural change is seen, including one made on the dag directly
    w = g.add("cos", (x,), {}, SCALAR)
    assert [n.id for n in g.nodes()] == [x, y, z, w] and sorts["ir"] == 2
    g.set_inputs(z, (w, y))
    assert [n.id for n in g.nodes()] == [x, y, w, z] and sorts["ir"] == 3
    g.replace_uses(y, x)
    g.remove(y)
    assert [n.id for n in g.nodes()] == [x, w, z] and sorts["ir"] == 4
    g.dag.remove_edge(w, z)  # edges out of step with operands; only the order is checked here
    assert [n.id for n in g.nodes()] == [x, z, w] and sorts["ir"] == 5
    g.dag.remove_nodes_from([w])
    assert [n.id for n in g.nodes()] == [x, z]
    c = g.copy()
    assert [n.id for n in c.nodes()] == [x, z]
    assert all(a is not b for a, b in zip(c.nodes(), g.nodes()))


def random_graph(rng: random.Random, n: int) -> Graph:
    """A DAG whose edges follow a random ranking of the nodes, not their ids (as
    when simplify's new constants and negations are read by older nodes)."""
    g = Graph()
    g.add_input(SCALAR)
    for _ in range(1, n):
        g.add("op", (), {}, SCALAR)
    rank = list(range(n))
    rng.shuffle(rank)
    for i in range(1, n):
        lower = [j for j in range(n) if rank[j] < rank[i]]
        g.set_inputs(i, rng.sample(lower, min(len(lower), rng.randint(0, 3))))
    return g


@pytest.mark.parametrize("seed", range(20))
def test_order_is_networkx_lexicographical_topological_sort(seed):
    rng = random.Random(seed)
    g = random_graph(rng, rng.randint(1, 60))
    assert [n.id for n in g.nodes()] == reference_order(g)
    for _ in range(5):  # mutate, then compare again (the cache must notice)
        ids = list(g.dag.nodes)
        i = rng.choice(ids)
        if rng.random() < 0.5 and not g.users(i) and i not in g.inputs:
            g.remove(i)
        else:
            g.add("op", rng.sample(ids, min(len(ids), 2)), {}, SCALAR)
        assert [n.id for n in g.nodes()] == reference_order(g)
    late = {i for i in g.dag.nodes if rng.random() < 0.3}
    key = lambda i: (i in late, i)  # noqa: E731
    assert topological_order(g.dag, key) == list(nx.lexicographical_topological_sort(g.dag, key=key))


def test_a_cycle_is_reported():
    d = Dag()
    d.add_edges_from([(0, 1), (1, 2), (2, 1)])
    with pytest.raises(nx.NetworkXUnfeasible):
        topological_order(d)
    g = Graph(d)
    with pytest.raises(AssertionError, match="cycle"):
        validate(g)


def test_a_plain_digraph_is_adopted():
    d = nx.DiGraph()
    d.add_edge(1, 0)
    g = Graph(d)
    assert isinstance(g.dag, Dag) and g.order() == [1, 0]


# ---------------------------------------------------------------- names


def old_fresh(used: set, hint: str) -> str:
    """Namespace.fresh as it was: rescan base, base_1, base_2, ... every time."""
    name, k = hint, 0
    while name in used:
        k += 1
        name = f"{hint}_{k}"
    used.add(name)
    return name


def test_fresh_name_costs_constant_probes():
    ns = Namespace()
    names = [ns.fresh("x") for _ in range(5000)]
    assert names[:3] == ["x", "x_1", "x_2"] and names[-1] == "x_4999"
    assert len(set(names)) == len(names)
    assert ns.probes <= 2 * len(names)  # was ~k probes for the k-th rebinding (quadratic)


def test_generated_suffixes_never_collide_with_user_names():
    ns = Namespace()
    assert ns.fresh("x_2") == "x_2"  # a user variable that looks like a suffixed name
    assert [ns.fresh("x") for _ in range(4)] == ["x", "x_1", "x_3", "x_4"]
    assert ns.fresh("x_1") == "x_1_1"  # and a user name after the suffix was handed out
    assert ns.fresh("x_2") == "x_2_1"


def test_fresh_names_match_the_rescanning_namespace():
    rng = random.Random(0)
    ns, used = Namespace({"f"}), set(Namespace({"f"}).used)
    hints = ["x", "x_1", "x_2", "g_x", "g_x_1", "t1", "const", "f", "list", "y_1_1", "y", "y_1"]
    for _ in range(3000):
        if rng.random() < 0.2:
            ns.temp()  # temporaries take names from the same set
            used = set(ns.used)
            continue
        hint = rng.choice(hints)
        assert ns.fresh(hint) == old_fresh(used, hint)


# ---------------------------------------------------------------- outputs


def test_outputs_answer_membership_and_counts_after_any_change():
    g = Graph()
    g.outputs = [3, 4, 3]
    assert isinstance(g.outputs, OutputList)
    assert 3 in g.outputs and g.outputs.count(3) == 2 and 5 not in g.outputs
    g.outputs.append(5)
    g.outputs[0] = 7
    g.outputs.remove(4)
    assert g.outputs == [7, 3, 5]
    assert [g.outputs.count(i) for i in (3, 4, 5, 7)] == [1, 0, 1, 1]
    assert 4 not in g.outputs and 7 in g.outputs
    g.outputs += [8]
    del g.outputs[0]
    assert g.outputs == [3, 5, 8] and 7 not in g.outputs and 8 in g.outputs
    assert [] not in g.outputs  # unhashable: answered like a list


# ---------------------------------------------------------------- stack depth


def test_pipeline_stack_depth_does_not_grow_with_the_graph():
    """A 5,000-op chain (about 35,000 nodes with its backward pass) compiles with
    only 150 frames to spare: any helper that recursed once per node or per
    operation in a chain (or ast.unparse on an unbounded expression) would need
    thousands. benchmarks/compile_time.py compiles a 30,000-op chain."""
    depth = len(inspect.stack(0))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 150)
    try:
        g = grad(chain(5000))
        result = g(np.linspace(0.1, 1.0, 3))
    finally:
        sys.setrecursionlimit(limit)
    assert result.shape == (3,) and np.all(np.isfinite(result))
    source = g.source(np.linspace(0.1, 1.0, 3))
    assert "for i in range(4999):" in source and len(source.splitlines()) < 30  # the user's loop, kept a loop


# ---------------------------------------------------------------- optimizer rounds


def test_later_rounds_simplify_only_near_changes(monkeypatch):
    """The optimizer runs cse, simplify and dce until nothing changes; a round after
    the first tries only the nodes near what changed since, so simplify tries each
    node about once per compile, not once per round (it was 3 full passes)."""
    simplify_module = sys.modules["compiler.passes.simplify"]
    rules_for = simplify_module._rules_for
    tried = []
    monkeypatch.setattr(simplify_module, "_rules_for", lambda op: tried.append(op) or rules_for(op))
    per_size = []
    for n in (20, 400):
        tried.clear()
        grad(chain(n))(np.linspace(0.1, 1.0, 3))
        per_size.append(len(tried))
    # 6 call nodes per iteration (sin, multiply, add; cos and two multiplies backward):
    # one try each, where two full rounds tried 12
    assert per_size[1] - per_size[0] <= 6 * 380, per_size


def test_near_changes_simplify_matches_full_passes():
    """Simplifying only near the changes rewrites exactly what full passes would."""
    passes = sys.modules["compiler.passes"]
    simplify_module = sys.modules["compiler.passes.simplify"]
    results = []
    for near in (True, False):
        original = simplify_module.simplify

        def simplify(graph, near_changes=False):
            return original(graph, near_changes and near)

        passes.simplify = simplify
        try:
            g = grad(chain(30))
            results.append(g.source(np.linspace(0.1, 1.0, 3)))
        finally:
            passes.simplify = original
    assert results[0] == results[1]


# ---------------------------------------------------------------- shape rules and dead nodes


def test_shape_rules_run_once_per_distinct_call(monkeypatch):
    """bind and validate ask each primitive's shape rule through a cache keyed on
    (op, avals, params): the same few calls repeat in every iteration of the chain."""
    calls = []
    real = validation.registry

    def get(op):
        prim = real.get(op)
        return SimpleNamespace(abstract=lambda *avals, **params: calls.append(op) or prim.abstract(*avals, **params))

    monkeypatch.setattr(validation, "registry", SimpleNamespace(get=get))
    per_size = []
    for n in (20, 400):
        monkeypatch.setattr(validation, "_ABSTRACT", {})
        calls.clear()
        grad(chain(n))(np.linspace(0.1, 1.0, 3))
        per_size.append(len(calls))
    assert per_size[0] == per_size[1] and per_size[1] <= 30, per_size


def test_plain_values_key_the_shape_rule_cache():
    assert validation._key("sum", (SCALAR,), {"axis": (0,), "keepdims": False}) is not None
    assert validation._key("sum", (SCALAR,), {"axis": (0,)}) != validation._key("sum", (SCALAR,), {"axis": (0.0,)})
    assert validation._key("full", (), {"value": 1}) != validation._key("full", (), {"value": True})
    assert validation._key("getitem", (SCALAR,), {"index": np.arange(3)}) is None  # arrays are not keys
    assert validation._key("custom_rule", (SCALAR,), {"fn": len}) is None  # nor functions (kept alive)


def test_reverse_leaves_no_dead_cotangents():
    """A VJP rule builds a cotangent for every operand; those of operands that carry
    no gradient (`g * x` for the constant of `x * 1.001`) are dropped as they are
    made, not carried through every pass until dce."""
    from compiler.transforms.reverse import reverse

    g = Graph()
    x = g.add_input(SCALAR)
    y = g.add("sin", (x,), {}, SCALAR)
    c = g.add_const(1.001, Aval((), np.dtype(float), weak=True))
    z = g.add("multiply", (y, c), {}, SCALAR)
    joint, (gx,) = reverse(g, [x], z)
    live = joint.ancestors([gx, z]) | set(joint.inputs)
    assert set(joint.dag.nodes) - live == set(), [joint.node(i) for i in set(joint.dag.nodes) - live]


# ---------------------------------------------------------------- loops in generated code


def test_finding_and_printing_loops_is_linear_in_the_statements():
    """compiler/rolling.py's calls (its functions and generator steps, counted by
    cProfile) grow linearly with the chain: 10x the iterations, at most 12x the calls."""
    import cProfile
    import pstats

    def calls(n: int) -> int:
        g = grad(chain(n))
        profile = cProfile.Profile()
        profile.enable()
        g(np.linspace(0.1, 1.0, 3))
        profile.disable()
        stats = pstats.Stats(profile).stats
        return sum(entry[1] for (filename, _, _), entry in stats.items() if filename.endswith("rolling.py"))

    small, large = calls(300), calls(3000)
    assert small > 0 and large <= 12 * small, (small, large)

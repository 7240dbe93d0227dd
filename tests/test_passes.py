"""The optimization passes: dead code, common subexpressions, algebraic
simplification and folding each do their job, keep every node's exact shape and
dtype (validate()), keep outputs fresh arrays, and never change results."""
import re

import numpy as np
import pytest

from compiler import grad, value_and_grad
from compiler.codegen import generate
from compiler.ir import Aval, Graph
from compiler.passes import cse, dce, optimize, simplify
from compiler.signature import arg_names
from compiler.tracing import trace
from compiler.transforms.reverse import reverse
from compiler.validation import validate


def traced(fn, *args) -> Graph:
    """The forward graph of `fn` with its result(s) as outputs."""
    avals = [Aval(np.shape(a), np.asarray(a).dtype) for a in args]
    graph, result = trace(fn, avals, arg_names(fn, len(args)), lambda tracers: fn(*tracers))
    graph.outputs = [r.id for r in result] if isinstance(result, tuple) else [result.id]
    return graph


def joint(fn, *args) -> Graph:
    """The unoptimized value-and-gradient graph of the scalar `fn`."""
    graph = traced(fn, *args)
    value = graph.outputs[0]
    graph, grads = reverse(graph, list(graph.inputs), value)
    graph.outputs = [value, *grads]
    return graph


def run(graph: Graph, *args):
    return generate(graph, "f", tuple(graph.outputs)).fn(*args)


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes() if n.is_call]


def code(source: str) -> str:
    """The generated statements without comments."""
    return "\n".join(line.split("#")[0].rstrip() for line in source.splitlines())


# dead code


def test_dce_removes_values_no_output_needs_and_keeps_inputs():
    def f(x, unused):
        dead = np.exp(x) * 3.0
        np.sum(dead)
        return np.sin(x)

    graph = traced(f, np.ones(3), np.ones(2))
    before = ops(graph)
    assert before.count("exp") == 1 and "sum" in before
    assert dce(graph) is True
    assert ops(graph) == ["sin"]
    assert len(graph.inputs) == 2 and all(i in graph for i in graph.inputs)
    validate(graph)
    assert dce(graph) is False


def test_the_gradient_drops_the_unused_forward_value():
    src = grad(lambda x: np.sum(np.exp(x))).source(np.ones(3))
    assert ".sum(" not in code(src)


# common subexpressions


def test_cse_merges_identical_computations():
    f = lambda x: np.sum(np.sin(x) * np.sin(x)) + np.sum(np.sin(x), axis=0)  # noqa: E731
    graph = traced(f, np.ones((2, 3)))
    assert ops(graph).count("sin") == 3
    assert cse(graph) is True
    dce(graph)
    validate(graph)
    assert ops(graph).count("sin") == 1
    assert ops(graph).count("sum") == 2  # different axes are different values
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(run(graph, x)[0], f(x), rtol=1e-15)


def test_cse_keeps_constants_that_differ_only_in_sign_of_zero_or_type():
    graph = traced(lambda x: np.sin(x * 0.0) + np.sin(x * -0.0) * np.sin(x * 0) - np.sin(x * 0.0), np.ones(2))
    cse(graph)
    dce(graph)
    assert ops(graph).count("multiply") == 4  # x * -0.0, x * 0 and the product of sines
    graph = traced(lambda x: (np.sin(x * 0.0), np.sin(x * -0.0)), np.ones(2))
    cse(graph)
    out = run(graph, np.array([-1.0, 1.0]))
    assert np.signbit(out[0]).tolist() == [True, False]
    assert np.signbit(out[1]).tolist() == [False, True]


def test_cse_never_makes_two_gradients_the_same_array():
    gx, gy = grad(lambda x, y: np.sum(x + y), argnums=(0, 1))(np.ones(3), np.ones(3))
    assert gx is not gy and not np.shares_memory(gx, gy)
    gx += 1.0
    np.testing.assert_array_equal(gy, np.ones(3))


# simplification


@pytest.mark.parametrize("expr", [
    lambda x: x * 1.0, lambda x: 1 * x, lambda x: x + 0.0, lambda x: 0 + x, lambda x: x - 0,
    lambda x: x / 1.0, lambda x: x ** 1, lambda x: -(-x), lambda x: x.astype(np.float64),
])
def test_identities_vanish(expr):
    graph = traced(lambda x: np.exp(expr(x)), np.ones(3))
    optimize(graph)
    validate(graph)
    assert ops(graph) == ["exp"]


def test_identities_that_would_change_dtype_or_shape_stay():
    graph = traced(lambda i, x: (i * 1.0, x * np.ones((2, 3)), x + np.broadcast_to(0.0, (2, 3))), np.arange(3), np.ones(3))
    optimize(graph)
    validate(graph)
    avals = [graph.node(i).aval for i in graph.outputs]
    assert avals[0] == Aval((3,), np.dtype(np.float64))
    assert avals[1].shape == (2, 3) and avals[2].shape == (2, 3)
    out = run(graph, np.arange(3), np.ones(3))
    assert out[0].dtype == np.float64 and out[1].shape == (2, 3) and out[2].shape == (2, 3)


def test_seeds_of_one_and_pass_through_cotangents_vanish():
    src = code(grad(lambda x, y: np.sum(np.exp(x) + y * 2.0), argnums=(0, 1)).source(np.ones(3), np.ones(3)))
    assert "1.0" not in src.replace("np.full((3,), 2.0", "")
    assert re.search(r"return \((t1|g_x), g_y\)", src) and "= np.exp(x)\n" in src, src
    assert "g_y = np.full((3,), 2.0, dtype=np.float64)" in src, src


def test_negation_becomes_subtraction():
    def f(x, y):
        return np.sum(np.exp(x) + -np.sin(y)) + np.sum(-np.cos(x) + y) + np.sum(x - (-np.tanh(y))) + np.sum((-y) * x)

    graph = traced(f, np.ones(3), np.ones(3))
    optimize(graph)
    validate(graph)
    src = code(generate(graph, "f", graph.outputs[0]).source)
    assert "+ -" not in src and "- -" not in src and "(-y) *" not in src
    assert "np.exp(x) - np.sin(y)" in src and "y - np.cos(x)" in src and "x + np.tanh(y)" in src, src
    assert "- (y * x).sum()" in src, src
    x, y = np.array([0.1, 0.2, 0.3]), np.array([1.0, -2.0, 0.5])
    assert run(graph, x, y)[0] == pytest.approx(f(x, y), rel=1e-14)


def test_backward_pass_reads_as_subtraction():
    src = code(grad(lambda x: np.sum(np.cos(x) * 2.0 - np.exp(-x))).source(np.ones(3)))
    assert "+ -" not in src and "- -" not in src and "-1" not in src, src
    assert "g_x = np.exp(-x) - 2.0 * np.sin(x)" in src, src


def test_constant_folding_of_python_scalars():
    graph = Graph()
    x = graph.add_input(Aval((3,), np.dtype(np.float64)), name="x")
    weak = Aval((), np.dtype(np.float64), weak=True)
    two = graph.add_const(2.0, weak)
    three = graph.add_const(3.0, weak)
    six = graph.add("multiply", (two, three), {}, weak)
    half = graph.add("divide", (six, graph.add_const(12.0, weak)), {}, weak)
    y = graph.add("multiply", (half, x), {}, Aval((3,), np.dtype(np.float64)))
    z = graph.add("multiply", (graph.add_const(4.0, weak), y), {}, Aval((3,), np.dtype(np.float64)))
    graph.outputs = [z]
    validate(graph)
    optimize(graph)
    validate(graph)
    assert ops(graph) == ["multiply"]
    (node,) = [n for n in graph.nodes() if n.op == "multiply"]
    assert [graph.node(i).params.get("value") for i in node.inputs] == [2.0, None]
    np.testing.assert_array_equal(run(graph, np.arange(3.0))[0], [0.0, 2.0, 4.0])


def test_constant_folding_keeps_float32():
    x = np.ones(4, np.float32)
    g = grad(np.mean)
    assert "np.full((4,), 0.25, dtype=np.float32)" in code(g.source(x))
    np.testing.assert_array_equal(g(x), np.full(4, 0.25, np.float32))


def test_comparison_operands_need_no_broadcast():
    x, m = np.ones((3, 4)), np.ones(3)

    def f(x, m):
        return np.sum(np.where(x == np.broadcast_to(np.reshape(m, (3, 1)), (3, 4)), x, 0.0))

    src = code(grad(f).source(x, m))
    assert "broadcast_to" not in src
    assert "x == np.reshape(m, (3, 1))" in src, src
    xv = np.array([[1.0, 2.0, 3.0, 4.0]] * 3)
    np.testing.assert_array_equal(grad(f)(xv, np.array([1.0, 2.0, 5.0])), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])


def test_reshapes_and_broadcasts_of_a_scalar_collapse():
    graph = traced(lambda s, y: (np.reshape(np.broadcast_to(s, (3,)), (3, 1)),
                                 np.broadcast_to(np.reshape(s, (1, 1)), (2, 3)) * y,
                                 np.reshape(np.reshape(y, (6,)), (3, 2))), np.float64(2.0), np.ones((2, 3)))
    optimize(graph)
    validate(graph)
    nodes = [graph.node(i) for i in graph.outputs]
    assert nodes[0].op == "broadcast_to" and graph.node(nodes[0].inputs[0]).is_input
    assert nodes[1].op == "multiply" and all(graph.node(i).is_input for i in nodes[1].inputs)
    assert nodes[2].op == "reshape" and graph.node(nodes[2].inputs[0]).is_input
    out = run(graph, np.float64(2.0), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(out[0], np.full((3, 1), 2.0))
    np.testing.assert_array_equal(out[1], 2.0 * np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(out[2], np.arange(6.0).reshape(3, 2))


def test_max_gradient_has_no_reshaped_scalars():
    src = code(grad(np.max).source(np.ones((3, 4))))
    assert "np.reshape(1.0" not in src and "broadcast_to" not in src, src
    src = code(grad(lambda x: np.sum(np.maximum(x, 0.0))).source(np.ones(3)))
    assert "broadcast_to" not in src and "0.5 *" not in src, src


def test_outputs_never_alias_arguments():
    x, y = np.ones(3), np.arange(3.0)
    for f in (lambda x, y: np.sum(x * y), lambda x, y: np.sum(x * y * 1.0), lambda x, y: np.sum(x * y.reshape(3))):
        gx = grad(f)(x, y)
        np.testing.assert_array_equal(gx, y)
        assert not np.shares_memory(gx, y)
    g = grad(lambda x: x * 2.0)(3.0)
    assert isinstance(g, np.float64) and g == 2.0  # a NumPy scalar, like grad(lambda x: x * x)(3.0)


# passes never change results


def _mlp(x, w1, w2):
    h = np.tanh(x @ w1 + 0.1)
    logits = h @ w2
    z = logits - np.max(logits, axis=1, keepdims=True)
    return -np.mean(z[:, 0] - np.log(np.sum(np.exp(z), axis=1)))


def _mixed(x, w1, w2):
    a = np.maximum(x, 0.5) * 1.0 + 0.0
    b = -(-np.clip(w1, -0.3, 0.3)).T
    c = np.concatenate([a.reshape(-1), b[::-1].ravel(), np.stack([w2[0], w2[1]]).ravel()])
    return np.sum(c ** 2 / 2.0) - np.sum(-c[[0, 0, 3]]) + np.sum(np.where(x > 0, x, -x) * 2.0 * 0.5)


@pytest.mark.parametrize("fn", [_mlp, _mixed])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimization_never_changes_results(fn, dtype):
    rng = np.random.default_rng(5)
    args = (rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(3, 5)).astype(dtype), rng.normal(size=(5, 2)).astype(dtype))
    plain = joint(fn, *args)
    validate(plain)
    optimized = plain.copy()
    optimize(optimized)
    validate(optimized)
    assert len(optimized.dag) < len(plain.dag)
    expected, got = run(plain, *args), run(optimized, *args)
    for e, g in zip(expected, got):
        assert np.shape(e) == np.shape(g) and np.result_type(e) == np.result_type(g)
        np.testing.assert_allclose(g, e, rtol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("single_pass", [cse, simplify, dce])
def test_each_pass_alone_keeps_the_graph_valid_and_the_results(single_pass):
    rng = np.random.default_rng(6)
    args = (rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=(5, 2)))
    for fn in (_mlp, _mixed):
        plain = joint(fn, *args)
        once = plain.copy()
        while single_pass(once):
            validate(once)
        validate(once)
        for e, g in zip(run(plain, *args), run(once, *args)):
            np.testing.assert_allclose(g, e, rtol=1e-12)


def test_value_and_grad_agrees_with_the_unoptimized_graph():
    x = np.array([0.3, -1.2, 2.0])
    f = lambda x: np.sum(np.logaddexp(x, 0.0) * np.sqrt(x * x + 1.0))
    value, g = value_and_grad(f)(x)
    plain = run(joint(f, x), x)
    assert value == pytest.approx(plain[0], rel=1e-15)
    np.testing.assert_allclose(g, plain[1], rtol=1e-14)


# the validator


def _small_graph() -> Graph:
    graph = traced(lambda x, y: np.sum(np.exp(x) * y), np.ones(3), np.ones(3))
    validate(graph)
    return graph


def _node(graph: Graph, op: str):
    return next(n for n in graph.nodes() if n.op == op)


def test_validate_catches_a_wrong_shape_or_dtype():
    graph = _small_graph()
    _node(graph, "exp").aval = Aval((4,), np.dtype(np.float64))
    with pytest.raises(AssertionError, match="exp: recorded"):
        validate(graph)
    graph = _small_graph()
    _node(graph, "multiply").aval = Aval((3,), np.dtype(np.float32))
    with pytest.raises(AssertionError, match="multiply: recorded float32"):
        validate(graph)


def test_validate_catches_operands_out_of_sync_with_edges():
    graph = _small_graph()
    mul = _node(graph, "multiply")
    mul.inputs = (mul.inputs[0], graph.inputs[0])  # edge from y still there, none from x
    with pytest.raises(AssertionError, match="edges"):
        validate(graph)


def test_validate_catches_a_cycle_and_a_dangling_output():
    graph = _small_graph()
    exp, mul = _node(graph, "exp"), _node(graph, "multiply")
    graph.set_inputs(exp.id, (mul.id,))
    with pytest.raises(AssertionError, match="cycle"):
        validate(graph)
    graph = _small_graph()
    graph.outputs = [graph.next_id + 5]
    with pytest.raises(AssertionError, match="not in the graph"):
        validate(graph)


def test_validate_catches_a_stray_input_node():
    graph = _small_graph()
    graph.inputs.pop()
    with pytest.raises(AssertionError, match="not a graph input"):
        validate(graph)


def test_float32_backward_uses_python_scalars_not_numpy_scalars():
    x = np.ones((4, 2), np.float32)
    g = grad(lambda x: np.mean((x - 1.5) ** 2))
    src = code(g.source(x))
    assert "np.float32(" not in src and "/ 4" in src, src
    np.testing.assert_array_equal(g(x), np.full((4, 2), -0.125, np.float32))


def test_negation_moves_out_of_reductions_and_reshapes():
    def f(x, y):
        return np.sum(y + np.sum(-np.exp(x), axis=1)) + np.sum(x - np.reshape(-y, (3, 1)))

    graph = traced(f, np.ones((3, 2)), np.ones(3))
    optimize(graph)
    validate(graph)
    src = code(generate(graph, "f", graph.outputs[0]).source)
    assert "y - np.exp(x).sum(axis=1)" in src and "x + np.reshape(y, (3, 1))" in src, src
    x, y = np.arange(6.0).reshape(3, 2) / 6, np.array([1.0, -1.0, 0.5])
    assert run(graph, x, y)[0] == pytest.approx(f(x, y), rel=1e-14)


def test_a_scalar_times_a_product_scales_the_smaller_factor():
    """c * (A @ B) becomes A @ (c * B) when B is smaller than the product, which a
    sum of c * B then shares; not when the product is read again, nor when scaling
    would change a factor's dtype. Values are unchanged (to rounding)."""
    from compiler import jit

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(3, 40))

    def scaled(a, b, c):
        return c * (a @ b), c * b.sum(axis=1)

    lines = jit(scaled).source(a, b, 0.5).splitlines()
    assert [line.split("  #")[0].strip() for line in lines[4:7]] == [
        "c_b = c * b", "t1 = a @ c_b", "t2 = c_b.sum(axis=1)"], lines
    for got, want in zip(jit(scaled)(a, b, 0.5), scaled(a, b, 0.5)):
        np.testing.assert_allclose(got, want, rtol=1e-13)

    def read_twice(a, b, c):
        p = a @ b
        return c * p, p

    assert "c * p" in jit(read_twice).source(a, b, 0.5)
    ints = rng.integers(0, 5, size=(3, 40))
    assert "0.5 * a" in jit(lambda a, b: 0.5 * (a @ b)).source(a, ints)  # not the integer factor
    np.testing.assert_allclose(jit(lambda a, b: 0.5 * (a @ b))(a, ints), 0.5 * (a @ ints), rtol=1e-13)
    assert "0.5 * (a @ b)" in jit(lambda a, b: 0.5 * (a @ b)).source(ints.T, ints)


def test_column_sums_of_computed_matrices_are_matrix_vector_products():
    """`t.sum(axis=0)` for a float matrix the program made prints as `ones @ t` (one
    BLAS pass), in its dtype; an argument's sum, an integer sum, a kept axis and other
    axes stay reductions. Values agree to rounding."""
    from compiler import jit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10))
    for dtype in (np.float64, np.float32):
        xd = x.astype(dtype)
        f = lambda x: (np.tanh(x).sum(axis=0), x.sum(axis=0), np.tanh(x).sum(axis=0, keepdims=True))  # noqa: E731
        source = jit(f).source(xd)
        assert source.count("ones @") == 1 and "x.sum(axis=0)" in source and "keepdims=True" in source, source
        for got, want in zip(jit(f)(xd), f(xd)):
            assert got.dtype == want.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == np.float64 else 1e-5)
    ints = rng.integers(0, 5, size=(6, 3))
    assert "ones" not in jit(lambda i: (i * 2).sum(axis=0)).source(ints)
    np.testing.assert_array_equal(jit(lambda i: (i * 2).sum(axis=0))(ints), (ints * 2).sum(axis=0))

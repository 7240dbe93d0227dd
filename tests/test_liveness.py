"""Generated code releases large temporaries after their last read, and only those."""
import ast

import re

import numpy as np

from compiler import compile_step, grad, jit
from compiler.passes.memory import MIN_DEL_SIZE, release_points
from runtime import nn, optim


def test_release_points_pick_the_last_read():
    reads = [{"a"}, {"a", "b"}, {"b", "c"}, {"c"}]
    assert release_points(reads, {"a", "b", "c"}) == {1: ["a"], 2: ["b"], 3: ["c"]}
    assert release_points(reads, {"b"}) == {2: ["b"]}


def _deleted_and_used_after(source: str) -> list[tuple[str, bool]]:
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    out = []
    for k, stmt in enumerate(fn.body):
        if isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                later = {n.id for s in fn.body[k + 1 :] for n in ast.walk(s) if isinstance(n, ast.Name)}
                out.append((target.id, target.id in later))
    return out


def test_training_step_deletes_dead_activations_and_never_a_live_name():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([64, 128, 64, 10], rng=rng)
    x, y = rng.standard_normal((64, 64)), rng.integers(0, 10, 64)

    def loss_fn(params, x, y):
        return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)

    # a gradient releases each large temporary after its last read
    source = grad(loss_fn).source(params, x, y)
    deleted = _deleted_and_used_after(source)
    assert {"z1", "a1", "g_z1"} <= {name for name, _ in deleted}
    assert not any(used for _, used in deleted)
    assert "del W1" not in source and "del x" not in source
    # a training step computes them into arrays it keeps between calls instead
    source = compile_step(loss_fn, optim.SGD(lr=0.1, momentum=0.9)).source(params, x, y)
    assert "z1 = np.matmul(x, W1, out=ws" in source and "g_z1 = np.multiply(g_a1, a1 > 0, out=g_a1)" in source
    assert not any(used for _, used in _deleted_and_used_after(source))
    assert "del W1" not in source and "del x" not in source


def test_small_values_and_returned_values_are_not_deleted():
    def f(x):
        h = np.tanh(x)
        return np.sum(h * h)

    small = grad(f).source(np.ones(8))
    assert "del " not in small
    big = grad(f).source(np.ones(MIN_DEL_SIZE))
    assert "g_x" not in {name for name, _ in _deleted_and_used_after(big)}
    assert np.allclose(grad(f)(np.full(MIN_DEL_SIZE, 0.3)), 2 * np.tanh(0.3) * (1 - np.tanh(0.3) ** 2))


def test_large_captured_constants_are_never_deleted():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 30)), rng.normal(size=200)
    loss = grad(lambda w: np.mean((X @ w - y) ** 2))
    w = rng.normal(size=30)
    assert np.allclose(loss(w), 2 * X.T @ (X @ w - y) / 200)
    assert loss(w) is not loss(w)


def test_a_dying_operand_is_overwritten_only_when_no_returned_view_shares_it():
    """`v = u * 2` may be computed into u's array when u dies there (`out=u`), but not
    when a view of u (here a reshape) is returned: the caller would see the overwrite."""
    x = np.random.default_rng(0).standard_normal((64, 64))

    def f(x):
        u = np.exp(x)
        return u * 2, u.reshape(32, 128)

    def g(x):
        u = np.exp(x)
        return u * 2, x.sum()

    doubled, view = jit(f)(x)
    np.testing.assert_allclose(doubled, 2 * np.exp(x))
    np.testing.assert_allclose(view, np.exp(x).reshape(32, 128))
    assert "out=" not in jit(f).source(x)
    assert "np.multiply(u, 2, out=u)" in jit(g).source(x)
    np.testing.assert_allclose(jit(g)(x)[0], 2 * np.exp(x))


def test_a_kept_array_shared_by_many_shapes_names_every_view():
    """Thirty large products of different shapes, never alive at once, share one kept
    array as thirty views (`ws1_a` ... `ws1_z`, `ws1_27` ...); the step is right."""
    def loss(p):
        total = 0.0
        for k in range(30):
            total = total + np.sum(p["x"][:, : 200 + k] * p["x"][:, 1 : 201 + k])
        return total

    x = np.random.default_rng(0).normal(size=(256, 300))
    params = {"x": x.copy()}
    step = compile_step(loss, optim.SGD(lr=1e-3))
    np.testing.assert_allclose(step(params), loss({"x": x}), rtol=1e-12)
    source = step.source(params)
    assert re.search(r"^ws\d+_z = ", source, re.M) and re.search(r"^ws\d+_30 = ", source, re.M), source
    np.testing.assert_allclose(params["x"], x - 1e-3 * grad(loss)({"x": x})["x"], rtol=1e-12)

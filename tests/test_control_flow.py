"""Python control flow on traced values: `if`, `while`, `break`, `and`/`or`/`not`,
conditional expressions, `bool()`, `float()`, `int()`, `.item()`, builtin
min/max/abs and `range(int(n))`. Each call is traced with its values at hand, each
decision becomes a guard checked where the user's code took it, and a call whose
values take another path compiles (or reuses) that path: the derivative is that of
the path the values take, as in autograd and PyTorch."""
import logging
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler import UnsupportedError, compile_step, grad, hessian, jit, jvp, value_and_grad
from compiler.api import MAX_PATHS
from control_flow_functions import newton_sqrt, piecewise, quiz_branch, taylor_exp
from runtime import optim
from runtime.check import numerical_grad
from runtime.paths import PathMiss

GOLDEN = Path(__file__).parent / "golden" / "quiz_branch_value_and_grad.py"
X = np.array([0.5, 1.0, -0.2])


def test_a_piecewise_function_called_with_both_signs_compiles_twice():
    g = grad(piecewise)
    for k in range(40):
        x = X if k % 2 == 0 else -X
        np.testing.assert_allclose(g(x), numerical_grad(piecewise, x), rtol=1e-7, atol=1e-9)
    assert g.trace_count == 2


def test_the_generated_code_checks_each_decision_at_the_users_line():
    assert value_and_grad(quiz_branch, argnums=(0, 1)).source(2.0, 3.0) == GOLDEN.read_text()
    for x, z in ((2.0, 3.0), (2.0, 0.1), (1.5, 2.0), (3.0, 0.2)):
        value, gradient = value_and_grad(quiz_branch, argnums=(0, 1))(x, z)
        assert value == pytest.approx(quiz_branch(x, z), rel=1e-12)
        np.testing.assert_allclose(gradient, numerical_grad(quiz_branch, x, z, argnums=(0, 1)), rtol=1e-6)


def test_newtons_square_root_by_while_to_convergence():
    for a in (2.0, 9.0, 0.3):
        assert grad(newton_sqrt)(a) == pytest.approx(0.5 / np.sqrt(a), rel=1e-9)


def test_a_taylor_series_summed_until_a_term_is_small_with_break():
    for x in (0.7, -1.3):
        assert grad(taylor_exp)(x) == pytest.approx(np.exp(x), rel=1e-10)
        assert jit(taylor_exp)(x) == pytest.approx(np.exp(x), rel=1e-12)


def test_boolean_operators_conditional_expressions_and_builtins():
    def f(x, y):
        s = np.sum(x)
        scale = 2.0 if s > 0 and not np.max(x) > 5 else -1.0
        if s < -10 or np.min(x) > 100:
            scale = 0.0
        top = max(s, 0.5) + min(np.sum(y), 1.0) + abs(s)
        return scale * top * np.sum(x * y)

    y = np.array([0.3, -0.1, 0.4])
    for x in (X, -X, X * 3, X * 40):
        for argnum in (0, 1):
            np.testing.assert_allclose(grad(f, argnums=argnum)(x, y),
                                       numerical_grad(f, x, y, argnums=argnum), rtol=1e-6, atol=1e-8)


def test_a_loop_count_computed_from_data():
    def f(x):
        total = x
        for _ in range(int(np.sum(x) * 2)):
            total = np.sin(total) + x
        return np.sum(total) * x[0].item()

    for x in (np.array([1.2, 0.3]), np.array([2.1, 0.2]), np.array([1.3, 0.2])):
        g = grad(f)(x)
        n = int(np.sum(x) * 2)
        def by_hand(v, n=n, c=x[0]):
            total = v
            for _ in range(n):
                total = np.sin(total) + v
            return np.sum(total) * c  # .item() is a constant to the derivative, as in PyTorch
        np.testing.assert_allclose(g, numerical_grad(by_hand, x), rtol=1e-6, atol=1e-8)


def test_forward_mode_second_order_and_nested_gradients_through_branches():
    x = np.array([0.4, -0.3, 0.8])
    for v in (x, -x):
        t = np.array([1.0, 0.5, -2.0])
        _, tangent = jvp(piecewise, (v,), (t,))
        assert tangent == pytest.approx(np.sum(numerical_grad(piecewise, v) * t), rel=1e-7)
        H = hessian(piecewise)(v)
        for i in range(len(v)):
            np.testing.assert_allclose(H[i], numerical_grad(lambda w: grad(piecewise)(w)[i], v), rtol=1e-5, atol=1e-7)
        inner = grad(piecewise)
        outer = grad(lambda w: np.sum(inner(w) ** 2))
        np.testing.assert_allclose(outer(v), numerical_grad(lambda w: np.sum(inner(w) ** 2), v), rtol=1e-5, atol=1e-7)


def test_paths_beyond_the_bound_are_traced_again_and_explained(caplog):
    def f(x):
        k = int(np.floor(x))  # every integer part is a path
        return x * k

    g = grad(f)
    compiler.explain_retraces(True)
    try:
        with caplog.at_level(logging.WARNING, logger="adjoint"):
            for x in [k + 0.5 for k in range(MAX_PATHS + 3)] + [0.5]:
                assert g(x) == np.floor(x)
    finally:
        compiler.explain_retraces(False)
    assert any("paths per signature" in r.getMessage() for r in caplog.records)
    assert any("took a path not compiled yet" in r.getMessage() for r in caplog.records)


def test_a_saved_module_holds_one_path_and_says_when_values_take_another(tmp_path):
    import importlib.util

    path = grad(piecewise).save(tmp_path / "piecewise_grad.py", X)
    text = path.read_text()
    assert "from runtime" not in text and "class PathMiss(Exception)" in text
    spec = importlib.util.spec_from_file_location("piecewise_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_allclose(module.piecewise_grad(X), grad(piecewise)(X))
    with pytest.raises(Exception, match="if np.sum\\(x\\) > 0") as info:
        module.piecewise_grad(-X)
    assert type(info.value).__name__ == "PathMiss"


def test_decisions_with_random_draws_are_refused():
    def noisy(x, rng):
        noise = rng.normal(size=x.shape)
        if np.sum(x) > 0:
            return np.sum(x * noise)
        return np.sum(x)

    with pytest.raises(UnsupportedError, match="draws random numbers"):
        grad(noisy)(X, np.random.default_rng(0))

    def decided_by_a_draw(x, rng):
        if np.sum(rng.normal(size=x.shape)) > 0:
            return np.sum(x)
        return -np.sum(x)

    with pytest.raises(compiler.TracingError, match="random draw"):
        grad(decided_by_a_draw)(X, np.random.default_rng(0))


def test_the_generated_code_raises_pathmiss_before_any_other_path_runs():
    compiled = jit(piecewise)
    compiled(X)
    fn = compiled.path_for((X,), {})[0].generated.fn
    with pytest.raises(PathMiss):
        fn(-X)


def test_a_training_step_with_a_branch_updates_in_place_only_on_the_path_taken():
    """A step's guards all come before its in-place updates: a call whose values take
    another path writes nothing, then runs (or compiles) that path."""
    def loss(params, x):
        r = params["w"] * x
        if np.sum(r) > 0:
            return np.sum(r ** 2)
        return np.sum(np.abs(r))

    params, expected = {"w": np.array([1.0, 2.0])}, np.array([1.0, 2.0])
    step = compile_step(loss, optim.SGD(lr=0.1))
    for x in [np.ones(2), -3 * np.ones(2), np.ones(2), -np.ones(2), np.ones(2)]:
        r = expected * x
        value, g = (np.sum(r ** 2), 2 * r * x) if np.sum(r) > 0 else (np.sum(np.abs(r)), np.sign(r) * x)
        assert step(params, x) == pytest.approx(value)
        expected = expected - 0.1 * g
        np.testing.assert_allclose(params["w"], expected)
    assert step.trace_count == 2
    source = step.source(params, np.ones(2))
    assert source.index("raise PathMiss") < source.index("w -= ")


def test_threads_taking_different_paths_at_once_get_their_own_paths_values():
    import threading

    g = grad(piecewise)
    errors = []

    def work(sign):
        for _ in range(100):
            x = sign * X
            if not np.allclose(g(x), numerical_grad(piecewise, x), rtol=1e-6, atol=1e-8):
                errors.append(sign)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1.0, -1.0, 1.0, -1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and g.trace_count == 2


def test_jax_structured_control_flow_in_both_modes():
    """cond, fori_loop, while_loop and scan with JAX's signatures: values as eager
    NumPy, gradients (reverse through while_loop too) and tangents as finite differences."""
    from compiler import cond, fori_loop, scan, while_loop

    def f(x):
        y = cond(np.sum(x) > 0, lambda v: np.sin(v) * 2.0, lambda v: v ** 2, x)
        y = fori_loop(0, 3, lambda i, v: v * 0.5 + np.cos(v) * i, y)
        y = while_loop(lambda v: np.sum(v ** 2) > 0.1, lambda v: v * 0.6, y)
        carry, ys = scan(lambda c, xi: (c + np.tanh(xi * c), c * xi), np.sum(y), x)
        _, back = scan(lambda c, xi: (c * 0.9 + xi, c), 0.0, ys, reverse=True)
        return carry + np.sum(ys ** 2) + np.sum(back)

    for x in (np.array([0.3, -0.2, 0.5]), np.array([-0.4, 0.1, -0.3])):
        assert jit(f)(x) == pytest.approx(f(x), rel=1e-12)
        np.testing.assert_allclose(grad(f)(x), numerical_grad(f, x), rtol=1e-6, atol=1e-8)
        t = np.array([1.0, -0.5, 0.25])
        assert jvp(f, (x,), (t,))[1] == pytest.approx(np.sum(numerical_grad(f, x) * t), rel=1e-6)


def test_fuzzer_found_paths_that_make_an_int_static_and_item_of_one_element_arrays():
    """A path that needs an int's value (np.tile) after one that did not: the int
    becomes static, and the new path runs with its own signature's arguments. And
    `.item()` of a one-element array of any rank, as NumPy's."""
    def f(x, n):
        if np.sum(x) > 0:
            return np.sum(x) * n
        return np.sum(np.tile(x, n))

    x = np.array([1.0, 2.0])
    for transform in (jit(f), grad(f)):
        results = [transform(v, 2) for v in (x, -x, x)]
        np.testing.assert_allclose(results[0], results[2])
    assert jit(f)(-x, 2) == f(-x, 2)
    assert grad(lambda x: np.sum(x) * x.item())(np.array([1.5])) == pytest.approx([1.5])


def test_a_number_decided_by_float_is_checked_to_its_last_bits_tolerance():
    """float() of a value that the compiled code computes in another order than the
    trace (a softmax's sum, 1 to the last bit) takes the same path, not a new one
    per call (the fuzzer found the compiled path missing on its own values)."""
    def f(x):
        p = np.exp(x) / np.sum(np.exp(x))
        return x * np.tanh(float(np.sum(p)))

    compiled = jit(f)
    for seed in range(6):
        x = np.random.default_rng(seed).normal(size=5)
        np.testing.assert_allclose(compiled(x), f(x), rtol=1e-12)
    assert compiled.trace_count == 1


def test_a_float32_number_decided_by_float_is_checked_to_float32_last_bits():
    """Found by the fuzzer: a float32 value the compiled code rounds differently in its
    last bits (a scalar factor folded by the optimizer) is the same path."""
    def f(x):
        v = np.sin(x * -1.36 * float(np.sum(x)))
        return np.sum(v) * 2.0 if float(np.sum(v)) > -100.0 else np.sum(v)

    x = np.array([0.31, 0.52, 0.13], dtype=np.float32)
    compiled = grad(f)
    compiled(x)
    compiled(x)
    assert compiled.trace_count == 1

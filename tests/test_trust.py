"""What adjoint guarantees beyond single gradients (README "What adjoint guarantees"):
threads, state that must never go stale, traced ints, bounded caches, random
Generators as arguments, and debug_nans."""
import threading

import numpy as np
import pytest

import compiler
from compiler import NonFiniteError, compile_step, grad, jit, value_and_grad
from runtime import nn, optim

# --- threads -------------------------------------------------------------------------


def test_threads_compile_each_signature_once_and_never_raise_spuriously():
    def f(x, w):
        return np.sum(np.tanh(x @ w) ** 2)

    g = grad(f, argnums=1)
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (4, 2), (5, 3), (2, 4)]
    cases = [(rng.normal(size=(1, s[0])), rng.normal(size=s)) for s in shapes]
    expected = [grad(lambda w, x=x: f(x, w))(w) for x, w in cases]
    errors, barrier = [], threading.Barrier(8)

    def work(k: int) -> None:
        barrier.wait()
        for call in range(200):
            x, w = cases[(k + call) % 4]
            try:
                result = g(x, w)
                np.testing.assert_allclose(result, expected[(k + call) % 4])
            except Exception as err:  # noqa: BLE001 - any failure is reported below
                errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert g.trace_count == 4


def test_a_transform_inside_another_thread_trace_does_not_see_its_tracers():
    results = {}

    def inner(k):
        results[k] = grad(lambda x: np.sum(np.sin(x) * k))(np.linspace(0, 1, 3 + k))

    threads = [threading.Thread(target=inner, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(6):
        np.testing.assert_allclose(results[k], np.cos(np.linspace(0, 1, 3 + k)) * k)


# --- no stale state ------------------------------------------------------------------

SCALE = 2.0
WEIGHTS = np.array([1.0, 2.0, 3.0])


def _scaled(x):
    return np.sum(x * WEIGHTS) * SCALE


def test_global_arrays_are_read_live_and_rebinding_retraces():
    global WEIGHTS, SCALE
    g = grad(_scaled)
    x = np.ones(3)
    np.testing.assert_allclose(g(x), [2.0, 4.0, 6.0])
    saved = WEIGHTS
    try:
        WEIGHTS[...] = [3.0, 2.0, 1.0]         # in place: seen without a retrace
        np.testing.assert_allclose(g(x), [6.0, 4.0, 2.0])
        assert g.trace_count == 1
        WEIGHTS = np.array([1.0, 1.0, 1.0])    # rebinding: traced again
        np.testing.assert_allclose(g(x), [2.0, 2.0, 2.0])
        SCALE = 0.5                            # a Python float global too
        np.testing.assert_allclose(g(x), [0.5, 0.5, 0.5])
        assert g.trace_count == 3
    finally:
        WEIGHTS, SCALE = saved, 2.0
        WEIGHTS[...] = [1.0, 2.0, 3.0]


def test_closure_arrays_are_read_live_and_rebinding_retraces():
    bias = np.array([0.5, -0.5])

    def loss(w):
        return np.sum((w + bias) ** 2)

    g = grad(loss)
    w = np.zeros(2)
    np.testing.assert_allclose(g(w), [1.0, -1.0])
    bias += 1.0                                 # in place
    np.testing.assert_allclose(g(w), [3.0, 1.0])
    assert g.trace_count == 1
    source = g.source(w)
    assert "bias" in source and "the caller's own" in source

    def rebind():
        nonlocal bias
        bias = np.array([10.0, 10.0])

    rebind()
    np.testing.assert_allclose(g(w), [20.0, 20.0])
    assert g.trace_count == 2


def test_learning_rate_changes_and_schedules_take_effect_without_a_retrace():
    def loss(p):
        return np.sum(p["w"] ** 2) / 2

    opt = optim.SGD(lr=0.1)
    params = {"w": np.array([1.0])}
    step = compile_step(loss, opt)
    step(params)
    np.testing.assert_allclose(params["w"], [0.9])
    opt.lr = 0.0
    step(params)
    np.testing.assert_allclose(params["w"], [0.9])
    opt.lr = 0.5
    step(params)
    np.testing.assert_allclose(params["w"], [0.45])
    assert step.trace_count == 1

    schedule = optim.SGD(lr=lambda t: 0.5 ** t)   # 1, 0.5, 0.25, ...
    params = {"w": np.array([1.0])}
    step = compile_step(loss, schedule)
    expected = 1.0
    for t in range(4):
        step(params)
        expected -= 0.5 ** t * expected
        np.testing.assert_allclose(params["w"], [expected])
    assert step.trace_count == 1


@pytest.mark.parametrize("name, value", [("momentum", 0.0), ("weight_decay", 0.1)])
def test_other_hyperparameters_are_run_time_inputs(name, value):
    def loss(p):
        return np.sum(p["w"] ** 2) / 2

    opt = optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    eager = optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    params, reference = {"w": np.array([1.0, -2.0])}, {"w": np.array([1.0, -2.0])}
    step = compile_step(loss, opt)
    state = eager.init(reference)
    for k in range(3):
        if k == 1:
            setattr(opt, name, value)
            setattr(eager, name, value)
        step(params)
        eager.apply(reference, {"w": reference["w"].copy()}, state)
        np.testing.assert_allclose(params["w"], reference["w"])
    assert step.trace_count == 1


def test_adam_betas_are_run_time_inputs():
    def loss(p):
        return np.sum(p["w"] ** 2)

    opt = optim.Adam(lr=0.1)
    params = {"w": np.array([1.0, -2.0])}
    step = compile_step(loss, opt)
    step(params)
    opt.b1, opt.b2 = 0.5, 0.9
    step(params)
    reference, eager = {"w": np.array([1.0, -2.0])}, optim.Adam(lr=0.1)
    state = eager.init(reference)
    eager.apply(reference, {"w": 2 * reference["w"]}, state)
    eager.b1, eager.b2 = 0.5, 0.9
    eager.apply(reference, {"w": 2 * reference["w"]}, state)
    np.testing.assert_allclose(params["w"], reference["w"])
    assert step.trace_count == 1


def test_inline_grad_in_a_loop_reuses_the_compiled_code():
    def f(x):
        return np.sum(np.sin(x))

    x = np.linspace(0, 1, 5)
    first = grad(f)
    for _ in range(5):
        np.testing.assert_allclose(grad(f)(x), np.cos(x))
    assert grad(f) is first and first.trace_count == 1


def test_the_cache_is_bounded_and_can_be_cleared():
    g = jit(lambda x: x * 2.0)
    compiler.set_cache_size(3)
    try:
        for n in range(1, 7):
            g(np.ones(n))
        assert len(g.cache) == 3 and g.trace_count == 6
        g(np.ones(6))
        assert g.trace_count == 6                      # recently used: still cached
        g(np.ones(1))
        assert g.trace_count == 7                      # evicted long ago: traced again
        compiler.clear_cache()
        assert len(g.cache) == 0
        g(np.ones(6))
        assert g.trace_count == 8
    finally:
        compiler.set_cache_size(64)
    with pytest.raises(ValueError):
        compiler.set_cache_size(0)


# --- ints: traced in arithmetic, static where the trace needs their value ----------------

def test_an_int_used_in_arithmetic_does_not_retrace_per_value():
    def objective(w, i):
        return np.sum((w - 0.1 * i) ** 2)

    g = grad(objective)
    w = np.ones(3)
    for i in range(20):
        np.testing.assert_allclose(g(w, i), 2 * (w - 0.1 * i))
    assert g.trace_count == 1 and len(g.cache) == 1


@pytest.mark.parametrize("use", ["range", "shape", "index", "if"])
def test_an_int_that_decides_the_program_is_static(use):
    def f(x, n):
        if use == "range":
            y = x
            for _ in range(n):
                y = np.sin(y)
            return np.sum(y)
        if use == "shape":
            return np.sum(x.reshape(n, -1)[0])
        if use == "index":
            return np.sum(x[:n])
        return np.sum(x * 2.0) if n > 1 else np.sum(x)

    g = grad(f)
    x = np.linspace(0.1, 0.6, 6)
    for n in (1, 2, 3):
        expected = grad(lambda x: f(x, n))(x)   # the same function with n baked in
        np.testing.assert_allclose(g(x, n), expected)
    assert g.trace_count == 3


# --- random Generators as arguments ----------------------------------------------------

def _dropout_loss(w, x, rng, keep=0.5):
    mask = rng.random((x.shape[0], w.shape[1])) < keep
    h = np.where(mask, np.tanh(x @ w), 0.0) / keep
    return np.sum(h ** 2) + 0.01 * np.sum(rng.normal(0.0, 1.0, size=w.shape) * w)


def test_a_generator_argument_draws_fresh_numbers_on_every_call():
    rng = np.random.default_rng(0)
    w, x = np.ones((3, 2)), np.linspace(-1, 1, 12).reshape(4, 3)
    f = jit(_dropout_loss)
    values = {float(f(w, x, rng)) for _ in range(6)}
    assert len(values) > 1 and f.trace_count == 1
    seeded = [f(w, x, np.random.default_rng(7)), _dropout_loss(w, x, np.random.default_rng(7))]
    np.testing.assert_allclose(seeded[0], seeded[1])   # the same stream as eager NumPy


def test_gradients_and_steps_with_dropout_match_eager_with_the_same_seed():
    w, x = np.ones((3, 2)) * 0.3, np.linspace(-1, 1, 12).reshape(4, 3)
    g = grad(_dropout_loss)(w, x, np.random.default_rng(3))
    reference = grad(lambda w: _dropout_loss(w, x, np.random.default_rng(3)))(w)
    np.testing.assert_allclose(g, reference)
    source = grad(_dropout_loss).source(w, x, np.random.default_rng(3))
    assert "rng.random(size=(4, 2))" in source and "rng.standard_normal(size=(3, 2))" in source

    def loss(p, x, rng):
        return _dropout_loss(p["w"], x, rng)

    params = {"w": w.copy()}
    compile_step(loss, optim.SGD(lr=0.1))(params, x, np.random.default_rng(3))
    np.testing.assert_allclose(params["w"], w - 0.1 * reference)


def test_two_equal_draws_stay_two_draws():
    f = jit(lambda rng: rng.random(4) - rng.random(4))
    assert np.all(f(np.random.default_rng(0)) != 0)
    source = f.source(np.random.default_rng(0))
    assert source.count("rng.random(") == 2


# --- debug_nans -------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_debug_nans_names_the_line_that_made_the_first_nan():
    def f(x):
        y = np.log(x)
        z = np.sqrt(y)  # <- nan here
        return np.sum(z)

    line = f.__code__.co_firstlineno + 2
    compiler.debug_nans(True)
    try:
        with pytest.raises(NonFiniteError) as excinfo:
            value_and_grad(f)(np.array([0.5, 2.0]))
        assert f"test_trust.py:{line}" in str(excinfo.value) and "z = np.sqrt(y)" in str(excinfo.value)
        x = np.array([2.0, 3.0])
        np.testing.assert_allclose(grad(f)(x), 1 / (2 * np.sqrt(np.log(x)) * x))
    finally:
        compiler.debug_nans(False)
    assert np.isnan(value_and_grad(f)(np.array([0.5, 2.0]))[0])   # off again: plain NumPy semantics


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_debug_nans_checks_gradients_too():
    compiler.debug_nans(True)
    try:
        with pytest.raises(NonFiniteError) as excinfo:
            grad(lambda x: np.sum(np.sqrt(x)))(np.array([0.0, 1.0]))
        assert "gradient" in str(excinfo.value)
    finally:
        compiler.debug_nans(False)


def test_float32_mlp_step_and_nn_losses_stay_finite_under_debug_nans():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([4, 8, 3], rng=rng)
    x, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    compiler.debug_nans(True)
    try:
        step = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x), y), optim.SGD(lr=0.1))
        assert np.isfinite(step(params, x, y))
        assert "np.isfinite" in step.source(params, x, y)
    finally:
        compiler.debug_nans(False)


# --- explaining retraces -------------------------------------------------------------

def test_explain_retraces_says_which_argument_changed(caplog):
    def loss(x, flag, p):
        return np.sum(x ** 2) * p["a"] if flag else np.sum(x)

    g = grad(loss)
    compiler.explain_retraces(True)
    try:
        with caplog.at_level("WARNING", logger="adjoint"):
            g(np.ones(3), True, {"a": 1.0})
            assert not caplog.records                      # a first trace needs no explanation
            g(np.ones(4), True, {"a": 1.0})
            g(np.ones(4), False, {"a": 1.0})
            g(np.ones(4), False, {"a": 1.0, "b": 2.0})
    finally:
        compiler.explain_retraces(False)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "x: float64[3] -> float64[4]" in messages[0]
    assert "flag: static bool True -> static bool False" in messages[1]
    assert "structure changed" in messages[2]
    assert all("test_trust.py" in m for m in messages)


def test_unused_draws_still_happen_in_order():
    """A draw the gradient does not need still runs, in the function's order: every
    later draw of the Generator stays the number eager NumPy draws."""
    def f(x, rng):
        noisy = x + rng.normal(0.0, 0.1, size=())
        return noisy * rng.uniform(0.5, 1.5, size=()) * -0.23

    eager = np.random.default_rng(1)
    eager.normal(0.0, 0.1, size=())
    expected = -0.23 * eager.uniform(0.5, 1.5, size=())
    np.testing.assert_allclose(grad(f)(1.37, np.random.default_rng(1)), expected)
    unused = jit(lambda x, rng: (rng.random(()) < 0.5, x * rng.uniform(0.5, 1.5, size=()))[1])
    eager = np.random.default_rng(2)
    eager.random(())
    np.testing.assert_allclose(unused(2.0, np.random.default_rng(2)), 2.0 * eager.uniform(0.5, 1.5, size=()))


def test_an_int_becomes_static_even_inside_the_users_try_block():
    def f(x, n):
        try:
            steps = range(n)
        except Exception:  # a broad handler in user code must not hide the retrace
            steps = range(1)
        y = x
        for _ in steps:
            y = np.sin(y)
        return np.sum(y)

    x = np.linspace(0.1, 0.5, 3)
    np.testing.assert_allclose(grad(f)(x, 3), grad(lambda x: f(x, 3))(x))


# --- the training step's fast call path --------------------------------------------------

def _mlp_step(opt):
    rng = np.random.default_rng(0)
    params = nn.init_mlp([3, 5, 2], rng=rng)
    x, y = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    step = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x), y), opt)
    return step, params, x, y


def _eager_sgd(params, x, y, lr):
    g = grad(lambda p: nn.softmax_cross_entropy(nn.mlp(p, x), y))(params)
    return {k: params[k] - lr * g[k] for k in params}


def test_fast_path_sees_an_array_replaced_in_params():
    step, params, x, y = _mlp_step(optim.SGD(lr=0.1))
    step(params, x, y)
    params["W1"] = params["W1"] * 2.0                 # a new array under the same key
    expected = _eager_sgd(params, x, y, 0.1)
    step(params, x, y)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k])


def test_fast_path_follows_new_batches_hyperparameters_and_state():
    opt = optim.SGD(lr=0.1, momentum=0.9)
    step, params, x, y = _mlp_step(opt)
    step(params, x, y)
    state_before = step.state
    opt.lr = 0.0                                      # a hyperparameter: still a run-time input
    frozen = {k: v.copy() for k, v in params.items()}
    step(params, x, y)
    for k in params:
        np.testing.assert_allclose(params[k], frozen[k])
    step(params, x[:2], y[:2])                        # another batch shape: traced again
    assert step.trace_count == 2 and step.state is state_before
    step.state = None                                 # a reset state starts from zero velocity
    step(params, x, y)
    g_W1 = grad(lambda p: nn.softmax_cross_entropy(nn.mlp(p, x), y))(params)["W1"]
    assert step.state is not state_before
    np.testing.assert_allclose(step.state["velocity"]["W1"], g_W1)


def test_a_step_that_keeps_arrays_between_calls_is_safe_from_several_threads():
    """Large steps compute into arrays the module keeps (`out=ws1`); calls from several
    threads are serialised around them, so each thread's params train exactly as alone."""
    rng = np.random.default_rng(0)
    start = nn.init_mlp([32, 128, 10], rng=rng)
    x, y = rng.normal(size=(64, 32)), rng.integers(0, 10, 64)
    step = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x), y), optim.SGD(lr=0.05))
    assert "out=ws" in step.source(start, x, y)
    alone = {k: v.copy() for k, v in start.items()}
    reference = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x), y), optim.SGD(lr=0.05))
    for _ in range(10):
        reference(alone, x, y)
    copies = [{k: v.copy() for k, v in start.items()} for _ in range(4)]

    def train(params):
        for _ in range(10):
            step(params, x, y)

    threads = [threading.Thread(target=train, args=(p,)) for p in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for params in copies:
        for k in params:
            np.testing.assert_allclose(params[k], alone[k], rtol=1e-12, atol=1e-12)


def test_a_learning_rate_held_in_an_array_and_changed_in_place_takes_effect():
    """A step reuses the hyperparameter values it read while the optimizer's attributes
    stay the same, but only for Python numbers: an array changed in place is read
    again every call."""
    def loss(p):
        return np.sum(p["w"] ** 2) / 2

    opt = optim.SGD(lr=0.1)
    opt.lr = np.array(0.1)
    params = {"w": np.array([1.0])}
    step = compile_step(loss, opt)
    step(params)
    np.testing.assert_allclose(params["w"], [0.9])
    opt.lr[...] = 0.5
    step(params)
    np.testing.assert_allclose(params["w"], [0.45])


def test_a_replaced_optimizer_is_read_afresh():
    """The hyperparameter values a step reuses belong to one optimizer object: a new
    one with as many attribute assignments behind it is read again."""
    def loss(p):
        return np.sum(p["w"] ** 2) / 2

    params = {"w": np.array([1.0])}
    step = compile_step(loss, optim.SGD(lr=0.1))
    step(params)
    step(params)
    np.testing.assert_allclose(params["w"], [0.81])
    step.optimizer = optim.SGD(lr=0.5)
    step(params)
    np.testing.assert_allclose(params["w"], [0.405])

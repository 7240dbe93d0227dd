"""compile_step, jit and Step.predict, checked against hand-written NumPy.

The reference throughout is an explicit backward pass for an MLP written out below
(`backprop`), and runtime.optim's own eager `update`/`apply` on its gradients.
"""
import re

import numpy as np
import pytest

import compiler
from compiler import GradError, compile_step, grad, jit
from runtime import nn, optim
from runtime.tree import flatten, leaf_paths

SIZES = [5, 7, 6, 3]
N = 4


# --- the hand-written reference -----------------------------------------------------

def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# activation: (forward, derivative from (pre-activation z, output a))
ACTIVATIONS = {
    "sigmoid": (nn.sigmoid, lambda z, a: a * (1 - a)),
    "tanh": (nn.tanh, lambda z, a: 1 - a ** 2),
    "relu": (nn.relu, lambda z, a: (z > 0).astype(z.dtype)),
    "elu": (nn.elu, lambda z, a: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))),
}


def _bce_probs(z, y):
    return nn.binary_cross_entropy(nn.sigmoid(z), y)


# loss: (loss of the last layer's output z, dL/dz, label maker)
LOSSES = {
    "sce_int": (nn.softmax_cross_entropy, lambda z, y: (_softmax(z) - np.eye(z.shape[1])[y]) / len(z),
                lambda rng: rng.integers(0, SIZES[-1], N)),
    "sce_onehot": (nn.softmax_cross_entropy, lambda z, y: (_softmax(z) - y) / len(z),
                   lambda rng: np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], N)]),
    "bce_probs": (_bce_probs, lambda z, y: (_sigmoid(z) - y) / len(z),
                  lambda rng: rng.integers(0, 2, (N, SIZES[-1])).astype(np.float64)),
    "bce_logits": (nn.binary_cross_entropy_with_logits, lambda z, y: (_sigmoid(z) - y) / len(z),
                   lambda rng: rng.integers(0, 2, (N, SIZES[-1])).astype(np.float64)),
    "quadratic": (nn.quadratic, lambda z, y: (z - y) / len(z),
                  lambda rng: rng.standard_normal((N, SIZES[-1]))),
}


def backprop(params, x, y, activation, loss):
    """Gradients of loss(mlp(params, x), y) by the chain rule, layer by layer."""
    act, dact = ACTIVATIONS[activation]
    depth = len(params) // 2
    hs, zs = [x], []
    h = x
    for i in range(1, depth + 1):
        z = h @ params[f"W{i}"] + params[f"b{i}"]
        zs.append(z)
        h = act(z) if i < depth else z
        hs.append(h)
    g = LOSSES[loss][1](zs[-1], y)
    grads = {}
    for i in range(depth, 0, -1):
        grads[f"W{i}"] = hs[i - 1].T @ g
        grads[f"b{i}"] = g.sum(axis=0)
        if i > 1:
            g = (g @ params[f"W{i}"].T) * dact(zs[i - 2], hs[i - 1])
    return {k: grads[k] for k in params}


def make_loss_fn(activation, loss):
    act = ACTIVATIONS[activation][0]
    lossf = LOSSES[loss][0]

    def loss_fn(params, x, y):
        return lossf(nn.mlp(params, x, activation=act), y)

    return loss_fn


def problem(loss="sce_int", seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = nn.init_mlp(SIZES, rng, init="glorot", dtype=dtype)
    for k in params:
        if k.startswith("b"):
            params[k] = (0.1 * rng.standard_normal(params[k].shape)).astype(dtype)
    x = rng.standard_normal((N, SIZES[0])).astype(dtype)
    y = LOSSES[loss][2](rng)
    if y.dtype.kind == "f":
        y = y.astype(dtype)
    return params, x, y


def copy_tree(t):
    if isinstance(t, dict):
        return {k: copy_tree(v) for k, v in t.items()}
    return np.array(t, copy=True)


def assert_tree_close(actual, expected, rtol, atol):
    a_leaves, a_def = flatten(actual)
    e_leaves, e_def = flatten(expected)
    assert a_def == e_def
    for path, a, e in zip(leaf_paths(expected), a_leaves, e_leaves):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=str(path))


# --- 1. gradients ------------------------------------------------------------------

def test_reference_backprop_agrees_with_finite_differences():
    """The hand-written reference is itself right (so the comparisons below mean something)."""
    from runtime.check import numerical_grad

    for activation in ACTIVATIONS:
        for loss in LOSSES:
            params, x, y = problem(loss)
            f = make_loss_fn(activation, loss)
            numeric = numerical_grad(f, params, x, y)
            assert_tree_close(backprop(params, x, y, activation, loss), numeric, 1e-5, 1e-8)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_grad_and_step_match_handwritten_backprop(activation, loss):
    params, x, y = problem(loss)
    f = make_loss_fn(activation, loss)
    expected = backprop(params, x, y, activation, loss)

    assert_tree_close(grad(f)(params, x, y), expected, rtol=1e-10, atol=1e-12)

    before = copy_tree(params)
    step = compile_step(f, optim.SGD(lr=1.0))
    value = step(params, x, y)
    np.testing.assert_allclose(value, f(before, x, y), rtol=1e-12)
    from_step = {k: before[k] - params[k] for k in params}
    assert_tree_close(from_step, expected, rtol=1e-10, atol=1e-12)


# --- 2. optimizers -------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "momentum": lambda: optim.SGD(lr=0.1, momentum=0.9),
    "nesterov": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": lambda: optim.SGD(lr=0.1, momentum=0.5, weight_decay=0.01),
    "weight_decay_plain": lambda: optim.SGD(lr=0.1, weight_decay=0.01),
    "adam": lambda: optim.Adam(lr=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_updates_params_and_state_like_eager_optimizer(name):
    activation, loss = "tanh", "sce_int"
    params, x, y = problem(loss)
    f = make_loss_fn(activation, loss)
    opt = OPTIMIZERS[name]()
    step = compile_step(f, opt)

    eager_params = copy_tree(params)
    eager_state = opt.init(eager_params)
    originals = dict(params)  # the very array objects the caller owns

    state_ids = None
    for _ in range(3):
        grads = backprop(eager_params, x, y, activation, loss)
        expected_loss = f(eager_params, x, y)
        opt.apply(eager_params, grads, eager_state)

        value = step(params, x, y)
        np.testing.assert_allclose(value, expected_loss, rtol=1e-12)
        assert_tree_close(params, eager_params, rtol=1e-12, atol=1e-13)
        assert_tree_close(step.state, eager_state, rtol=1e-12, atol=1e-13)

        # in place: the caller's arrays (and the state's) hold the new values
        for k, arr in originals.items():
            assert params[k] is arr
        ids = [id(leaf) for leaf in flatten(step.state)[0]]
        assert state_ids is None or ids == state_ids
        state_ids = ids

    assert step.trace_count == 1
    src = step.source(params, x, y)
    assert step.trace_count == 1
    for k in params:
        assert re.search(rf"^\s*{k} -= ", src, re.M), f"no in-place update of {k}:\n{src}"
        assert not re.search(rf"^\s*{k} = ", src, re.M), f"{k} is rebound:\n{src}"
    for arg in re.search(r"def \w+\(([^)]*)\)", src).group(1).split(", "):
        assert not re.search(rf"^\s*{arg} = ", src, re.M), f"argument {arg} is rebound:\n{src}"


def test_adam_step_count_is_a_runtime_input():
    params, x, y = problem()
    f = make_loss_fn("tanh", "sce_int")
    opt = optim.Adam(lr=0.01, b1=0.8, b2=0.95)
    step = compile_step(f, opt)
    t = None
    for k in range(1, 4):
        step(params, x, y)
        if t is None:
            t = step.state["t"]
        assert step.state["t"] is t  # updated in place
        assert float(step.state["t"]) == k
        assert step.state["t"].shape == () and step.state["t"].dtype == np.float64
    assert step.trace_count == 1
    src = step.source(params, x, y)
    signature = re.search(r"def \w+\(([^)]*)\)", src).group(1).split(", ")
    assert "t" in signature
    # the bias corrections are computed from the input t, never a baked-in count
    assert re.search(r"opt_b1 \*\* t\b", src) and re.search(r"b2 \*\* t\b", src), src
    assert not re.search(r"(0\.8|0\.95) \*\* [\d.(]", src), src
    for power in (0.8 ** 2, 0.8 ** 3, 0.95 ** 2, 0.95 ** 3):
        assert repr(power) not in src and repr(1 - power) not in src


def test_adam_continues_from_a_given_state():
    """Steps run after a state change keep following the eager optimizer (t is read)."""
    params, x, y = problem()
    f = make_loss_fn("tanh", "sce_int")
    opt = optim.Adam(lr=0.01)
    step = compile_step(f, opt)
    eager_params = copy_tree(params)
    eager_state = opt.init(eager_params)
    eager_state["t"][...] = 41.0
    given = copy_tree(eager_state)
    step.state = given
    for _ in range(2):
        opt.apply(eager_params, backprop(eager_params, x, y, "tanh", "sce_int"), eager_state)
        step(params, x, y)
    assert step.state is given
    assert_tree_close(given, eager_state, rtol=1e-12, atol=1e-13)  # the caller's arrays, in place
    assert float(step.state["t"]) == 43.0
    assert_tree_close(params, eager_params, rtol=1e-12, atol=1e-13)
    assert_tree_close(step.state, eager_state, rtol=1e-12, atol=1e-13)


# --- 5. float32 ---------------------------------------------------------------------

MOMENTUM = optim.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3)


@pytest.mark.parametrize("loss, opt", [("sce_int", MOMENTUM), ("sce_onehot", optim.Adam(lr=0.01)),
                                       ("bce_logits", optim.Adam(lr=0.01)), ("quadratic", MOMENTUM)],
                         ids=["sce_int-momentum", "sce_onehot-adam", "bce_logits-adam",
                              "quadratic-momentum"])
def test_float32_training_stays_float32(opt, loss):
    params, x, y = problem(loss, dtype=np.float32)
    f = make_loss_fn("elu", loss)
    step = compile_step(f, opt)
    losses = [step(params, x, y) for _ in range(4)]
    for value in losses:
        assert np.asarray(value).dtype == np.float32 and np.isfinite(value)
    for leaf in flatten(params)[0] + flatten(step.state)[0]:
        assert leaf.dtype == np.float32
    assert step.predict(params, x).dtype == np.float32
    for g in flatten(grad(f)(params, x, y))[0]:
        assert g.dtype == np.float32
    assert compiler.value_and_grad(f)(params, x, y)[0].dtype == np.float32
    src = step.source(params, x, y)
    body = src[src.index("\ndef "):]  # module-level constants spell their dtype (np.ones(4, dtype=np.float32))
    assert "float64" not in src and "astype" not in body and "dtype" not in body, src
    for node in step.ir(params, x, y).nodes():
        assert node.dtype != np.float64 or node.aval.weak, (node, src)

    # float32 arithmetic agrees with the float64 reference to float32 precision
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    y64 = y.astype(np.float64) if y.dtype.kind == "f" else y
    reference = backprop(params64, x.astype(np.float64), y64, "elu", loss)
    g32 = grad(f)(params, x, y)
    assert_tree_close(g32, reference, rtol=2e-4, atol=2e-6)


# --- 6. jit and predict ---------------------------------------------------------------

def test_jit_equals_eager_and_caches_per_signature():
    def forward(params, x):
        h = np.tanh(x @ params["W1"] + params["b1"])
        return nn.softmax(h @ params["W2"] + params["b2"], axis=-1), np.sum(h ** 2, axis=1)

    rng = np.random.default_rng(3)
    params = nn.init_mlp([5, 4, 3], rng, init="glorot")
    fast = jit(forward)
    for batch in (6, 6, 2, 6):
        x = rng.standard_normal((batch, 5))
        got = fast(params=params, x=x) if batch == 2 else fast(params, x)
        for a, e in zip(got, forward(params, x)):
            np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-15)
    assert fast.trace_count == 2  # (6, 5) and (2, 5); the repeats hit the cache
    x32 = rng.standard_normal((6, 5)).astype(np.float32)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    out32 = fast(p32, x32)
    assert fast.trace_count == 3
    assert out32[0].dtype == np.float32
    np.testing.assert_allclose(out32[0], forward(p32, x32)[0], rtol=1e-5, atol=1e-6)
    src = fast.source(params, x)
    assert fast.trace_count == 3
    assert isinstance(src, str) and "def forward_jit(" in src and "np.tanh" in src
    assert fast.__name__ == "forward"


def test_jit_keyword_arguments_in_any_order():
    def f(a, b):
        return a - 2.0 * b

    a, b = np.ones(3), np.arange(3.0)
    fast = jit(f)
    np.testing.assert_array_equal(fast(a=a, b=b), f(a, b))
    np.testing.assert_array_equal(fast(b=b, a=a), f(a, b))
    fresh = jit(f)
    np.testing.assert_array_equal(fresh(b=b, a=a), f(a, b))


def test_jit_of_mlp_and_static_args():
    def model(params, x, depth_scale):
        return nn.mlp(params, x, activation=nn.relu) * depth_scale

    params, x, _ = problem()
    fast = jit(model)
    np.testing.assert_allclose(fast(params, x, 2.0), model(params, x, 2.0), rtol=1e-13)
    np.testing.assert_allclose(fast(params, x, 3.0), model(params, x, 3.0), rtol=1e-13)
    assert fast.trace_count == 1  # a float is traced, not static


def test_jit_of_runtime_nn_functions_equals_eager():
    rng = np.random.default_rng(4)
    z = 3.0 * rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    cases = [
        (nn.sigmoid, (z,)), (nn.relu, (z,)), (nn.tanh, (z,)), (nn.elu, (z,)),
        (lambda z: nn.elu(z, alpha=0.5), (z,)),
        (lambda z: nn.logsumexp(z, axis=(0, 1), keepdims=True), (z,)),
        (lambda z: nn.log_softmax(z, axis=0), (z,)), (lambda z: nn.softmax(z, axis=-1), (z,)),
        (nn.softmax_cross_entropy, (z, labels)), (nn.softmax_cross_entropy, (z, np.eye(4)[labels])),
        (nn.binary_cross_entropy_with_logits, (z, z > 0)),
        (nn.binary_cross_entropy, (nn.sigmoid(z), (z > 0).astype(float))),
        (nn.quadratic, (z, np.ones_like(z))),
        (lambda d: {"a": np.sum(d["z"]), "b": d["z"].T}, ({"z": z},)),
    ]
    for f, args in cases:
        got, expected = jit(f)(*args), f(*args)
        for a, e in zip(flatten(got)[0], flatten(expected)[0]):
            np.testing.assert_allclose(a, e, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_step_predict_equals_eager_mlp(activation):
    params, x, y = problem()
    f = make_loss_fn(activation, "sce_int")
    step = compile_step(f, optim.SGD(lr=0.1))
    step(params, x, y)
    act = ACTIVATIONS[activation][0]
    np.testing.assert_allclose(step.predict(params, x), nn.mlp(params, x, activation=act), rtol=1e-13)
    other = np.random.default_rng(9).standard_normal((11, SIZES[0]))
    np.testing.assert_allclose(step.predict(params, other), nn.mlp(params, other, activation=act),
                               rtol=1e-13)
    assert "def " in step.predict.source(params, other)


@pytest.mark.parametrize("loss", ["sce_onehot", "bce_logits", "quadratic"])
def test_step_predict_is_the_value_compared_with_the_labels(loss):
    params, x, y = problem(loss)
    step = compile_step(make_loss_fn("tanh", loss), optim.SGD(lr=0.1))
    step(params, x, y)
    np.testing.assert_allclose(step.predict(params, x), nn.mlp(params, x, activation=nn.tanh),
                               rtol=1e-13)


def test_step_predict_for_binary_cross_entropy_on_probabilities():
    params, x, y = problem("bce_probs")
    step = compile_step(make_loss_fn("tanh", "bce_probs"), optim.SGD(lr=0.1))
    step(params, x, y)
    p = nn.sigmoid(nn.mlp(params, x, activation=nn.tanh))
    np.testing.assert_allclose(step.predict(params, x), p, rtol=1e-13)


@pytest.mark.parametrize("penalty_first", [False, True])
def test_step_predict_with_an_l2_penalty_in_the_loss(penalty_first):
    def loss_fn(params, x, y):
        data = nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.tanh), y)
        penalty = 1e-3 * np.sum(params["W1"] ** 2)
        return penalty + data if penalty_first else data + penalty

    params, x, y = problem()
    step = compile_step(loss_fn, optim.SGD(lr=0.1))
    step(params, x, y)
    np.testing.assert_allclose(step.predict(params, x), nn.mlp(params, x, activation=nn.tanh),
                               rtol=1e-13)


def test_step_with_aux_returns_loss_and_aux():
    def loss_with_aux(params, x, y):
        z = nn.mlp(params, x, activation=nn.tanh)
        return nn.softmax_cross_entropy(z, y), {"logits": z, "tag": "static"}

    params, x, y = problem()
    before = copy_tree(params)
    step = compile_step(loss_with_aux, optim.SGD(lr=1.0), has_aux=True)
    loss, aux = step(params, x, y)
    np.testing.assert_allclose(loss, loss_with_aux(before, x, y)[0], rtol=1e-13)
    np.testing.assert_allclose(aux["logits"], nn.mlp(before, x, activation=nn.tanh), rtol=1e-13)
    assert aux["tag"] == "static"
    expected = backprop(before, x, y, "tanh", "sce_int")
    assert_tree_close({k: before[k] - params[k] for k in params}, expected, rtol=1e-10, atol=1e-12)


def test_step_predict_with_aux():
    def loss_with_aux(params, x, y):
        z = nn.mlp(params, x, activation=nn.tanh)
        return nn.softmax_cross_entropy(z, y), z

    params, x, y = problem()
    step = compile_step(loss_with_aux, optim.SGD(lr=0.1), has_aux=True)
    step(params, x, y)
    np.testing.assert_allclose(step.predict(params, x), nn.mlp(params, x, activation=nn.tanh),
                               rtol=1e-13)


@pytest.mark.parametrize("keys", [("x", "y"), ("t", "m"), ("np", "runtime"), ("W", "g_W"),
                                  ("lambda", "sum")])
def test_param_names_that_collide_with_arguments_or_builtins(keys):
    def loss_fn(params, x, y):
        a, b = (params[k] for k in keys)
        return nn.softmax_cross_entropy(x @ a + b, y)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    params = {keys[0]: rng.standard_normal((3, 2)), keys[1]: rng.standard_normal(2)}
    eager = copy_tree(params)
    opt = optim.Adam(lr=0.1)
    eager_state = opt.init(eager)
    step = compile_step(loss_fn, opt)
    for _ in range(2):
        step(params, x, y)
        opt.apply(eager, grad(loss_fn)(eager, x, y), eager_state)
    assert_tree_close(params, eager, rtol=1e-12, atol=1e-13)
    assert_tree_close(step.state, eager_state, rtol=1e-12, atol=1e-13)


def test_predict_before_any_step_says_what_to_do():
    params, x, _ = problem()
    step = compile_step(make_loss_fn("tanh", "sce_int"), optim.SGD(lr=0.1))
    with pytest.raises(TypeError, match="call the step"):
        step.predict(params, x)


# --- 7. errors ------------------------------------------------------------------------

def test_integer_params_are_rejected_by_name():
    params, x, y = problem()
    params["b2"] = np.zeros(SIZES[2], dtype=np.int64)
    step = compile_step(make_loss_fn("tanh", "sce_int"), optim.SGD(lr=0.1))
    with pytest.raises(GradError, match=r"params\['b2'\].*int64"):
        step(params, x, y)


def test_non_array_params_are_rejected():
    params, x, y = problem()
    params["b1"] = 0.0
    step = compile_step(make_loss_fn("tanh", "sce_int"), optim.SGD(lr=0.1))
    with pytest.raises(GradError, match=r"params\['b1'\].*float"):
        step(params, x, y)


def test_non_scalar_loss_names_the_shape():
    def not_a_loss(params, x, y):
        return nn.mlp(params, x) - y

    params, x, _ = problem()
    y = np.zeros((N, SIZES[-1]))
    step = compile_step(not_a_loss, optim.SGD(lr=0.1))
    with pytest.raises(GradError, match=r"\(4, 3\)|\[4, ?3\]"):
        step(params, x, y)
    with pytest.raises(GradError, match=r"\(4, 3\)|\[4, ?3\]"):
        grad(not_a_loss)(params, x, y)


def test_params_of_another_structure_are_refused_not_silently_mixed():
    import compiler

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)

    def loss_fn(params, x, y):
        return nn.softmax_cross_entropy(nn.mlp(params, x), y)

    step = compiler.compile_step(loss_fn, optim.SGD(lr=0.1, momentum=0.9))
    step(nn.init_mlp([5, 4, 3], rng=rng), x, y)
    with pytest.raises(compiler.GradError, match="structure"):
        step(nn.init_mlp([5, 6, 4, 3], rng=rng), x, y)
    step.state = None
    assert np.isfinite(step(nn.init_mlp([5, 6, 4, 3], rng=rng), x, y))


class _Optimizer:
    """A test optimizer whose update reads views of params and keeps a copy of them."""

    def init(self, params):
        return {"prev": {k: np.zeros_like(v) for k, v in params.items()}}

    def update(self, params, grads, state):
        new = {k: params[k] - 0.1 * grads[k] for k in params}
        return new, {"prev": dict(params)}


def test_in_place_updates_never_read_an_overwritten_buffer_through_a_view():
    def loss_fn(p, x):
        return np.sum(p["A"] * p["B"].T) + np.sum(x)

    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(3, 4)), rng.normal(size=(4, 3))
    params = {"A": A.copy(), "B": B.copy()}
    step = compile_step(loss_fn, optim.SGD(lr=0.1))
    step(params, np.ones(2))
    np.testing.assert_allclose(params["A"], A - 0.1 * B.T)
    np.testing.assert_allclose(params["B"], B - 0.1 * A.T)


def test_state_that_keeps_the_old_params_gets_their_old_values():
    def loss_fn(p, x):
        return np.sum(p["W"] ** 2) + np.sum(x)

    W = np.arange(4.0).reshape(2, 2)
    params = {"W": W.copy()}
    step = compile_step(loss_fn, _Optimizer())
    step(params, np.ones(2))
    np.testing.assert_allclose(step.state["prev"]["W"], W)
    np.testing.assert_allclose(params["W"], W - 0.1 * 2 * W)
    step(params, np.ones(2))
    np.testing.assert_allclose(step.state["prev"]["W"], W - 0.1 * 2 * W)


def test_float32_softmax_cross_entropy_gradient_has_no_seed_multiply():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(4, 3)).astype(np.float32), rng.integers(0, 3, 4)
    source = grad(lambda z: nn.softmax_cross_entropy(z, y)).source(z)
    assert "np.float32(1.0)" not in source and "g_z = exps / (sums * 4)" in source


@pytest.mark.parametrize("loss", ["sce_int", "sce_onehot", "bce_logits", "quadratic"])
def test_plain_sgd_seeds_the_backward_pass_with_the_learning_rate(loss):
    """When the optimizer reads every gradient only as lr * g, the backward pass starts
    from lr instead of 1: the update is `W -= lr_g_W` with no multiply per parameter,
    and the step equals eager SGD, for any learning rate passed at call time."""
    params, x, y = problem(loss)
    f = make_loss_fn("tanh", loss)
    step = compile_step(f, optim.SGD(lr=0.05))
    source = step.source(params, x, y)
    assert "W1 -= lr_g_W1" in source and "*= lr" not in source, source
    for lr in (0.05, 0.3):
        step.optimizer.lr = lr
        expected_grads = grad(f)(params, x, y)
        expected = {k: params[k] - lr * expected_grads[k] for k in params}
        step(params, x, y)
        assert_tree_close(params, expected, rtol=1e-12, atol=1e-14)


def test_steps_whose_optimizer_reads_gradients_otherwise_are_not_seeded():
    """Momentum, weight decay and a custom_vjp rule (which may not be linear in its
    cotangent: here it clips) keep the backward pass seeded with 1."""
    params, x, y = problem()
    f = make_loss_fn("tanh", "sce_int")
    seeded = "exps * (lr / (sums"  # the cross-entropy's gradient, seeded with lr
    assert seeded in compile_step(f, optim.SGD(lr=0.1)).source(params, x, y)
    for opt in (optim.SGD(lr=0.1, momentum=0.9), optim.SGD(lr=0.1, weight_decay=0.01)):
        assert seeded not in compile_step(f, opt).source(params, x, y)

    @compiler.custom_vjp
    def clipped(z):
        return z

    clipped.defvjp(lambda z: (z, None), lambda res, g: (np.clip(g, -1e-3, 1e-3),))

    def clipped_loss(p, x, y):
        return nn.softmax_cross_entropy(clipped(nn.mlp(p, x, activation=np.tanh)), y)

    step = compile_step(clipped_loss, optim.SGD(lr=0.5))
    assert seeded not in step.source(params, x, y) and "0.001" in step.source(params, x, y)
    expected_grads = grad(clipped_loss)(params, x, y)
    expected = {k: params[k] - 0.5 * expected_grads[k] for k in params}
    step(params, x, y)
    assert_tree_close(params, expected, rtol=1e-12, atol=1e-14)


def test_the_fast_path_rebuilds_aux_and_reports_non_finite_values():
    """A repeated call takes the fast path (the generated function called directly):
    it still returns (loss, aux) with has_aux, and under debug_nans still raises
    NonFiniteError naming the user's line."""
    def loss_with_aux(params, x, y):
        z = nn.mlp(params, x, activation=nn.tanh)
        return nn.softmax_cross_entropy(z, y), {"logits": z}

    params, x, y = problem()
    step = compile_step(loss_with_aux, optim.SGD(lr=0.1), has_aux=True)
    step(params, x, y)
    assert step._last is not None
    before = copy_tree(params)
    loss, aux = step(params, x, y)
    np.testing.assert_allclose(loss, loss_with_aux(before, x, y)[0], rtol=1e-13)
    np.testing.assert_allclose(aux["logits"], nn.mlp(before, x, activation=nn.tanh), rtol=1e-13)

    compiler.debug_nans(True)
    try:
        step = compile_step(make_loss_fn("tanh", "sce_int"), optim.SGD(lr=0.1))
        step(params, x, y)
        bad = x.copy()
        bad[0, 0] = np.nan
        with pytest.raises(compiler.NonFiniteError, match=r"test_step\.py|nn\.py"):
            step(params, bad, y)
    finally:
        compiler.debug_nans(False)


def test_aux_that_views_a_large_intermediate_is_never_overwritten_by_the_next_step():
    """A step keeps large values in arrays between calls; a value returned as aux, or
    a view of it (`h[:5]`), must not live in one, or the next call would overwrite
    what the caller holds."""
    rng = np.random.default_rng(0)
    params = nn.init_mlp([784, 256, 10], rng=rng)
    x, y = rng.normal(size=(128, 784)), rng.integers(0, 10, 128)

    def loss_fn(p, x, y):
        h = np.maximum(x @ p["W1"] + p["b1"], 0)
        return nn.softmax_cross_entropy(h @ p["W2"] + p["b2"], y), (h[:5], h)

    step = compile_step(loss_fn, optim.SGD(lr=0.1), has_aux=True)
    before = copy_tree(params)
    _, (head, whole) = step(params, x, y)
    saved_head, saved_whole = head.copy(), whole.copy()
    step(params, 2 * x, y)
    step(params, 3 * x, y)
    np.testing.assert_array_equal(head, saved_head)
    np.testing.assert_array_equal(whole, saved_whole)
    np.testing.assert_allclose(whole, np.maximum(x @ before["W1"] + before["b1"], 0), rtol=1e-13)


def test_a_parameter_the_loss_does_not_read_is_left_alone():
    """Plain SGD on a parameter whose gradient is zero writes nothing: no copy of the
    array written back into itself."""
    params = {"w": np.array(2.0), "W": np.ones((2, 3))}
    step = compile_step(lambda p, x: p["w"] * x, optim.SGD(lr=0.1))
    step(params, 3.0)
    step(params, 3.0)
    np.testing.assert_allclose(params["w"], 2.0 - 2 * 0.1 * 3.0)
    np.testing.assert_array_equal(params["W"], np.ones((2, 3)))
    source = step.source(params, 3.0)
    assert "W[...]" not in source and "W -=" not in source, source


def test_seeding_keeps_a_gradient_that_is_part_of_another():
    """x1's gradient (lr * W0 once seeded) is also a term of x0's (x0 feeds v1 too):
    only the optimizer's lr * g is dropped, never the backward pass's own read of it."""
    w0, w1 = np.array(0.64), np.array(0.1)

    def loss(p):
        v1 = p["x1"] + p["x0"]
        return np.sum(v1 * w0) + np.sum(np.log(p["x0"] * p["x0"] + 0.5) * w1)

    params = {"x0": np.array(0.12573022), "x1": np.array(-0.13210486)}
    g = grad(loss)(params)
    expected = {k: params[k] - 0.1 * g[k] for k in params}
    step = compile_step(loss, optim.SGD(lr=0.1))
    step(params)
    assert "lr_g_x0" in step.source(params)
    assert_tree_close(params, expected, rtol=1e-13, atol=1e-15)

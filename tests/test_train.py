"""runtime.train.fit driving a compiled step: it learns, its history has the right
shape, and its progress bar is silent when asked."""
import numpy as np
import pytest

from compiler import compile_step, grad
from runtime import data, nn, optim
from runtime.train import accuracy, fit


def tanh_sce(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.tanh), y)


def tanh_bce(params, x, y):
    return nn.binary_cross_entropy_with_logits(nn.mlp(params, x, activation=nn.tanh), y)


def test_compiled_step_learns_xor():
    X, y = data.xor()
    params = nn.init_mlp([2, 8, 2], np.random.default_rng(0), init="glorot")
    step = compile_step(tanh_sce, optim.Adam(lr=0.05))
    history = fit(step, params, X, y, epochs=150, batch_size=3, rng=np.random.default_rng(1),
                  validation=(X, y), verbose=False)
    assert history["train_accuracy"][-1] == 1.0 and history["val_accuracy"][-1] == 1.0
    assert history["loss"][-1] < 0.05 < history["loss"][0]
    assert accuracy(nn.mlp(params, X, activation=nn.tanh), y) == 1.0
    assert step.trace_count == 2  # batches of 3 and the final batch of 1
    assert float(step.state["t"]) == 300  # 150 epochs x 2 batches


def test_compiled_step_learns_xor_with_relu_and_momentum():
    X, y = data.xor()
    params = nn.init_mlp([2, 16, 2], np.random.default_rng(3), init="he")
    loss_fn = lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x, activation=nn.relu), y)  # noqa: E731
    step = compile_step(loss_fn, optim.SGD(lr=0.2, momentum=0.9))
    history = fit(step, params, X, y, epochs=200, batch_size=4, rng=np.random.default_rng(0),
                  verbose=False)
    assert history["train_accuracy"][-1] == 1.0
    assert history["val_accuracy"] == []


def test_compiled_step_learns_xor_with_one_binary_logit():
    X, y = data.xor()
    y_col = y[:, None].astype(np.float64)
    params = nn.init_mlp([2, 8, 1], np.random.default_rng(0), init="glorot")
    step = compile_step(tanh_bce, optim.Adam(lr=0.05))
    history = fit(step, params, X, y_col, epochs=150, batch_size=4, rng=np.random.default_rng(1),
                  verbose=False)
    assert history["train_accuracy"][-1] == 1.0
    assert step.predict(params, X).shape == (4, 1)
    np.testing.assert_allclose(step.predict(params, X), nn.mlp(params, X, activation=nn.tanh),
                               rtol=1e-13)


def test_compiled_step_learns_spirals():
    rng = np.random.default_rng(0)
    X, y = data.spirals(60, rng, classes=2, noise=0.1)
    params = nn.init_mlp([2, 32, 32, 2], rng, init="glorot")
    step = compile_step(tanh_sce, optim.Adam(lr=0.02))
    history = fit(step, params, X, y, epochs=150, batch_size=32, rng=rng, verbose=False)
    assert history["train_accuracy"][-1] >= 0.95, history["train_accuracy"][-5:]


def test_fit_accuracy_with_an_l2_penalty_in_the_loss():
    def loss_fn(params, x, y):
        return tanh_sce(params, x, y) + 1e-4 * np.sum(params["W1"] ** 2)

    X, y = data.xor()
    params = nn.init_mlp([2, 8, 2], np.random.default_rng(0), init="glorot")
    step = compile_step(loss_fn, optim.Adam(lr=0.05))
    history = fit(step, params, X, y, epochs=150, batch_size=4, rng=np.random.default_rng(1),
                  verbose=False)
    assert accuracy(nn.mlp(params, X, activation=nn.tanh), y) == 1.0  # it did learn XOR
    assert history["train_accuracy"][-1] == 1.0


def test_fit_history_lengths_and_agreement_with_eager_evaluation(capsys):
    rng = np.random.default_rng(0)
    X, y = data.spirals(20, rng, classes=3)
    X_val, y_val = data.spirals(10, rng, classes=3)
    params = nn.init_mlp([2, 8, 3], rng)
    before = {k: v.copy() for k, v in params.items()}
    step = compile_step(tanh_sce, optim.SGD(lr=0.1, momentum=0.5))
    history = fit(step, params, X, y, epochs=4, batch_size=16, rng=np.random.default_rng(5),
                  validation=(X_val, y_val), verbose=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert set(history) == {"loss", "train_accuracy", "val_accuracy"}
    assert all(len(v) == 4 for v in history.values())
    assert all(isinstance(v, float) for values in history.values() for v in values)
    assert all(0.0 <= a <= 1.0 for a in history["train_accuracy"] + history["val_accuracy"])
    # the recorded accuracies are those of the final parameters, measured eagerly
    logits = nn.mlp(params, X, activation=nn.tanh)
    assert history["train_accuracy"][-1] == accuracy(logits, y)
    assert history["val_accuracy"][-1] == accuracy(nn.mlp(params, X_val, activation=nn.tanh), y_val)
    assert any(not np.array_equal(before[k], params[k]) for k in params)

    # the first epoch's loss is the size-weighted mean of the batch losses, replayed eagerly
    replay = {k: v.copy() for k, v in before.items()}
    opt = optim.SGD(lr=0.1, momentum=0.5)
    state = opt.init(replay)
    order = np.random.default_rng(5).permutation(len(X))
    total = 0.0
    for start in range(0, len(X), 16):
        batch = order[start:start + 16]
        total += tanh_sce(replay, X[batch], y[batch]) * len(batch)
        opt.apply(replay, grad(tanh_sce)(replay, X[batch], y[batch]), state)
    np.testing.assert_allclose(history["loss"][0], total / len(X), rtol=1e-12)


def test_fit_verbose_writes_a_progress_bar(capsys):
    X, y = data.xor()
    params = nn.init_mlp([2, 4, 2], np.random.default_rng(0))
    step = compile_step(tanh_sce, optim.SGD(lr=0.1))
    fit(step, params, X, y, epochs=2, batch_size=2, rng=np.random.default_rng(0), verbose=True)
    captured = capsys.readouterr()
    bar = captured.err + captured.out
    assert "epoch 1/2" in bar and "epoch 2/2" in bar
    assert "loss=" in bar and "acc=" in bar
    assert "4/4" in bar  # tqdm's count of examples


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_keeps_the_parameter_dtype(dtype):
    X, y = data.xor(dtype=dtype)
    params = nn.init_mlp([2, 4, 2], np.random.default_rng(0), dtype=dtype)
    step = compile_step(tanh_sce, optim.Adam(lr=0.05))
    fit(step, params, X, y, epochs=3, batch_size=3, rng=np.random.default_rng(0), verbose=False)
    assert all(v.dtype == dtype for v in params.values())
    assert all(np.asarray(v).dtype == dtype for v in step.state["m"].values())
    assert step.state["t"].dtype == dtype


def test_fit_scores_probability_outputs_at_one_half():
    """A model whose loss is binary_cross_entropy on sigmoid probabilities predicts
    probabilities; fit's accuracy splits them at 0.5, not at 0."""
    X, y = data.xor()
    params = nn.init_mlp([2, 8, 1], rng=np.random.default_rng(1), init="glorot")

    def loss_fn(params, x, y):
        p = nn.sigmoid(nn.mlp(params, x, activation=nn.tanh))[:, 0]
        return nn.binary_cross_entropy(p, y)

    step = compile_step(loss_fn, optim.Adam(lr=0.05))
    history = fit(step, params, X, y.astype(float), epochs=300, batch_size=4,
                  rng=np.random.default_rng(0), verbose=False)
    assert step.predict.threshold == 0.5
    assert history["train_accuracy"][-1] == 1.0
    assert history["train_accuracy"][0] < 1.0 or history["loss"][-1] < history["loss"][0]

import builtins

import numpy as np
import pytest

from runtime import data, nn
from runtime.optim import Adam
from runtime.train import accuracy, fit


def test_accuracy_multiclass_and_binary():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    assert accuracy(logits, labels) == 0.5
    assert accuracy(logits, np.eye(3)[labels]) == 0.5
    z = np.array([-1.0, 2.0, 0.5, -0.1])
    y = np.array([0, 1, 0, 1])
    assert accuracy(z, y) == 0.5
    assert accuracy(z[:, None], y[:, None].astype(float)) == 0.5


class EagerStep:
    """A hand-written backprop step for a tanh MLP with softmax cross-entropy."""

    def __init__(self, opt, state):
        self.opt, self.state, self.batches = opt, state, []

    def __call__(self, params, x, y):
        self.batches.append(len(x))
        h = np.tanh(x @ params["W1"] + params["b1"])
        logits = h @ params["W2"] + params["b2"]
        loss = nn.softmax_cross_entropy(logits, y)
        g_logits = (nn.softmax(logits) - np.eye(logits.shape[1])[y]) / len(x)
        g_h = (g_logits @ params["W2"].T) * (1 - h ** 2)
        grads = {"W1": x.T @ g_h, "b1": g_h.sum(0), "W2": h.T @ g_logits, "b2": g_logits.sum(0)}
        self.opt.apply(params, grads, self.state)
        return loss

    @staticmethod
    def predict(params, x):
        return nn.mlp(params, x, activation=nn.tanh)


def test_fit_learns_xor_with_an_eager_step():
    X, y = data.xor()
    params = nn.init_mlp([2, 8, 2], np.random.default_rng(0), init="glorot")
    opt = Adam(0.05)
    step = EagerStep(opt, opt.init(params))
    history = fit(step, params, X, y, epochs=150, batch_size=3, rng=np.random.default_rng(1),
                  validation=(X, y), verbose=False)
    assert step.batches[:2] == [3, 1]  # the last partial batch is included
    assert len(step.batches) == 300
    assert len(history["loss"]) == 150 and history["loss"][-1] < 0.05
    assert history["loss"][-1] < history["loss"][0]
    assert history["train_accuracy"][-1] == 1.0 and history["val_accuracy"][-1] == 1.0
    assert accuracy(EagerStep.predict(params, X), y) == 1.0


def test_fit_loss_is_the_size_weighted_epoch_mean():
    X = np.arange(5.0)[:, None]
    y = np.zeros(5, dtype=np.int64)
    step = lambda params, xb, yb: np.mean(xb)  # a batch's mean loss: the mean of its x
    history = fit(step, {}, X, y, epochs=3, batch_size=2, rng=np.random.default_rng(0),
                  verbose=False, predict=lambda params, X: np.ones((len(X), 2)))
    # batches of 2, 2 and 1: weighting by size gives the mean over all examples, 2.0,
    # in any order (a plain mean of the batch means would depend on the order)
    assert history["loss"] == pytest.approx([2.0, 2.0, 2.0], rel=1e-15)
    assert history["train_accuracy"] == [1.0, 1.0, 1.0] and history["val_accuracy"] == []


def test_fit_needs_predict():
    with pytest.raises(TypeError, match="predict"):
        fit(lambda p, x, y: 0.0, {}, np.ones((2, 1)), np.zeros(2), epochs=1, batch_size=1,
            rng=np.random.default_rng(0), verbose=False)


def test_fit_shows_progress(capsys):
    X, y = data.xor()
    fit(lambda p, x, y: np.float64(0.5), {}, X, y, epochs=2, batch_size=2,
        rng=np.random.default_rng(0), predict=lambda p, X: X[:, :1] - 0.5, verbose=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "loss=0.5000" in err and "acc=0.500" in err


def test_fit_without_tqdm(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with pytest.raises(ImportError, match=r'pip install "adjoint\[train\]"'):
        fit(lambda p, x, y: 0.0, {}, np.ones((2, 1)), np.zeros(2), epochs=1, batch_size=1,
            rng=np.random.default_rng(0), verbose=False, predict=lambda p, X: X)

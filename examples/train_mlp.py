"""Train a 64-128-64-10 MLP on scikit-learn's bundled handwritten digits with one
compiled training step (forward, backward and SGD update in a single generated
NumPy function), then save that function's source and a loss/accuracy plot.

Run: make demo   (or: python examples/train_mlp.py [--epochs N] [--out DIR])
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np

from compiler import compile_step
from runtime import data, nn, optim
from runtime.train import accuracy, fit


def loss_fn(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)


def plot(history: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["loss"])
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Loss")
    ax_acc.plot(epochs, history["train_accuracy"], label="train")
    ax_acc.plot(epochs, history["val_accuracy"], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    X_train, y_train, X_test, y_test = data.digits()
    params = nn.init_mlp([64, 128, 64, 10], rng=np.random.default_rng(0), init="he")
    step = compile_step(loss_fn, optimizer=optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-3))

    history = fit(step, params, X_train, y_train, epochs=args.epochs, batch_size=64,
                  rng=np.random.default_rng(0), validation=(X_test, y_test))
    test_accuracy = accuracy(step.predict(params, X_test), y_test)
    print(f"test accuracy: {test_accuracy:.2%} on {len(y_test)} held-out digits")

    source_path = step.save(args.out / "train_step.py", params, X_train[:64], y_train[:64])
    plot_path = args.out / "training.png"
    plot(history, plot_path)
    print(f"generated training step: {source_path} (a module that needs NumPy only)")
    print(f"loss and accuracy plot:  {plot_path}")


if __name__ == "__main__":
    main()

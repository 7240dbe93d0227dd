"""A minibatch training loop with a progress bar, and classification accuracy."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

Step = Callable[[Any, np.ndarray, np.ndarray], Any]
Predict = Callable[[Any, np.ndarray], np.ndarray]


def accuracy(outputs: np.ndarray, y: np.ndarray, threshold: float = 0.0) -> float:
    """Fraction of correct predictions from model outputs.

    Outputs of shape (N, K) with K > 1 predict their argmax; `y` holds class indices
    (N,) or one-hot rows (N, K). Outputs of shape (N,) or (N, 1) predict class 1 where
    they exceed `threshold`: 0 for logits, 0.5 for probabilities; `y` holds 0/1 labels.
    """
    outputs = np.asarray(outputs)
    y = np.asarray(y)
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        predicted = np.argmax(outputs, axis=1)
        labels = np.argmax(y, axis=1) if y.ndim == 2 else y
    else:
        predicted = outputs.reshape(-1) > threshold
        labels = y.reshape(-1) > 0.5
    return float(np.mean(predicted == labels))


def fit(step: Step, params: Any, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
        rng: np.random.Generator, validation: tuple[np.ndarray, np.ndarray] | None = None,
        verbose: bool = True, predict: Predict | None = None) -> dict[str, list[float]]:
    """Train by minibatches: each epoch visits the examples in a fresh `rng`
    permutation, the last batch possibly smaller, calling `loss = step(params, xb, yb)`,
    which updates `params` in place and returns the batch's mean loss.

    Accuracies come from `predict(params, X)` (default: `step.predict`), which returns
    model outputs as `accuracy` expects. Returns the history: "loss" (the epoch's mean
    training loss, each batch weighted by its size), "train_accuracy" and
    "val_accuracy" (empty without `validation=(X_val, y_val)`), one entry per epoch.
    """
    predict = predict if predict is not None else getattr(step, "predict", None)
    if predict is None:
        raise TypeError("fit needs predict=(params, X) -> outputs to measure accuracy, "
                        "and the step has no .predict attribute")
    tqdm = _tqdm()
    n = len(X)
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "val_accuracy": []}
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        total = 0.0
        seen = 0
        with tqdm(total=n, desc=f"epoch {epoch}/{epochs}", unit="ex",
                  disable=not verbose) as bar:
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                loss = float(step(params, X[batch], y[batch]))
                total += loss * len(batch)
                seen += len(batch)
                bar.update(len(batch))
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
            history["loss"].append(total / n)
            history["train_accuracy"].append(_score(predict, params, X, y))
            postfix = {"loss": f"{total / n:.4f}", "acc": f"{history['train_accuracy'][-1]:.3f}"}
            if validation is not None:
                X_val, y_val = validation
                history["val_accuracy"].append(_score(predict, params, X_val, y_val))
                postfix["val_acc"] = f"{history['val_accuracy'][-1]:.3f}"
            bar.set_postfix(postfix)
    return history


def _score(predict: Predict, params: Any, X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of `predict`; a predictor may say where its single output splits the
    classes (`threshold`: 0.5 for probabilities, 0 for logits, the default)."""
    outputs = predict(params, X)
    return accuracy(outputs, y, getattr(predict, "threshold", 0.0))


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError as err:
        raise ImportError('runtime.train.fit shows progress with tqdm: '
                          'pip install "adjoint[train]"') from err
    return tqdm

"""Small data sets for examples and tests; none needs a network connection."""
from __future__ import annotations

import numpy as np


def digits(test_size: float = 0.25, seed: int = 0, dtype: np.dtype | type = np.float64
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 64 features,
    10 classes) as (X_train, y_train, X_test, y_test).

    The split is stratified and deterministic in `seed`. Features are standardized
    with the training set's mean and standard deviation (constant pixels are only
    centered), so no test statistics leak into training. Labels are int64.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise ImportError('runtime.data.digits needs scikit-learn: '
                          'pip install "adjoint[data]"') from err
    data = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=test_size, random_state=seed, stratify=data.target)
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    X_train = ((X_train - mean) / std).astype(dtype)
    X_test = ((X_test - mean) / std).astype(dtype)
    return X_train, y_train.astype(np.int64), X_test, y_test.astype(np.int64)


def xor(dtype: np.dtype | type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points X (4, 2) and their labels y = x1 xor x2 (int64)."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def spirals(n: int, rng: np.random.Generator, classes: int = 2, noise: float = 0.2,
            dtype: np.dtype | type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, `n` points per class: X (n * classes, 2), y (int64).

    Arm k runs from the origin to radius 1 while its angle sweeps 4 radians starting at
    4k, plus Gaussian angle noise of standard deviation `noise`.
    """
    radius = np.linspace(0.0, 1.0, n)
    X = np.empty((n * classes, 2))
    for k in range(classes):
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), n) + noise * rng.standard_normal(n)
        X[k * n:(k + 1) * n] = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    y = np.repeat(np.arange(classes, dtype=np.int64), n)
    return X.astype(dtype), y

import builtins

import numpy as np
import pytest

from runtime import data


def test_digits_split_is_deterministic_stratified_and_standardized():
    X_train, y_train, X_test, y_test = data.digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64 and y_test.dtype == np.int64
    again = data.digits()
    for a, b in zip((X_train, y_train, X_test, y_test), again):
        np.testing.assert_array_equal(a, b)
    other = data.digits(seed=1)
    assert not np.array_equal(y_train, other[1])

    # stratified: each class keeps its share of the full set in both parts
    full = np.bincount(np.concatenate([y_train, y_test]), minlength=10) / 1797
    assert np.abs(np.bincount(y_train, minlength=10) / len(y_train) - full).max() < 0.002
    assert np.abs(np.bincount(y_test, minlength=10) / len(y_test) - full).max() < 0.004

    # standardized with the training statistics; constant pixels are centered, not nan
    assert np.all(np.isfinite(X_train)) and np.all(np.isfinite(X_test))
    np.testing.assert_allclose(X_train.mean(axis=0), 0, atol=1e-12)
    std = X_train.std(axis=0)
    constant = std < 1e-12
    assert constant.any()
    np.testing.assert_allclose(std[~constant], 1, rtol=1e-12)
    assert abs(X_test.mean()) > 1e-6  # test set is not re-standardized on itself


def test_digits_float32_and_test_size():
    X_train, y_train, X_test, _ = data.digits(test_size=0.5, dtype=np.float32)
    assert X_train.dtype == np.float32 and len(X_test) in (898, 899)
    assert len(X_train) + len(X_test) == 1797


def test_digits_without_scikit_learn(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r'pip install "adjoint\[data\]"'):
        data.digits()


def test_xor():
    X, y = data.xor(dtype=np.float32)
    assert X.dtype == np.float32 and X.shape == (4, 2)
    np.testing.assert_array_equal(y, X[:, 0].astype(int) ^ X[:, 1].astype(int))


def test_spirals():
    X, y = data.spirals(50, np.random.default_rng(0), classes=3, noise=0.0)
    assert X.shape == (150, 2) and y.shape == (150,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [50, 50, 50])
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[:50], np.linspace(0, 1, 50), atol=1e-12)
    # without noise, arm k at its outer end sits at angle 4(k + 1) (sin, cos convention)
    for k in range(3):
        end = X[50 * k + 49]
        np.testing.assert_allclose(end, [np.sin(4 * (k + 1)), np.cos(4 * (k + 1))], atol=1e-12)
    a = data.spirals(20, np.random.default_rng(7))
    b = data.spirals(20, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], data.spirals(20, np.random.default_rng(7), noise=0.0)[0])

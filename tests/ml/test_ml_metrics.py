"""Metrics agree with scikit-learn's reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as reference

from dlp.ml import metrics


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, size=200))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(
        reference.accuracy_score(y_true, y_pred)
    )
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(
        reference.f1_score(y_true, y_pred, average="macro")
    )


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(10, 3, size=100)
    y_pred = y_true + rng.normal(0, 1, size=100)
    assert metrics.rmse(y_true, y_pred) == pytest.approx(
        np.sqrt(reference.mean_squared_error(y_true, y_pred))
    )
    assert metrics.mae(y_true, y_pred) == pytest.approx(
        reference.mean_absolute_error(y_true, y_pred)
    )
    assert metrics.r2(y_true, y_pred) == pytest.approx(reference.r2_score(y_true, y_pred))


def test_r2_of_constant_target_is_finite() -> None:
    constant = np.full(5, 2.0)
    assert metrics.r2(constant, constant) == 1.0
    assert metrics.r2(constant, constant + 1) == 0.0

"""Evaluation metrics over numpy arrays (no sklearn at run time)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Labels = npt.NDArray[np.integer]
Values = npt.NDArray[np.floating]


def accuracy(y_true: Labels, y_pred: Labels) -> float:
    """Share of predictions equal to the true label."""
    if len(y_true) == 0:
        return 0.0
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true: Labels, y_pred: Labels) -> float:
    """Unweighted mean F1 over the class indices present in ``y_true`` or ``y_pred``."""
    if len(y_true) == 0:
        return 0.0
    n_labels = int(max(y_true.max(), y_pred.max())) + 1
    true_positive = np.bincount(y_true[y_true == y_pred], minlength=n_labels)
    denominator = np.bincount(y_true, minlength=n_labels) + np.bincount(y_pred, minlength=n_labels)
    present = denominator > 0
    return float(np.mean(2 * true_positive[present] / denominator[present]))


def rmse(y_true: Values, y_pred: Values) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: Values, y_pred: Values) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true: Values, y_pred: Values) -> float:
    """Coefficient of determination; 1.0 for a perfect fit of a constant target, else 0.0."""
    residual = float(np.sum((y_true - y_pred) ** 2))
    total = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total

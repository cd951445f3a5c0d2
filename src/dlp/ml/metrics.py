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


def log_loss(y_true: Labels, log_probabilities: Values) -> float:
    """Mean negative log-likelihood of the true class, from per-class log-probabilities."""
    if len(y_true) == 0:
        return 0.0
    picked = np.take_along_axis(log_probabilities, y_true[:, None].astype(np.intp), axis=1)
    return float(-np.mean(picked))


def confusion_matrix(y_true: Labels, y_pred: Labels, n_classes: int) -> npt.NDArray[np.int64]:
    """Counts with true classes as rows and predicted classes as columns, in index order."""
    cells = np.bincount(
        y_true.astype(np.int64) * n_classes + y_pred.astype(np.int64), minlength=n_classes**2
    )
    return cells[: n_classes**2].reshape(n_classes, n_classes).astype(np.int64)


def roc_auc(y_true: Labels, scores: Values) -> float:
    """Area under the ROC curve of binary labels (1 is positive) ranked by ``scores``."""
    positive = y_true == 1
    n_positive = int(positive.sum())
    n_negative = len(y_true) - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ValueError("ROC AUC needs both classes among the true labels")
    # Mann-Whitney U: the positives' rank sum, ties sharing their mean rank.
    rank_sum = float(_average_ranks(scores)[positive].sum())
    return (rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)


def _average_ranks(values: Values) -> npt.NDArray[np.float64]:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2)[group]
    return ranks

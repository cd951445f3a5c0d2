"""ROC AUC, log loss and the confusion matrix agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as reference

from dlp.ml import metrics
from dlp.ml.objectives import ClassificationObjective, RegressionObjective


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_and_without_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=300)
    scores = y_true * 0.7 + rng.normal(size=300)
    assert metrics.roc_auc(y_true, scores) == pytest.approx(
        reference.roc_auc_score(y_true, scores), abs=1e-12
    )
    tied = np.round(scores, 1)  # many ties: they must share their mean rank
    assert metrics.roc_auc(y_true, tied) == pytest.approx(
        reference.roc_auc_score(y_true, tied), abs=1e-12
    )


def test_roc_auc_extremes_and_one_class() -> None:
    y_true = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(y_true, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.roc_auc(y_true, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(y_true, np.full(4, 0.5)) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc(np.zeros(4, dtype=int), np.arange(4.0))


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 4))
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    y_true = rng.integers(0, 4, size=200)
    assert metrics.log_loss(y_true, log_probabilities) == pytest.approx(
        reference.log_loss(y_true, np.exp(log_probabilities), labels=[0, 1, 2, 3]), rel=1e-9
    )


def test_confusion_matrix_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 3, size=100)
    y_pred = rng.integers(0, 4, size=100)  # predicts a class that never occurs
    matrix = metrics.confusion_matrix(y_true, y_pred, n_classes=4)
    np.testing.assert_array_equal(
        matrix, reference.confusion_matrix(y_true, y_pred, labels=[0, 1, 2, 3])
    )


def test_classification_objective_reports_auc_for_binary_tasks_only() -> None:
    generator = torch.Generator().manual_seed(0)
    binary_targets = torch.tensor([0, 1] * 20)
    binary = torch.randn(40, 2, generator=generator)
    scores = ClassificationObjective().metrics(binary, binary_targets)
    probability = torch.softmax(binary, dim=1)[:, 1].numpy()
    assert scores["auc"] == pytest.approx(
        reference.roc_auc_score(binary_targets.numpy(), probability)
    )
    three_classes = torch.randn(40, 3, generator=generator)
    multi = ClassificationObjective().metrics(three_classes, binary_targets)
    assert set(multi) == {"accuracy", "f1"}


def test_final_evaluation_reports() -> None:
    generator = torch.Generator().manual_seed(1)
    outputs = torch.randn(50, 2, generator=generator)
    targets = torch.randint(0, 2, (50,), generator=generator)
    report = ClassificationObjective().evaluation(outputs, targets)
    assert set(report) == {"confusion_matrix", "log_loss", "roc_auc"}
    matrix = report["confusion_matrix"]
    assert matrix == reference.confusion_matrix(targets, outputs.argmax(1), labels=[0, 1]).tolist()
    assert all(type(cell) is int for row in matrix for cell in row)
    assert report["log_loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(outputs, targets)), rel=1e-6
    )
    regression = RegressionObjective(mean=10.0, std=2.0).evaluation(
        torch.zeros(4, 1), torch.tensor([1.0, -1.0, 1.0, -1.0])
    )
    assert regression == {"rmse": 2.0, "mae": 2.0, "r2": 0.0}

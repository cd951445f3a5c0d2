"""What the trainer minimises and reports, per task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from dlp.ml import metrics

ClassWeighting = Literal["auto", "balanced", "none"]
LossFunction = Callable[[Tensor, Tensor], Tensor]

AUTO_BALANCE_RATIO = 3.0
"""``class_weights="auto"`` balances once the largest class outnumbers the smallest this much."""


class Objective(Protocol):
    """A loss to minimise and the metrics to report on held-out data."""

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Unprefixed names ``metrics`` always reports, ``loss`` included."""
        ...

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean loss of a batch (unweighted: the figure reported as ``val_loss``)."""
        ...

    def training_loss(self, targets: Tensor, class_weights: ClassWeighting) -> LossFunction:
        """The loss to minimise, given the training split's targets."""
        ...

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Metrics (unprefixed names) of model outputs against targets."""
        ...

    def evaluation(self, outputs: Tensor, targets: Tensor) -> dict[str, Any]:
        """The final report on the kept weights (JSON-ready values)."""
        ...


class ClassificationObjective:
    """Cross-entropy over logits; reports accuracy, macro F1 and, for two classes, ROC AUC."""

    @property
    def metric_names(self) -> tuple[str, ...]:
        """``loss``, ``accuracy`` and ``f1`` (``auc`` only appears for binary tasks)."""
        return ("loss", "accuracy", "f1")

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy of logits against class indices."""
        return functional.cross_entropy(outputs, targets)

    def training_loss(self, targets: Tensor, class_weights: ClassWeighting) -> LossFunction:
        """Cross-entropy, weighted by inverse class frequency when ``class_weights`` asks."""
        weights = balanced_class_weights(targets, class_weights)
        return self.loss if weights is None else _WeightedCrossEntropy(weights)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``accuracy``, ``f1`` (macro) and, for binary tasks with both classes, ``auc``."""
        predicted = outputs.argmax(dim=1).numpy()
        expected = targets.numpy()
        scores = {
            "accuracy": metrics.accuracy(expected, predicted),
            "f1": metrics.macro_f1(expected, predicted),
        }
        auc = _binary_auc(outputs, expected)
        if auc is not None:
            scores["auc"] = auc
        return scores

    def evaluation(self, outputs: Tensor, targets: Tensor) -> dict[str, Any]:
        """``confusion_matrix`` (rows true, columns predicted), ``log_loss``, binary ``roc_auc``."""
        expected = targets.numpy()
        matrix = metrics.confusion_matrix(
            expected, outputs.argmax(dim=1).numpy(), n_classes=int(outputs.shape[1])
        )
        log_probabilities = functional.log_softmax(outputs.double(), dim=1).numpy()
        report: dict[str, Any] = {
            "confusion_matrix": matrix.tolist(),
            "log_loss": metrics.log_loss(expected, log_probabilities),
        }
        auc = _binary_auc(outputs, expected)
        if auc is not None:
            report["roc_auc"] = auc
        return report


class RegressionObjective:
    """MSE on the standardised target; reports errors in the target's own units."""

    def __init__(self, *, mean: float, std: float) -> None:
        self.mean = mean
        self.std = std

    @property
    def metric_names(self) -> tuple[str, ...]:
        """``loss``, ``rmse``, ``mae`` and ``r2``."""
        return ("loss", "rmse", "mae", "r2")

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean squared error of standardised predictions."""
        return functional.mse_loss(outputs.squeeze(-1), targets)

    def training_loss(self, targets: Tensor, class_weights: ClassWeighting) -> LossFunction:
        """The plain MSE: class weights mean nothing for regression."""
        return self.loss

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``rmse``, ``mae`` (original units) and ``r2``."""
        predicted = self._restore(outputs.squeeze(-1).numpy())
        expected = self._restore(targets.numpy())
        return {
            "rmse": metrics.rmse(expected, predicted),
            "mae": metrics.mae(expected, predicted),
            "r2": metrics.r2(expected, predicted),
        }

    def evaluation(self, outputs: Tensor, targets: Tensor) -> dict[str, Any]:
        """``rmse``, ``mae`` and ``r2`` in the target's original units."""
        return dict(self.metrics(outputs, targets))

    def _restore(self, values: np.ndarray) -> np.ndarray:
        return values.astype(np.float64) * self.std + self.mean


def balanced_class_weights(targets: Tensor, mode: ClassWeighting) -> Tensor | None:
    """Inverse-frequency weights ``n / (classes * count)``, or None when training unweighted."""
    if mode == "none" or targets.numel() == 0:
        return None
    counts = torch.bincount(targets)
    present = counts > 0
    present_counts = counts[present]
    largest, smallest = int(present_counts.max()), int(present_counts.min())
    if mode == "auto" and largest <= AUTO_BALANCE_RATIO * smallest:
        return None
    n_present = int(present.sum())
    weights = targets.numel() / (n_present * counts.clamp(min=1).to(torch.float32))
    # A class absent from training never appears as a target, so its weight is never used.
    return torch.where(present, weights, torch.ones_like(weights))


class _WeightedCrossEntropy:
    """Cross-entropy with per-class weights, padded when the model has unseen classes."""

    def __init__(self, weights: Tensor) -> None:
        self.weights = weights

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        missing = int(outputs.shape[1]) - int(self.weights.shape[0])
        if missing > 0:
            self.weights = functional.pad(self.weights, (0, missing), value=1.0)
        if self.weights.device != outputs.device:  # targets kept on the host, batches moved
            self.weights = self.weights.to(outputs.device)
        return functional.cross_entropy(outputs, targets, weight=self.weights)


def _binary_auc(outputs: Tensor, expected: np.ndarray) -> float | None:
    if outputs.shape[1] != 2 or len(np.unique(expected)) != 2:
        return None
    # The logit margin ranks rows exactly as the positive-class probability does.
    margin = (outputs[:, 1].double() - outputs[:, 0].double()).numpy()
    return metrics.roc_auc(expected, margin)


def objective_state(objective: Objective) -> dict[str, Any]:
    """What rebuilds ``objective`` in another process (``objective_from_state``)."""
    if isinstance(objective, RegressionObjective):
        return {"task": "regression", "mean": objective.mean, "std": objective.std}
    return {"task": "classification"}


def objective_from_state(state: dict[str, Any]) -> Objective:
    """The objective ``objective_state`` described."""
    if state["task"] == "regression":
        return RegressionObjective(mean=float(state["mean"]), std=float(state["std"]))
    return ClassificationObjective()

"""What the trainer minimises and reports, per task."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import Tensor
from torch.nn import functional

from dlp.ml import metrics


class Objective(Protocol):
    """A loss to minimise and the metrics to report on held-out data."""

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean loss of a batch."""
        ...

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Metrics (unprefixed names) of model outputs against targets."""
        ...


class ClassificationObjective:
    """Cross-entropy over logits; reports accuracy and macro F1."""

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy of logits against class indices."""
        return functional.cross_entropy(outputs, targets)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``accuracy`` and ``f1`` (macro)."""
        predicted = outputs.argmax(dim=1).numpy()
        expected = targets.numpy()
        return {
            "accuracy": metrics.accuracy(expected, predicted),
            "f1": metrics.macro_f1(expected, predicted),
        }


class RegressionObjective:
    """MSE on the standardised target; reports errors in the target's own units."""

    def __init__(self, *, mean: float, std: float) -> None:
        self.mean = mean
        self.std = std

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean squared error of standardised predictions."""
        return functional.mse_loss(outputs.squeeze(-1), targets)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``rmse``, ``mae`` (original units) and ``r2``."""
        predicted = self._restore(outputs.squeeze(-1).numpy())
        expected = self._restore(targets.numpy())
        return {
            "rmse": metrics.rmse(expected, predicted),
            "mae": metrics.mae(expected, predicted),
            "r2": metrics.r2(expected, predicted),
        }

    def _restore(self, values: np.ndarray) -> np.ndarray:
        return values.astype(np.float64) * self.std + self.mean

"""Predictions from a loaded model: rows in, labels (and probabilities) or values out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dlp.ml.architectures import count_parameters
from dlp.ml.config import Task
from dlp.ml.tabular import TabularPreprocessor, rows_to_columns
from dlp.ml.targets import ClassificationTarget, ClassLabel, RegressionTarget


@dataclass(frozen=True)
class Prediction:
    """One prediction per input row; probabilities align with ``Predictor.classes``."""

    predictions: list[Any]
    probabilities: list[list[float]] | None


class Predictor:
    """A trained tabular model ready to answer predictions (eval mode, no gradients)."""

    def __init__(
        self,
        *,
        network: nn.Module,
        preprocessor: TabularPreprocessor,
        target: ClassificationTarget | RegressionTarget,
        model_type: str,
        metrics: Mapping[str, float],
    ) -> None:
        self._network = network.eval()
        self._preprocessor = preprocessor
        self._target = target
        self.model_type = model_type
        self.metrics = dict(metrics)
        self.n_parameters = count_parameters(network)

    @property
    def task(self) -> Task:
        """``classification`` or ``regression``."""
        return "classification" if isinstance(self._target, ClassificationTarget) else "regression"

    @property
    def classes(self) -> list[ClassLabel] | None:
        """Class labels in output order (classification), else None."""
        if isinstance(self._target, ClassificationTarget):
            return self._target.classes
        return None

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """``[{"name", "dtype"}]`` of the columns each row must provide."""
        return self._preprocessor.input_schema

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> Prediction:
        """Predict each row; ValidationError names the row and column of bad input."""
        columns = rows_to_columns(rows, self._preprocessor.column_names)
        return self.predict_columns(columns)

    def predict_columns(self, columns: Mapping[str, Sequence[Any]]) -> Prediction:
        """Predict from column-oriented input (name → one value per row)."""
        features = torch.from_numpy(self._preprocessor.transform(columns))
        with torch.inference_mode():
            outputs = self._network(features)
            if isinstance(self._target, RegressionTarget):
                return Prediction(
                    predictions=self._target.decode(outputs.squeeze(-1).numpy()),
                    probabilities=None,
                )
            probabilities = torch.softmax(outputs, dim=1).numpy()
        labels = self._target.decode(np.argmax(probabilities, axis=1))
        return Prediction(predictions=labels, probabilities=probabilities.tolist())

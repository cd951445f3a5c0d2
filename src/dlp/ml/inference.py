"""Predictions from a loaded model: rows in, labels (and probabilities) or values out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import torch
from torch import Tensor, nn

from dlp.ml.architectures import count_parameters
from dlp.ml.config import InputSpec, Task
from dlp.ml.encoders import InputEncoder
from dlp.ml.targets import ClassificationTarget, ClassLabel, RegressionTarget

PREDICT_CHUNK_VALUES = 1 << 22

ServingEngine = Literal["torch", "onnxruntime"]


@dataclass(frozen=True)
class Prediction:
    """One prediction per input row; probabilities align with ``Predictor.classes``."""

    predictions: list[Any]
    probabilities: list[list[float]] | None


@dataclass(frozen=True)
class TablePrediction:
    """A whole table's predictions as arrays: labels or values, and class probabilities."""

    predictions: pa.Array
    probabilities: npt.NDArray[np.float32] | None


class Predictor:
    """A trained model of any data kind, ready to answer predictions (eval mode, no gradients).

    Subclasses change only ``run_network`` (how encoded features become outputs);
    encoding the inputs and decoding the outputs stay here.
    """

    engine: ClassVar[ServingEngine] = "torch"

    def __init__(
        self,
        *,
        network: nn.Module,
        encoder: InputEncoder,
        target: ClassificationTarget | RegressionTarget,
        model_type: str,
        metrics: Mapping[str, float],
    ) -> None:
        self._network = network.eval()
        self._encoder = encoder
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
    def network(self) -> nn.Module:
        """The network in eval mode (for export; do not train it)."""
        return self._network

    @property
    def input_spec(self) -> InputSpec:
        """The shape of the encoded input the network takes."""
        return self._encoder.input_spec

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """``[{"name", "dtype"}]`` of what each input must provide."""
        return self._encoder.input_schema

    def predict(self, inputs: Sequence[Any]) -> Prediction:
        """Predict each input (a row, a text or an image); ValidationError names bad ones."""
        outputs = self._outputs(self._encoder.encode_inputs(inputs))
        if isinstance(self._target, RegressionTarget):
            return Prediction(
                predictions=self._target.decode(outputs.squeeze(-1).numpy()), probabilities=None
            )
        probabilities = torch.softmax(outputs, dim=1).numpy()
        labels = self._target.decode(np.argmax(probabilities, axis=1))
        return Prediction(predictions=labels, probabilities=probabilities.tolist())

    def predict_table(self, table: pa.Table) -> TablePrediction:
        """Predict every row of a table whose columns are named as ``input_schema`` says."""
        outputs = self._outputs(self._encoder.encode_table(table))
        if isinstance(self._target, RegressionTarget):
            values = self._target.restore(outputs.squeeze(-1).numpy())
            return TablePrediction(predictions=pa.array(values), probabilities=None)
        probabilities = torch.softmax(outputs, dim=1).numpy()
        labels = self._target.label_array(np.argmax(probabilities, axis=1))
        return TablePrediction(predictions=labels, probabilities=probabilities)

    def _outputs(self, features: Tensor) -> Tensor:
        """The network's outputs; wide inputs (images) go through in slices so
        activations stay bounded."""
        row_values = max(1, features[0].numel()) if len(features) else 1
        chunk = max(1, PREDICT_CHUNK_VALUES // row_values)
        with torch.inference_mode():
            if len(features) <= chunk:
                return self.run_network(features)
            return torch.cat(
                [
                    self.run_network(features[i : i + chunk])
                    for i in range(0, max(len(features), 1), chunk)
                ]
            )

    def run_network(self, features: Tensor) -> Tensor:
        """The network's raw outputs for one batch of encoded features."""
        outputs: Tensor = self._network(features)
        return outputs

    @property
    def resident_bytes(self) -> int:
        """Memory the loaded model holds: its network's parameters and buffers."""
        tensors = [*self._network.parameters(), *self._network.buffers()]
        return sum(tensor.nbytes for tensor in tensors)

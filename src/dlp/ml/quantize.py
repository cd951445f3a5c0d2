"""Dynamic int8 quantization of a model's network, scored on the model's validation split.

The split is re-created from the dataset exactly as training drew it (the same
usable rows, the same seeded and stratified split) and capped at
``MAX_EVALUATION_ROWS`` rows, so the measurement stays bounded. The fp32 model
and the int8 graph answer the same rows through ``Predictor.predict``, the
serving path, and are scored with the metric training reported:
``val_accuracy`` for classification, ``val_rmse`` (original units) for regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from dlp.errors import DLPError, ValidationError
from dlp.ml.artifact import load_predictor, read_manifest
from dlp.ml.config import DataKind, Task, TrainingConfig
from dlp.ml.export import export_model
from dlp.ml.image_archive import ArchiveLimits
from dlp.ml.images import validation_images
from dlp.ml.inference import Predictor
from dlp.ml.metrics import accuracy, rmse
from dlp.ml.onnx_serving import int8_predictor, quantize_dynamic_int8
from dlp.ml.split import split_train_validation
from dlp.ml.tabular_values import decode_dictionary
from dlp.ml.targets import (
    ClassificationTarget,
    ClassificationTargetState,
    regression_values,
    usable_target_rows,
)

__all__ = [
    "MAX_EVALUATION_ROWS",
    "ImageValidationSource",
    "QuantizedModel",
    "ValidationSource",
    "quantize_model",
]

MAX_EVALUATION_ROWS = 50_000
"""Validation rows scored per quantization: enough for a stable figure, bounded in time."""


@dataclass(frozen=True)
class ValidationSource:
    """The dataset a model was trained on and how its training split it."""

    table: pa.Table
    target: str
    training: TrainingConfig
    text_column: str | None = None
    """The text column of a text model; None for a tabular one."""


@dataclass(frozen=True)
class ImageValidationSource:
    """The archive an image model was trained on and how its training split it."""

    archive: BinaryIO
    training: TrainingConfig
    limits: ArchiveLimits


@dataclass(frozen=True)
class QuantizedModel:
    """The int8 graph and its validation metric next to the fp32 model's."""

    graph: bytes
    metric: Literal["val_accuracy", "val_rmse"]
    before: float
    after: float
    validation_rows: int
    size_bytes_fp32: int

    @property
    def change(self) -> float:
        """``after - before`` (positive is better accuracy, worse RMSE)."""
        return self.after - self.before


def quantize_model(
    files: Mapping[str, bytes], source: ValidationSource | ImageValidationSource
) -> QuantizedModel:
    """Quantize a model's network to int8 and score both versions on its validation rows.

    Raises ValidationError when the model cannot be exported to ONNX and quantized, or
    when ``source`` no longer holds the columns the model was trained on.
    """
    manifest = read_manifest(files)
    if (manifest.data_kind == "image") != isinstance(source, ImageValidationSource):
        raise ValidationError(f"a {manifest.data_kind} model needs its own kind of dataset")
    if isinstance(source, ValidationSource):
        _check_columns(manifest.data_kind, source)
    classes = (
        ClassificationTarget(manifest.target)
        if isinstance(manifest.target, ClassificationTargetState)
        else None
    )
    inputs, truth = _validation_rows(source, classes)
    predictor = load_predictor(files)
    try:
        graph = export_model(files, "onnx")
        quantized_graph = quantize_dynamic_int8(graph)
        quantized = int8_predictor(predictor, quantized_graph)
    except DLPError as exc:
        raise ValidationError(f"cannot quantize this model: {exc.message}") from exc
    except Exception as exc:  # exporters and the quantizer raise many unrelated types
        raise ValidationError(
            f"cannot export this model to ONNX for quantization: {type(exc).__name__}: {exc}"
        ) from exc
    return QuantizedModel(
        graph=quantized_graph,
        metric="val_rmse" if classes is None else "val_accuracy",
        before=_score(predictor, inputs, truth, classes),
        after=_score(quantized, inputs, truth, classes),
        validation_rows=len(inputs),
        size_bytes_fp32=len(graph),
    )


def _check_columns(data_kind: DataKind, source: ValidationSource) -> None:
    needed = [source.target] + ([source.text_column] if data_kind == "text" else [])
    missing = [name for name in needed if name is None or name not in source.table.column_names]
    if missing:
        raise ValidationError(f"the model's dataset has no column {missing[0]!r}")


def _validation_rows(
    source: ValidationSource | ImageValidationSource, classes: ClassificationTarget | None
) -> tuple[list[Any], npt.NDArray[Any]]:
    """Prediction inputs and true values (class indices or numbers) of the first validation
    rows, split as training split them (``dlp.ml.artifact.fit_target``; images:
    ``dlp.ml.images``)."""
    if isinstance(source, ImageValidationSource):
        assert classes is not None, "image models are classifiers"
        images, folders = validation_images(
            source.archive, source.training, limits=source.limits, max_images=MAX_EVALUATION_ROWS
        )
        labels = pa.chunked_array([pa.array(folders, type=pa.string())])
        return list(images), classes.encode(labels, name="class folder")
    table = source.table
    task: Task = "regression" if classes is None else "classification"
    usable = usable_target_rows(table.column(source.target), name=source.target, task=task)
    if source.text_column is not None:
        texts = decode_dictionary(table.column(source.text_column))
        usable &= texts.is_valid().to_numpy(zero_copy_only=False)
    if not usable.all():
        table = table.filter(pa.array(usable))
    strata = None
    if classes is not None:
        strata = classes.encode(table.column(source.target), name=source.target)
    _, validation = split_train_validation(
        table.num_rows,
        fraction=source.training.validation_fraction,
        seed=source.training.seed,
        strata=strata,
    )
    rows = table.take(pa.array(validation[:MAX_EVALUATION_ROWS]))
    column = rows.column(source.target)
    truth: npt.NDArray[Any] = (
        regression_values(column, name=source.target)
        if classes is None
        else classes.encode(column, name=source.target)
    )
    if source.text_column is not None:
        texts = decode_dictionary(rows.column(source.text_column))
        return [str(text) for text in texts.to_pylist()], truth
    return rows.drop_columns([source.target]).to_pylist(), truth


def _score(
    predictor: Predictor,
    inputs: list[Any],
    truth: npt.NDArray[Any],
    classes: ClassificationTarget | None,
) -> float:
    predictions = predictor.predict(inputs).predictions
    if classes is None:
        return rmse(truth, np.asarray(predictions, dtype=np.float64))
    position = {label: index for index, label in enumerate(classes.classes)}
    return accuracy(truth, np.array([position[label] for label in predictions], dtype=np.int64))

"""The target column: which rows are usable, how labels become arrays and back.

Classification keeps each class in its JSON type (an int label stays an int);
regression standardises the target with the training split's mean and std.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from dlp.errors import ValidationError
from dlp.ml.config import Task
from dlp.ml.tabular_values import decode_dictionary

MAX_CLASSES = 1000

ClassLabel = bool | int | float | str
_StateLabel = StrictBool | StrictInt | StrictFloat | StrictStr


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassificationTargetState(_State):
    """The JSON form of a classification target: its sorted classes."""

    kind: Literal["classification"] = "classification"
    classes: list[_StateLabel] = Field(min_length=2, max_length=MAX_CLASSES)


class RegressionTargetState(_State):
    """The JSON form of a regression target: the scale the model predicts in."""

    kind: Literal["regression"] = "regression"
    mean: float = Field(allow_inf_nan=False)
    std: float = Field(gt=0, allow_inf_nan=False)


TargetState = Annotated[
    ClassificationTargetState | RegressionTargetState, Field(discriminator="kind")
]


class ClassificationTarget:
    """Maps class labels to indices 0..n-1 (sorted label order) and back."""

    def __init__(self, state: ClassificationTargetState) -> None:
        if len(set(state.classes)) != len(state.classes):
            raise ValidationError("target state repeats a class")
        self.state = state
        self._labels = np.empty(len(state.classes), dtype=object)
        self._labels[:] = state.classes

    @classmethod
    def fit(cls, column: pa.ChunkedArray, *, name: str) -> ClassificationTarget:
        """Collect the classes of a target column already stripped of missing values."""
        classes = sorted(pc.unique(_labels(column, name)).to_pylist())
        if len(classes) < 2:
            found = f"only {classes[0]!r}" if classes else "no values"
            raise ValidationError(
                f"target {name!r} needs at least 2 classes for classification; it has {found}"
            )
        if len(classes) > MAX_CLASSES:
            raise ValidationError(
                f"target {name!r} has {len(classes)} distinct values, more than the "
                f"{MAX_CLASSES} classes allowed; is this a regression task?"
            )
        return cls(ClassificationTargetState(classes=classes))

    @property
    def classes(self) -> list[ClassLabel]:
        """Class labels, in the order of the model's outputs."""
        return list(self.state.classes)

    @property
    def n_outputs(self) -> int:
        """Number of model outputs (one logit per class)."""
        return len(self.state.classes)

    def encode(self, column: pa.ChunkedArray, *, name: str) -> npt.NDArray[np.int64]:
        """Class index of each label; every label must be one of ``classes``."""
        labels = _labels(column, name)
        codes = pc.index_in(labels, value_set=pa.array(self.state.classes, type=labels.type))
        if codes.null_count:
            raise ValidationError(f"target {name!r} holds a label outside the known classes")
        indices: npt.NDArray[np.int64] = codes.to_numpy().astype(np.int64)
        return indices

    def decode(self, indices: npt.NDArray[np.int64]) -> list[ClassLabel]:
        """Labels (in their JSON type) of class indices."""
        decoded: list[ClassLabel] = self._labels[indices].tolist()
        return decoded

    def label_array(self, indices: npt.NDArray[np.int64]) -> pa.Array:
        """Labels of class indices as an Arrow array of the labels' type."""
        return pa.array(self.state.classes).take(pa.array(indices))


class RegressionTarget:
    """Standardises a numeric target and maps predictions back to its units."""

    def __init__(self, state: RegressionTargetState) -> None:
        self.state = state

    @classmethod
    def fit(cls, values: npt.NDArray[np.float64], *, name: str) -> RegressionTarget:
        """Learn mean and std from the training split's finite target values."""
        std = float(values.std())
        if not std > 0 or not math.isfinite(std):
            raise ValidationError(f"target {name!r} is constant; there is nothing to predict")
        return cls(RegressionTargetState(mean=float(values.mean()), std=std))

    @property
    def n_outputs(self) -> int:
        """Number of model outputs."""
        return 1

    def encode(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Standardised targets for the loss."""
        return ((values - self.state.mean) / self.state.std).astype(np.float32)

    def decode(self, outputs: npt.NDArray[np.floating]) -> list[float]:
        """Predictions in the target's original units."""
        restored: list[float] = self.restore(outputs).tolist()
        return restored

    def restore(self, outputs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Predictions in the target's original units, as an array."""
        return outputs.astype(np.float64) * self.state.std + self.state.mean


def usable_target_rows(column: pa.ChunkedArray, *, name: str, task: Task) -> npt.NDArray[np.bool_]:
    """Rows whose target is present (and finite, for numbers); checks the column's type."""
    column = decode_dictionary(column)
    if task == "regression":
        return np.isfinite(regression_values(column, name=name))
    _labels(column, name)  # type check only
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        valid &= ~np.isnan(pc.fill_null(column, 0.0).to_numpy())
    return np.asarray(valid, dtype=np.bool_)


def regression_values(column: pa.ChunkedArray, *, name: str) -> npt.NDArray[np.float64]:
    """The target as float64 (NaN where missing); ValidationError if it is not numeric."""
    column = decode_dictionary(column)
    data_type = column.type
    numeric = (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )
    if not numeric:
        hint = "; use classification" if pa.types.is_boolean(data_type) else ""
        raise ValidationError(
            f"regression needs a numeric target, but {name!r} is {_describe(data_type)}{hint}"
        )
    values: npt.NDArray[np.float64] = pc.cast(column, pa.float64()).to_numpy()
    return values


def _labels(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """The target in one canonical Arrow type per JSON type, so lookups compare equal."""
    column = decode_dictionary(column)
    data_type = column.type
    if pa.types.is_boolean(data_type):
        return column
    if pa.types.is_integer(data_type):
        return column.cast(pa.int64())
    if pa.types.is_floating(data_type):
        return column.cast(pa.float64())
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return column.cast(pa.string())
    raise ValidationError(
        f"classification needs a target of strings, integers, booleans or numbers, but "
        f"{name!r} is {_describe(data_type)}"
    )


def _describe(data_type: pa.DataType) -> str:
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "text"
    if pa.types.is_boolean(data_type):
        return "boolean"
    return f"of type {data_type}"

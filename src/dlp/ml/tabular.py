"""Tabular preprocessing: columns in, a dense float32 feature matrix out.

The preprocessor is fitted on the training split only and saved as JSON. Numeric
columns are median-imputed and standardised; string columns are one-hot encoded over
their most frequent categories plus an "other" bucket. The same ``transform`` serves
training (a ``pyarrow.Table``) and prediction (a mapping of column name to values),
vectorised over whole columns.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from dlp.errors import ValidationError
from dlp.ml.config import InputSpec
from dlp.ml.encoders import parse_state
from dlp.ml.tabular_values import (
    Columns,
    decode_dictionary,
    numeric_values,
    row_count,
    rows_to_columns,
    string_values,
)

MAX_CATEGORIES = 32
"""Up to this many distinct values a string column is one-hot encoded; beyond, embedded."""
MAX_EMBEDDED_CATEGORIES = 10_000
MIN_EMBEDDED_COUNT = 2
MISSING_CATEGORY = "__missing__"
STATE_VERSION: Final = 1

NumericDType = Literal["integer", "number", "boolean"]
FloatMatrix: TypeAlias = npt.NDArray[np.float32]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericColumn(_State):
    """A numeric input column: impute the median, then standardise."""

    kind: Literal["numeric"] = "numeric"
    name: str
    dtype: NumericDType
    median: float = Field(allow_inf_nan=False)
    mean: float = Field(allow_inf_nan=False)
    std: float = Field(gt=0, allow_inf_nan=False)


class CategoricalColumn(_State):
    """A string input column: one-hot over ``categories`` plus an "other" bucket."""

    kind: Literal["categorical"] = "categorical"
    name: str
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES)


class EmbeddedColumn(_State):
    """A high-cardinality string column: an index into a learned embedding (0 = other)."""

    kind: Literal["embedded"] = "embedded"
    name: str
    categories: list[str] = Field(min_length=1, max_length=MAX_EMBEDDED_CATEGORIES)


class DroppedColumn(_State):
    """A column of the training table the model does not use, and why."""

    name: str
    reason: str


FeatureColumn = Annotated[
    NumericColumn | CategoricalColumn | EmbeddedColumn, Field(discriminator="kind")
]


class PreprocessorState(_State):
    """The JSON form of a fitted ``TabularPreprocessor``."""

    version: Literal[1] = STATE_VERSION
    columns: list[FeatureColumn] = Field(min_length=1)
    dropped: list[DroppedColumn] = Field(default_factory=list)


class TabularPreprocessor:
    """Turns tabular columns into the model's float32 feature matrix."""

    def __init__(self, state: PreprocessorState) -> None:
        names = [column.name for column in state.columns]
        if len(set(names)) != len(names):
            raise ValidationError("preprocessing state lists a column twice")
        self._state = state
        self._numeric = [c for c in state.columns if isinstance(c, NumericColumn)]
        self._categorical = [c for c in state.columns if isinstance(c, CategoricalColumn)]
        self._embedded = [c for c in state.columns if isinstance(c, EmbeddedColumn)]
        with_categories: list[CategoricalColumn | EmbeddedColumn] = [
            *self._categorical,
            *self._embedded,
        ]
        repeated = [c.name for c in with_categories if len(set(c.categories)) < len(c.categories)]
        if repeated:
            raise ValidationError(f"preprocessing state repeats a category of {repeated[0]!r}")
        self._medians = np.array([c.median for c in self._numeric], dtype=np.float64)
        self._means = np.array([c.mean for c in self._numeric], dtype=np.float64)
        self._stds = np.array([c.std for c in self._numeric], dtype=np.float64)
        self._numeric_names = [c.name for c in self._numeric]
        self._category_sets = [pa.array(c.categories, type=pa.string()) for c in self._categorical]
        self._embedded_sets = [pa.array(c.categories, type=pa.string()) for c in self._embedded]
        # Layout: standardised numbers, one-hot blocks, then one index column per
        # embedded column (held as float32, exact below 2**24; the MLP casts them back).
        self._n_features = (
            len(self._numeric)
            + sum(len(c.categories) + 1 for c in self._categorical)
            + len(self._embedded)
        )

    @classmethod
    def fit(
        cls,
        table: pa.Table,
        *,
        exclude: Collection[str] = (),
        rows: npt.NDArray[np.int64] | None = None,
    ) -> TabularPreprocessor:
        """Learn imputation, scaling and categories from the training split (``rows``).

        Columns are taken one at a time, so fitting never copies the whole table.
        """
        columns: list[NumericColumn | CategoricalColumn | EmbeddedColumn] = []
        dropped: list[DroppedColumn] = []
        row_index = None if rows is None else pa.array(rows)
        for name in table.column_names:
            if name in exclude:
                continue
            column = table.column(name)
            fitted = _fit_column(name, column if row_index is None else column.take(row_index))
            if isinstance(fitted, DroppedColumn):
                dropped.append(fitted)
            else:
                columns.append(fitted)
        if not columns:
            reasons = "; ".join(f"{d.name!r}: {d.reason}" for d in dropped) or "no columns"
            raise ValidationError(f"the dataset has no usable feature columns ({reasons})")
        return cls(PreprocessorState(columns=columns, dropped=dropped))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from ``state_dict()``; ValidationError if corrupt."""
        return cls(parse_state(PreprocessorState, state, "preprocessing"))

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able state of this preprocessor."""
        return self._state.model_dump(mode="json")

    @property
    def state(self) -> PreprocessorState:
        """The validated state model."""
        return self._state

    @property
    def n_features(self) -> int:
        """Width of the matrix ``transform`` returns."""
        return self._n_features

    @property
    def input_spec(self) -> InputSpec:
        """The feature matrix's width and embedded columns' sizes, for ``build_model``."""
        return InputSpec(
            n_features=self._n_features,
            categorical_cardinalities=[len(c.categories) + 1 for c in self._embedded],
        )

    def encode_inputs(self, inputs: Sequence[Any]) -> Tensor:
        """Rows (objects of column values) to the float32 feature matrix."""
        for index, row in enumerate(inputs):
            if not isinstance(row, Mapping):
                raise ValidationError(
                    f"inputs[{index}] must be an object of column values for a tabular model"
                )
        if not self._categorical and not self._embedded:
            numbers = self._numeric_rows(inputs)
            if numbers is not None:
                return torch.from_numpy(self._standardise(numbers))
        return torch.from_numpy(self.transform(rows_to_columns(inputs, self.column_names)))

    def _numeric_rows(self, inputs: Sequence[Any]) -> npt.NDArray[np.float64] | None:
        """All-numeric models' fast path (online predictions): rows straight to a float64
        matrix, None (missing) as NaN; None when a row lacks a column or holds something
        that is not a number, so the column path can name the culprit."""
        names = self._numeric_names
        try:
            values = [[row[name] for name in names] for row in inputs]
            return np.array(values, dtype=np.float64).reshape(len(inputs), len(names))
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

    def _standardise(self, values: npt.NDArray[np.float64]) -> FloatMatrix:
        """Impute the median and standardise numeric columns, as float32."""
        values = np.where(np.isfinite(values), values, self._medians)
        return ((values - self._means) / self._stds).astype(np.float32)

    def encode_table(self, table: pa.Table) -> Tensor:
        """A table's rows to the float32 feature matrix (extra columns are ignored)."""
        return torch.from_numpy(self.transform(table))

    @property
    def column_names(self) -> list[str]:
        """Input columns the model needs, in training-table order."""
        return [column.name for column in self._state.columns]

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """``[{"name", "dtype"}]`` of the input columns; dtype is integer/number/boolean/string."""
        return [
            {"name": c.name, "dtype": c.dtype if isinstance(c, NumericColumn) else "string"}
            for c in self._state.columns
        ]

    @property
    def dropped_columns(self) -> list[dict[str, str]]:
        """Training columns left out of the features, with the reason."""
        return [d.model_dump() for d in self._state.dropped]

    @property
    def feature_names(self) -> list[str]:
        """Name of each output feature: numeric columns, then ``column=category`` blocks."""
        names = [c.name for c in self._numeric]
        for categorical in self._categorical:
            names.extend(f"{categorical.name}={value}" for value in categorical.categories)
            names.append(f"{categorical.name}=<other>")
        names.extend(f"{embedded.name}#index" for embedded in self._embedded)
        return names

    def transform(self, data: Columns, *, rows: npt.NDArray[np.int64] | None = None) -> FloatMatrix:
        """Impute, scale and one-hot ``data`` into an ``(n_rows, n_features)`` float32 matrix.

        ``rows`` picks (and orders) the rows of a table to encode. Tables are encoded
        column by column straight into the output, so memory stays near its size.
        """
        n_rows = row_count(data, self.column_names) if rows is None else len(rows)
        out = np.zeros((n_rows, self._n_features), dtype=np.float32)
        if isinstance(data, pa.Table):
            for j, column in enumerate(self._numeric):
                values = numeric_values(data, column.name)
                if rows is not None:
                    values = values[rows]
                values = np.where(np.isfinite(values), values, column.median)
                out[:, j] = (values - column.mean) / column.std
        elif self._numeric:
            out[:, : len(self._numeric)] = self._standardise(self._numeric_matrix(data, n_rows))
        offset = len(self._numeric)
        positions = np.arange(n_rows)
        row_index = None if rows is None else pa.array(rows)
        for categorical, category_set in zip(self._categorical, self._category_sets, strict=True):
            strings = string_values(data, categorical.name)
            if row_index is not None:
                strings = strings.take(row_index)
            if strings.null_count:
                strings = pc.fill_null(strings, MISSING_CATEGORY)
            codes = pc.index_in(strings, value_set=category_set)
            other = len(categorical.categories)
            if codes.null_count:
                codes = pc.fill_null(codes, other)
            out[positions, offset + codes.to_numpy(zero_copy_only=False).astype(np.intp)] = 1.0
            offset += other + 1
        for embedded, category_set in zip(self._embedded, self._embedded_sets, strict=True):
            strings = string_values(data, embedded.name)
            if row_index is not None:
                strings = strings.take(row_index)
            strings = pc.fill_null(strings, MISSING_CATEGORY)
            codes = pc.fill_null(pc.index_in(strings, value_set=category_set), -1)
            out[:, offset] = codes.to_numpy(zero_copy_only=False).astype(np.float32) + 1.0
            offset += 1
        return out

    def _numeric_matrix(self, data: Columns, n_rows: int) -> npt.NDArray[np.float64]:
        """Raw numeric inputs as ``(n_rows, n_numeric)`` float64, NaN where missing."""
        shape = (n_rows, len(self._numeric))
        if isinstance(data, pa.Table):
            values = np.empty(shape, dtype=np.float64)
            for j, column in enumerate(self._numeric):
                values[:, j] = numeric_values(data, column.name)
            return values
        try:
            # One conversion for all columns; numpy turns None into NaN (imputed later).
            stacked = np.asarray([data[c.name] for c in self._numeric], dtype=np.float64).T
        except (TypeError, ValueError, OverflowError):
            stacked = None
        if stacked is not None and stacked.shape == shape:
            return stacked
        # Something is not a number: convert column by column to name the culprit.
        return np.stack([numeric_values(data, c.name) for c in self._numeric], axis=1)


def column_kind(data_type: pa.DataType) -> NumericDType | Literal["string"] | None:
    """How a column of this Arrow type is used as a feature; None if it is not supported."""
    if pa.types.is_dictionary(data_type):
        return column_kind(data_type.value_type)
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "number"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    return None


def _fit_column(
    name: str, column: pa.ChunkedArray
) -> NumericColumn | CategoricalColumn | EmbeddedColumn | DroppedColumn:
    kind = column_kind(column.type)
    if pa.types.is_null(column.type) or column.null_count == len(column):
        return DroppedColumn(name=name, reason="all values are missing")
    if kind is None:
        return DroppedColumn(name=name, reason=f"unsupported column type {column.type}")
    if kind == "string":
        return _fit_categorical(name, decode_dictionary(column).cast(pa.string()))
    values = pc.cast(decode_dictionary(column), pa.float64()).to_numpy()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return DroppedColumn(name=name, reason="all values are missing")
    std = float(finite.std())
    return NumericColumn(
        name=name,
        dtype=kind,
        median=float(np.median(finite)),
        mean=float(finite.mean()),
        std=std if std > 0 and math.isfinite(std) else 1.0,
    )


def _fit_categorical(
    name: str, column: pa.ChunkedArray
) -> CategoricalColumn | EmbeddedColumn | DroppedColumn:
    present = len(column) - column.null_count
    distinct = pc.count_distinct(column, mode="only_valid").as_py()
    if present > 1 and distinct == present:
        return DroppedColumn(name=name, reason="every value is unique (an identifier?)")
    counts = pc.value_counts(pc.fill_null(column, MISSING_CATEGORY))
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    # Ties broken by value so that the same data always gives the same layout.
    ranked = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
    if len(ranked) <= MAX_CATEGORIES:
        return CategoricalColumn(name=name, categories=[value for value, _ in ranked])
    # Many categories: one-hot would be wide and sparse; learn an embedding of the
    # values seen often enough to learn anything about (the rest share "other").
    frequent = [value for value, count in ranked if count >= MIN_EMBEDDED_COUNT]
    kept = frequent[:MAX_EMBEDDED_CATEGORIES] or [value for value, _ in ranked[:1]]
    return EmbeddedColumn(name=name, categories=kept)

"""Column values of tabular inputs: prediction rows to columns, and typed column access.

Shared by the tabular preprocessor (fit and transform) and the target encoders; each
helper names the row and column of a value it cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from dlp.errors import ValidationError

Columns: TypeAlias = pa.Table | Mapping[str, Sequence[Any]]


def rows_to_columns(rows: Sequence[Any], names: Sequence[str]) -> dict[str, list[Any]]:
    """Turn row objects into columns; a row without a needed column is a ValidationError.

    Rows are numbered from 0, as indexes into ``rows``. Extra keys are ignored.
    """
    needed = frozenset(names)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValidationError(f"row {index} is not an object of column values")
        if not row.keys() >= needed:
            missing = next(name for name in names if name not in row)
            raise ValidationError(f"row {index} is missing column {missing!r}")
    return {name: [row[name] for row in rows] for name in names}


def decode_dictionary(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Plain values of a dictionary-encoded (pandas categorical) column; others unchanged."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def row_count(data: Columns, names: Sequence[str]) -> int:
    if isinstance(data, pa.Table):
        absent = [name for name in names if name not in data.column_names]
        if absent:
            raise ValidationError(f"the data is missing column {absent[0]!r}")
        return int(data.num_rows)
    lengths: set[int] = set()
    for name in names:
        if name not in data:
            raise ValidationError(f"the data is missing column {name!r}")
        lengths.add(len(data[name]))
    if len(lengths) > 1:
        raise ValidationError("columns have different lengths")
    return lengths.pop() if lengths else 0


def numeric_values(data: Columns, name: str) -> npt.NDArray[np.float64]:
    if isinstance(data, pa.Table):
        table_values: npt.NDArray[np.float64] = pc.cast(
            decode_dictionary(data.column(name)), pa.float64()
        ).to_numpy()
        return table_values
    values = data[name]
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        array = None
    if array is None or array.ndim != 1:
        raise _first_non_numeric(values, name)
    return array


def _first_non_numeric(values: Sequence[Any], name: str) -> ValidationError:
    for index, value in enumerate(values):
        try:
            if np.asarray(value, dtype=np.float64).ndim == 0:
                continue
        except (TypeError, ValueError, OverflowError):
            pass
        return ValidationError(
            f"row {index}, column {name!r}: expected a number, got {_preview(value)}"
        )
    return ValidationError(f"column {name!r}: expected numbers")


def string_values(data: Columns, name: str) -> pa.Array | pa.ChunkedArray:
    if isinstance(data, pa.Table):
        return decode_dictionary(data.column(name)).cast(pa.string())
    return _string_array(data[name], name)


def _string_array(values: Sequence[Any], name: str) -> pa.Array:
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    # Slow path, only for inputs that mix in non-strings: numbers are matched by their text.
    texts: list[str | None] = []
    for index, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            texts.append(None)
        elif isinstance(value, str | int | float | bool):
            texts.append(str(value))
        else:
            raise ValidationError(
                f"row {index}, column {name!r}: expected a string, got {_preview(value)}"
            )
    return pa.array(texts, type=pa.string())


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

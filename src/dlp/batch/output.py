"""Prediction output files, written chunk by chunk straight into the file store.

The output of a chunk is ``row`` (the input row's 0-based position), optionally the
input's own columns, ``prediction``, and one ``probability_<class>`` column per class
for classifiers. CSV text cells that a spreadsheet would run as a formula are
prefixed with ``'`` (OWASP's CSV-injection advice); Parquet keeps values as they are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dlp.storage.base import FileWriter

FORMULA_START = r"^[=+\-@\t\r]"


def prediction_table(
    first_row: int,
    inputs: pa.Table | None,
    predictions: pa.Array,
    probabilities: npt.NDArray[np.float32] | None,
    classes: Sequence[Any] | None,
) -> pa.Table:
    """One chunk's output columns (names made unique against included input columns)."""
    n_rows = len(predictions)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}

    def add(name: str, values: pa.Array | pa.ChunkedArray) -> None:
        while name in columns:
            name = f"{name}_"
        columns[name] = values

    add("row", pa.array(np.arange(first_row, first_row + n_rows, dtype=np.int64)))
    if inputs is not None:
        for name in inputs.column_names:
            add(name, inputs.column(name))
    add("prediction", predictions)
    if probabilities is not None and classes is not None:
        for index, label in enumerate(classes):
            add(f"probability_{label}", pa.array(probabilities[:, index]))
    return pa.table(columns)


class _Sink(io.RawIOBase):
    """A write-only file object over a store writer, counting the bytes it passes on."""

    def __init__(self, writer: FileWriter) -> None:
        super().__init__()
        self._writer = writer
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._writer.write(chunk)
        self.size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.size


class OutputWriter:
    """Appends prediction tables to one CSV or Parquet file in the store.

    The file appears under its key only on ``commit``; leaving the ``with`` block
    on an error throws the written bytes away.
    """

    def __init__(self, writer: FileWriter, file_format: str) -> None:
        self._writer = writer
        self._format = file_format
        self._sink = _Sink(writer)
        self._file = pa.PythonFile(self._sink, mode="w")
        self._table_writer: pa_csv.CSVWriter | pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    @property
    def size_bytes(self) -> int:
        """Bytes written so far."""
        return self._sink.size

    def write(self, table: pa.Table) -> None:
        """Append one chunk's predictions (the first chunk fixes the columns' types)."""
        if self._format == "csv":
            table = _defuse_formulas(table)
        if self._schema is None:
            self._schema = table.schema
            self._table_writer = (
                pa_csv.CSVWriter(self._file, table.schema)
                if self._format == "csv"
                else pq.ParquetWriter(self._file, table.schema, compression="zstd")
            )
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        assert self._table_writer is not None
        self._table_writer.write_table(table)
        self.rows += table.num_rows

    def commit(self) -> None:
        """Finish the file (its header or footer) and make it visible under its key."""
        if self._table_writer is not None:
            self._table_writer.close()
        self._file.close()
        self._writer.commit()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._writer.abort()


def _defuse_formulas(table: pa.Table) -> pa.Table:
    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = table.column(index)
            risky = pc.match_substring_regex(column, FORMULA_START)
            quoted = pc.binary_join_element_wise("'", column, "")
            table = table.set_column(index, field, pc.if_else(risky, quoted, column))
    return table

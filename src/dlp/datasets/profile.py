"""Read and profile tabular files with pyarrow, in bounded memory.

Profiling streams the file batch by batch: row and missing counts are exact;
distinct counts are exact up to ``EXACT_UNIQUE_LIMIT`` values per column and a
HyperLogLog estimate beyond (flagged ``n_unique_exact: false``, typically within 1%).
Each column also gets a ``histogram`` (see ``dlp.datasets.histogram``), or None when
it has no value to draw.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dlp.datasets.histogram import HistogramBuilder, histogram_builder
from dlp.errors import ValidationError

EXACT_UNIQUE_LIMIT = 10_000
CSV_BLOCK_SIZE = 1 << 20
SNIFF_BYTES = 64 * 1024
_HLL_BITS = 14
_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")
_WIDER_TYPE = {pa.bool_(): pa.int64(), pa.int64(): pa.float64(), pa.float64(): pa.string()}


@dataclass
class ColumnProfile:
    """Running statistics of one column, in memory bounded per column.

    Distinct values are counted exactly (sorted 64-bit hashes in a numpy array)
    up to ``EXACT_UNIQUE_LIMIT``, then by HyperLogLog registers (16 KiB).
    """

    name: str
    dtype: str
    n_missing: int = 0
    _exact: np.ndarray | None = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    _registers: np.ndarray | None = None
    _histogram: HistogramBuilder | None = None

    def __post_init__(self) -> None:
        self._histogram = histogram_builder(self.dtype)

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Fold one batch of values into the statistics."""
        self.n_missing += array.null_count
        if self._histogram is not None:
            self._histogram.update(array)
        hashes = _hash_values(pc.unique(array.drop_null()))
        if self._exact is not None:
            self._exact = np.union1d(self._exact, hashes)
            if self._exact.size <= EXACT_UNIQUE_LIMIT:
                return
            self._registers = np.zeros(1 << _HLL_BITS, dtype=np.uint8)
            _hll_add(self._registers, self._exact)
            self._exact = None
        assert self._registers is not None
        _hll_add(self._registers, hashes)

    def as_dict(self) -> dict[str, Any]:
        """The contract's column entry."""
        exact = self._exact is not None
        if self._exact is not None:
            n_unique = int(self._exact.size)
        else:
            assert self._registers is not None
            n_unique = _hll_estimate(self._registers)
        return {
            "name": self.name,
            "dtype": self.dtype,
            "n_missing": self.n_missing,
            "n_unique": n_unique,
            "n_unique_exact": exact,
            "histogram": None if self._histogram is None else self._histogram.result(),
        }


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spread bits so HyperLogLog sees uniform hashes."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64, copy=True)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def _hash_values(values: pa.Array) -> np.ndarray:
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        raw = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return _mix64(raw.view(np.uint64))
    if pa.types.is_boolean(values.type):
        return _mix64(values.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64))
    python_hashes = np.fromiter(
        (hash(v) for v in values.to_pylist()), dtype=np.int64, count=len(values)
    )
    return _mix64(python_hashes.view(np.uint64))


def _hll_add(registers: np.ndarray, hashes: np.ndarray) -> None:
    index = (hashes >> np.uint64(64 - _HLL_BITS)).astype(np.int64)
    rest = (hashes << np.uint64(_HLL_BITS)) | np.uint64(1 << (_HLL_BITS - 1))
    # Rank = leading zeros of the remaining bits + 1.
    rank = (64 - np.floor(np.log2(rest.astype(np.float64))).astype(np.int64)).astype(np.uint8)
    np.maximum.at(registers, index, rank)


def _hll_estimate(registers: np.ndarray) -> int:
    m = float(registers.size)
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / float(np.sum(np.power(2.0, -registers.astype(np.float64))))
    zeros = int(np.count_nonzero(registers == 0))
    if raw <= 2.5 * m and zeros:
        return round(m * math.log(m / zeros))
    return round(raw)


def dtype_name(data_type: pa.DataType) -> str:
    """A short, stable name for an Arrow type (as stored in the profile)."""
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "int64"
    if pa.types.is_floating(data_type):
        return "float64"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return "datetime"
    return str(data_type)


_ARROW_TYPES = {
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "string": pa.string(),
}


@dataclass
class TableProfile:
    """What the dataset endpoints show about a tabular file."""

    n_rows: int
    columns: list[dict[str, Any]]

    def as_schema(self) -> dict[str, Any]:
        """The contract's ``schema`` object."""
        return {"columns": self.columns}


def check_text_file(head: bytes) -> None:
    """Refuse bytes that are not text before handing them to the CSV parser."""
    if not head:
        raise ValidationError("the file is empty")
    if b"\x00" in head:
        raise ValidationError("the file is not a text CSV file (it contains NUL bytes)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character may be cut at the end of the sniffed block.
        if exc.start < len(head) - 4:
            raise ValidationError("the file is not UTF-8 text, so not a CSV dataset") from exc


@contextmanager
def _csv_reader(
    open_file: Callable[[], BinaryIO], column_types: dict[str, pa.DataType]
) -> Iterator[pa_csv.CSVStreamingReader]:
    with open_file() as handle:
        yield pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_SIZE),
            convert_options=pa_csv.ConvertOptions(column_types=column_types),
        )


def profile_csv(open_file: Callable[[], BinaryIO]) -> TableProfile:
    """Profile a CSV file, widening a column's type when a later block needs it."""
    with open_file() as handle:
        check_text_file(handle.read(SNIFF_BYTES))
    column_types: dict[str, pa.DataType] = {}
    for _attempt in range(1000):
        try:
            with _csv_reader(open_file, column_types) as reader:
                return _profile_batches(reader.schema, reader)
        except pa.ArrowInvalid as exc:
            widened = _widen(exc, column_types, open_file)
            if not widened:
                raise ValidationError(f"not a valid CSV file: {_short(exc)}") from exc
    raise ValidationError("not a valid CSV file: column types do not settle")


def _widen(
    exc: pa.ArrowInvalid,
    column_types: dict[str, pa.DataType],
    open_file: Callable[[], BinaryIO],
) -> bool:
    match = _CSV_COLUMN.search(str(exc))
    if match is None or "conversion error" not in str(exc):
        return False
    with open_file() as handle:
        header = pa_csv.open_csv(
            handle, read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_SIZE)
        ).schema
    name = header.names[int(match.group(1))]
    current = column_types.get(name, header.field(name).type)
    wider = _WIDER_TYPE.get(current, pa.string())
    if wider == current:
        return False
    column_types[name] = wider
    return True


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc).strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def profile_parquet(open_file: Callable[[], BinaryIO]) -> TableProfile:
    """Profile a Parquet file batch by batch."""
    with open_file() as handle:
        try:
            parquet = pq.ParquetFile(handle)
            return _profile_batches(
                parquet.schema_arrow, iter(parquet.iter_batches(batch_size=65_536))
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"not a valid Parquet file: {_short(exc)}") from exc


def _profile_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> TableProfile:
    columns = [ColumnProfile(name=f.name, dtype=dtype_name(f.type)) for f in schema]
    if not columns:
        raise ValidationError("the file has no columns")
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or any(not n.strip() for n in names):
        raise ValidationError("every column needs a distinct, non-empty name in the header row")
    n_rows = 0
    for batch in batches:
        n_rows += batch.num_rows
        for column, array in zip(columns, batch.columns, strict=True):
            column.update(array)
    if n_rows == 0:
        raise ValidationError("the file has a header but no data rows")
    return TableProfile(n_rows=n_rows, columns=[c.as_dict() for c in columns])


def read_table(
    handle: BinaryIO,
    *,
    file_format: str,
    columns: list[dict[str, Any]],
    float_type: pa.DataType = pa.float64(),
) -> pa.Table:
    """Load a whole tabular dataset with the column types its profile settled on.

    ``float_type=pa.float32()`` halves decimal columns in memory (training computes
    in float32 anyway).
    """
    if file_format == "parquet":
        return pq.read_table(handle)
    types = {**_ARROW_TYPES, "float64": float_type}
    column_types = {c["name"]: types[c["dtype"]] for c in columns if c["dtype"] in types}
    return pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(column_types=column_types))


def iter_tables(
    handle: BinaryIO,
    *,
    file_format: str,
    columns: list[dict[str, Any]],
    rows: int,
) -> Iterator[pa.Table]:
    """A tabular dataset as consecutive tables of at most ``rows`` rows, read as a stream
    (memory bounded by ``rows``, not by the file), typed as its profile settled."""
    if file_format == "parquet":
        batches: Iterable[pa.RecordBatch] = pq.ParquetFile(handle).iter_batches(batch_size=rows)
    else:
        column_types = {
            c["name"]: _ARROW_TYPES[c["dtype"]] for c in columns if c["dtype"] in _ARROW_TYPES
        }
        batches = pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_SIZE),
            convert_options=pa_csv.ConvertOptions(column_types=column_types),
        )
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending)

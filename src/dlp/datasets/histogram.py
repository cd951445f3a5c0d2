"""Per-column histograms built while a tabular file streams past, in bounded memory.

Numeric columns (``int64``, ``float64``, ``bool``) keep their exact minimum and
maximum and a uniform reservoir sample of ``RESERVOIR_SIZE`` values (seeded, so a
file always gets the same profile). The histogram is ``NUMERIC_BINS`` equal-width
bins from the minimum to the maximum, counted over the sample and scaled to the
column's count of finite values (``sampled: true``); while every value fits the
reservoir the counts are exact (``sampled: false``). NaN and infinite values are
left out.

String columns count every value exactly while at most ``CATEGORY_LIMIT`` distinct
values, holding at most ``CATEGORY_CHARS`` characters together (long texts), have
been seen. Past that, the values already tracked keep exact counts and
values first seen later go to ``other`` only, so a frequent value that first appears
late could be missing from the top list: the histogram then says ``exact: false``.
``other`` is always the exact number of present values outside the listed ones.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

RESERVOIR_SIZE = 10_000
NUMERIC_BINS = 20
CATEGORY_LIMIT = 1_000
CATEGORY_CHARS = 1 << 20
TOP_CATEGORIES = 10
_SEED = 20_261_127


class HistogramBuilder(Protocol):
    """Folds batches of one column's values into a histogram."""

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Fold one batch of values in."""

    def result(self) -> dict[str, Any] | None:
        """The histogram, or None when the column holds no usable value."""


class NumericHistogramBuilder:
    """Exact range and a seeded uniform reservoir sample (Algorithm R, vectorised)."""

    def __init__(self) -> None:
        self._reservoir = np.empty(RESERVOIR_SIZE, dtype=np.float64)
        self._rng = np.random.default_rng(_SEED)
        self._seen = 0
        self._low = np.inf
        self._high = -np.inf

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Fold one batch of values in."""
        values = array.drop_null().cast(pa.float64()).to_numpy(zero_copy_only=False)
        values = values[np.isfinite(values)]
        if not values.size:
            return
        self._low = min(self._low, float(values.min()))
        self._high = max(self._high, float(values.max()))
        room = max(0, RESERVOIR_SIZE - self._seen)
        fill = values[:room]
        self._reservoir[self._seen : self._seen + fill.size] = fill
        rest = values[fill.size :]
        first = self._seen + fill.size
        self._seen += values.size
        if not rest.size:
            return
        # Item number t (1-based) replaces slot j ~ U[0, t) when j < RESERVOIR_SIZE;
        # numpy keeps the last of repeated slots, as the sequential algorithm does.
        numbers = np.arange(first + 1, first + rest.size + 1, dtype=np.float64)
        slots = np.floor(self._rng.random(rest.size) * numbers).astype(np.int64)
        kept = slots < RESERVOIR_SIZE
        self._reservoir[slots[kept]] = rest[kept]

    def result(self) -> dict[str, Any] | None:
        """Equal-width bins over the exact range, counts scaled to the finite values."""
        if not self._seen:
            return None
        low, high = self._low, self._high
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, NUMERIC_BINS + 1)
        sample = self._reservoir[: min(self._seen, RESERVOIR_SIZE)]
        counts, _ = np.histogram(np.clip(sample, low, high), bins=edges)
        sampled = self._seen > RESERVOIR_SIZE
        if sampled:
            counts = _apportion(counts, self._seen)
        return {
            "kind": "numeric",
            "edges": [float(edge) for edge in edges],
            "counts": [int(count) for count in counts],
            "sampled": sampled,
        }


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Scale counts to sum to ``total`` exactly (largest remainders get the leftover)."""
    scaled = counts * (total / counts.sum())
    whole: np.ndarray = np.floor(scaled).astype(np.int64)
    leftover = total - int(whole.sum())
    order = np.argsort(-(scaled - whole), kind="stable")
    whole[order[:leftover]] += 1
    return whole


class CategoricalHistogramBuilder:
    """Exact counts of the first distinct values that fit the bounds, the rest as ``other``."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._chars = 0
        self._present = 0
        self._full = False

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Fold one batch of values in."""
        present = array.drop_null()
        self._present += len(present)
        if not len(present):
            return
        tracked = pa.array(list(self._counts), present.type)
        if self._full:
            # Only tracked values can still be counted: skip tallying the others at all.
            present = present.filter(pc.is_in(present, value_set=tracked))
        tallies = pc.value_counts(present)
        values, counts = tallies.field("values"), tallies.field("counts")
        known = pc.is_in(values, value_set=tracked)
        for value, count in zip(
            values.filter(known).to_pylist(), counts.filter(known).to_pylist(), strict=True
        ):
            self._counts[value] += count
        new = pc.invert(known)
        new_values, new_counts = values.filter(new), counts.filter(new)
        room = CATEGORY_LIMIT - len(self._counts)
        added = 0
        for value, count in zip(
            new_values[:room].to_pylist(), new_counts[:room].to_pylist(), strict=True
        ):
            if self._chars + len(value) > CATEGORY_CHARS:
                break
            self._counts[value] = count
            self._chars += len(value)
            added += 1
        if added < len(new_values):
            self._full = True

    def result(self) -> dict[str, Any] | None:
        """The most frequent values (ties by value), and the count of all others."""
        if not self._present:
            return None
        top = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
        listed = sum(count for _, count in top)
        return {
            "kind": "categorical",
            "values": [value for value, _ in top],
            "counts": [count for _, count in top],
            "other": self._present - listed,
            "exact": not self._full,
        }


def histogram_builder(dtype: str) -> HistogramBuilder | None:
    """The builder for a profile dtype, or None for types without a histogram (datetimes)."""
    if dtype in ("int64", "float64", "bool"):
        return NumericHistogramBuilder()
    if dtype == "string":
        return CategoricalHistogramBuilder()
    return None

"""Streaming profiles: exact counts while small, HyperLogLog estimates when large; histograms."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlp.datasets.histogram import CATEGORY_LIMIT, NUMERIC_BINS, RESERVOIR_SIZE, TOP_CATEGORIES
from dlp.datasets.profile import EXACT_UNIQUE_LIMIT, TableProfile, profile_csv, profile_parquet
from dlp.errors import ValidationError


def _profile(text: str):
    data = text.encode()
    return profile_csv(lambda: io.BytesIO(data))


def _csv(n: int, value) -> str:
    return "a,b\n" + "".join(f"{value(i)},{i % 7}\n" for i in range(n))


def test_exact_counts_up_to_the_limit() -> None:
    profile = _profile(_csv(EXACT_UNIQUE_LIMIT, lambda i: f"id{i}"))
    column = profile.columns[0]
    assert column["n_unique"] == EXACT_UNIQUE_LIMIT and column["n_unique_exact"] is True
    assert profile.columns[1]["n_unique"] == 7


@pytest.mark.parametrize("value", [lambda i: i * 3, lambda i: i / 7, lambda i: f"s{i}"])
def test_large_cardinality_is_estimated_within_three_percent(value) -> None:
    n = 200_000
    profile = _profile(_csv(n, value))
    column = profile.columns[0]
    assert column["n_unique_exact"] is False
    assert abs(column["n_unique"] - n) / n < 0.03, column
    assert profile.n_rows == n


def test_missing_values_are_counted_and_not_distinct() -> None:
    column = _profile("a,b\n1,x\n,y\n1,\n").columns[0]
    histogram = column.pop("histogram")
    assert column == {
        "name": "a",
        "dtype": "int64",
        "n_missing": 1,
        "n_unique": 1,
        "n_unique_exact": True,
    }
    assert histogram["edges"] == pytest.approx([0.5 + i / NUMERIC_BINS for i in range(21)])
    assert histogram["counts"] == [0] * 10 + [2] + [0] * 9


def test_a_string_in_a_numeric_column_far_down_widens_it() -> None:
    rows = "".join(f"{i},1\n" for i in range(300_000))
    profile = _profile("a,b\n" + rows + "n/a-ish,2\n")
    assert profile.columns[0]["dtype"] == "string"


def test_only_a_header_is_refused() -> None:
    with pytest.raises(ValidationError, match="no data rows"):
        _profile("a,b\n")


def _parquet(table: pa.Table) -> TableProfile:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=50_000)
    data = buffer.getvalue()
    return profile_parquet(lambda: io.BytesIO(data))


def test_a_numeric_column_that_fits_the_reservoir_gets_exact_bins() -> None:
    histogram = _profile("x,y\n" + "".join(f"{i},{i / 2}\n" for i in range(40)) + ",1\n").columns[
        0
    ]["histogram"]
    assert histogram["kind"] == "numeric" and histogram["sampled"] is False
    assert len(histogram["edges"]) == NUMERIC_BINS + 1 and len(histogram["counts"]) == NUMERIC_BINS
    assert histogram["edges"][0] == 0.0 and histogram["edges"][-1] == 39.0
    assert histogram["counts"] == [2] * NUMERIC_BINS


def test_a_constant_column_gets_one_full_bin() -> None:
    histogram = _profile("x,y\n" + "7,1\n" * 5).columns[0]["histogram"]
    assert histogram["edges"][0] == 6.5 and histogram["edges"][-1] == 7.5
    assert sum(histogram["counts"]) == 5 and max(histogram["counts"]) == 5


def test_a_column_larger_than_the_reservoir_is_sampled_over_its_exact_range() -> None:
    n = 20 * RESERVOIR_SIZE
    values = np.random.default_rng(1).uniform(-3.0, 5.0, n)
    values[n // 2] = -10.0  # one extreme far out, almost surely outside the sample
    profile = _parquet(pa.table({"x": values}))
    histogram = profile.columns[0]["histogram"]
    assert histogram["sampled"] is True
    assert histogram["edges"][0] == -10.0 and histogram["edges"][-1] == values.max()
    assert sum(histogram["counts"]) == n
    exact, _ = np.histogram(values, bins=histogram["edges"])
    assert np.abs(np.array(histogram["counts"]) - exact).max() < 0.05 * n / 10
    assert _parquet(pa.table({"x": values})).columns[0]["histogram"] == histogram


def test_a_string_column_gets_its_top_values_and_the_rest_as_other() -> None:
    rows = [f"c{i % 12}" for i in range(120)] + ["c0"] * 5
    profile = _profile("x,y\n" + "".join(f"{value},1\n" for value in rows))
    histogram = profile.columns[0]["histogram"]
    assert histogram["kind"] == "categorical" and histogram["exact"] is True
    assert histogram["values"][0] == "c0" and histogram["counts"][0] == 15
    assert histogram["values"][1:] == [f"c{i}" for i in (1, 10, 11, 2, 3, 4, 5, 6, 7)]
    assert histogram["counts"][1:] == [10] * (TOP_CATEGORIES - 1)
    assert histogram["other"] == 20


def test_past_the_category_bound_tracked_values_stay_exact_and_it_says_so() -> None:
    early = [f"v{i % CATEGORY_LIMIT}" for i in range(70 * CATEGORY_LIMIT)]  # past one batch
    late = [f"late{i}" for i in range(500)] + ["v3"] * 50
    column = pa.array(early + late + ["late0"] * 100)
    histogram = _parquet(pa.table({"x": column})).columns[0]["histogram"]
    assert histogram["exact"] is False
    assert histogram["values"][0] == "v3" and histogram["counts"][0] == 120
    assert "late0" not in histogram["values"]
    assert sum(histogram["counts"]) + histogram["other"] == len(column)


def test_parquet_columns_of_every_kind_and_all_missing_ones() -> None:
    table = pa.table(
        {
            "flag": pa.array([True, False, True, None]),
            "ratio": pa.array([0.5, float("nan"), 1.5, None]),
            "word": pa.array(["a", "b", None, "a"]),
            "empty": pa.array([None, None, None, None], pa.float64()),
        }
    )
    columns = {c["name"]: c for c in _parquet(table).columns}
    assert columns["flag"]["histogram"]["counts"][0] == 1
    assert columns["flag"]["histogram"]["counts"][-1] == 2
    assert sum(columns["ratio"]["histogram"]["counts"]) == 2  # NaN is left out
    assert columns["word"]["histogram"]["values"] == ["a", "b"]
    assert columns["empty"]["histogram"] is None
    assert _profile("a,b\n,1\n,2\n").columns[0]["histogram"] is None


def test_long_texts_stop_the_tracking_at_a_bounded_size() -> None:
    long_texts = [f"{i:04d}" + "x" * 4_000 for i in range(300)] * 2 + ["short"] * 3
    histogram = _parquet(pa.table({"text": long_texts})).columns[0]["histogram"]
    assert histogram["exact"] is False
    assert len(histogram["values"]) == TOP_CATEGORIES and histogram["counts"][0] == 2
    assert histogram["other"] == len(long_texts) - sum(histogram["counts"])

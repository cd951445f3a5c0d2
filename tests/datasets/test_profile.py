"""Streaming profiles: exact counts while small, HyperLogLog estimates when large."""

from __future__ import annotations

import io

import pytest

from dlp.datasets.profile import EXACT_UNIQUE_LIMIT, profile_csv
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
    profile = _profile("a,b\n1,x\n,y\n1,\n")
    assert profile.columns[0] == {
        "name": "a",
        "dtype": "int64",
        "n_missing": 1,
        "n_unique": 1,
        "n_unique_exact": True,
    }


def test_a_string_in_a_numeric_column_far_down_widens_it() -> None:
    rows = "".join(f"{i},1\n" for i in range(300_000))
    profile = _profile("a,b\n" + rows + "n/a-ish,2\n")
    assert profile.columns[0]["dtype"] == "string"


def test_only_a_header_is_refused() -> None:
    with pytest.raises(ValidationError, match="no data rows"):
        _profile("a,b\n")

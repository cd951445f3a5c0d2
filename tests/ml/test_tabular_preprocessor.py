"""TabularPreprocessor: fitting, JSON state, and validation of prediction input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from dlp.errors import ValidationError
from dlp.ml.tabular import MAX_CATEGORIES, MISSING_CATEGORY, TabularPreprocessor
from dlp.ml.tabular_values import rows_to_columns


def test_numeric_columns_are_median_imputed_and_standardised() -> None:
    table = pa.table({"a": [1.0, 2.0, 3.0, None, 10.0], "b": [5, 5, 5, 5, 5]})
    prep = TabularPreprocessor.fit(table)
    observed = np.array([1.0, 2.0, 3.0, 10.0])
    out = prep.transform(table)
    assert out.dtype == np.float32
    assert out.shape == (5, 2)
    expected_a = (np.array([1, 2, 3, np.median(observed), 10]) - observed.mean()) / observed.std()
    np.testing.assert_allclose(out[:, 0], expected_a, rtol=1e-6)
    # A constant column gets std 1, not a division by zero.
    np.testing.assert_array_equal(out[:, 1], np.zeros(5, dtype=np.float32))
    assert prep.input_schema == [
        {"name": "a", "dtype": "number"},
        {"name": "b", "dtype": "integer"},
    ]


def test_categorical_columns_one_hot_with_missing_and_other() -> None:
    table = pa.table({"color": ["red", "red", "blue", None, "green", "red", "blue"]})
    prep = TabularPreprocessor.fit(table)
    # Most frequent first, ties broken by value: red(3), blue(2), __missing__(1), green(1).
    assert prep.feature_names == [
        "color=red",
        "color=blue",
        f"color={MISSING_CATEGORY}",
        "color=green",
        "color=<other>",
    ]
    out = prep.transform({"color": ["blue", None, "purple", float("nan")]})
    np.testing.assert_array_equal(
        out,
        np.array(
            [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0]],
            dtype=np.float32,
        ),
    )


def test_few_categories_are_one_hot_and_many_are_embedded() -> None:
    few = [f"v{i:02d}" for i in range(MAX_CATEGORIES) for _ in range(i + 1)]
    prep = TabularPreprocessor.fit(pa.table({"c": few}))
    assert prep.state.columns[0].kind == "categorical"
    assert prep.n_features == MAX_CATEGORIES + 1
    many = [f"v{i:02d}" for i in range(40) for _ in range(i + 1)]  # v39 is the most frequent
    prep = TabularPreprocessor.fit(pa.table({"c": many}))
    column = prep.state.columns[0]
    assert column.kind == "embedded"
    assert column.categories[0] == "v39"
    assert "v00" not in column.categories  # seen once: shares the "other" index 0
    assert prep.n_features == 1
    assert prep.input_spec.categorical_cardinalities == [len(column.categories) + 1]
    out = prep.transform({"c": ["v39", "v00", None, "never seen"]})
    assert out[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_ids_empty_columns_and_excluded_columns_are_dropped() -> None:
    table = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "nothing": pa.array([None] * 4, type=pa.string()),
            "nulls": pa.array([None] * 4),
            "when": pa.array([1, 2, 3, 4], type=pa.timestamp("s")),
            "x": [1.0, 2.0, 3.0, 4.0],
            "y": [0, 1, 0, 1],
        }
    )
    prep = TabularPreprocessor.fit(table, exclude={"y"})
    assert prep.column_names == ["x"]
    dropped = {d["name"]: d["reason"] for d in prep.dropped_columns}
    assert set(dropped) == {"id", "nothing", "nulls", "when"}
    assert "unique" in dropped["id"]
    assert "missing" in dropped["nothing"]
    assert "unsupported" in dropped["when"]


def test_no_usable_columns_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="no usable feature columns"):
        TabularPreprocessor.fit(pa.table({"id": ["a", "b"], "y": [1, 2]}), exclude={"y"})


def test_dictionary_and_bool_columns_are_supported() -> None:
    table = pa.table(
        {
            "kind": pa.array(["a", "b", "a", "b"]).dictionary_encode(),
            "flag": [True, False, None, True],
        }
    )
    prep = TabularPreprocessor.fit(table)
    assert prep.input_schema == [
        {"name": "kind", "dtype": "string"},
        {"name": "flag", "dtype": "boolean"},
    ]
    from_rows = prep.transform({"kind": ["a", "b", "a", "b"], "flag": [True, False, None, True]})
    np.testing.assert_array_equal(prep.transform(table), from_rows)


def test_state_round_trips_through_json() -> None:
    table = pa.table({"x": [1.5, None, 3.0, 8.0], "c": ["u", "v", None, "u"]})
    prep = TabularPreprocessor.fit(table)
    restored = TabularPreprocessor.from_state(json.loads(json.dumps(prep.state_dict())))
    np.testing.assert_array_equal(restored.transform(table), prep.transform(table))
    assert restored.input_schema == prep.input_schema


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": 2, "columns": []},
        {"version": 1, "columns": [{"kind": "numeric", "name": "x"}]},
        {
            "version": 1,
            "columns": [
                {
                    "kind": "numeric",
                    "name": "x",
                    "dtype": "number",
                    "median": 0,
                    "mean": 0,
                    "std": 0,
                }
            ],
        },
    ],
)
def test_corrupt_state_is_a_validation_error(state: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="invalid preprocessing state"):
        TabularPreprocessor.from_state(state)


def test_rows_to_columns_names_the_missing_column_and_ignores_extras() -> None:
    rows = [{"age": 1, "city": "x", "extra": 5}, {"age": 2, "city": "y"}, {"city": "z"}]
    with pytest.raises(ValidationError, match=r"row 2 is missing column 'age'"):
        rows_to_columns(rows, ["age", "city"])
    assert rows_to_columns(rows[:2], ["age"]) == {"age": [1, 2]}
    with pytest.raises(ValidationError, match="row 0 is not an object"):
        rows_to_columns([[1, 2]], ["age"])


def test_prediction_input_accepts_gaps_and_rejects_non_numbers() -> None:
    prep = TabularPreprocessor.fit(pa.table({"age": [20.0, 30.0, 40.0]}))
    out = prep.transform({"age": [None, float("nan"), 30, True]})
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.0, (1 - 30) / prep.state.columns[0].std])  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match=r"row 1, column 'age': expected a number, got 'abc'"):
        prep.transform({"age": [1.0, "abc"]})
    with pytest.raises(ValidationError, match=r"row 0, column 'age'"):
        prep.transform({"age": [[1.0], 2.0]})
    with pytest.raises(ValidationError, match=r"row 2, column 'age'"):
        prep.transform({"age": [1.0, 2.0, {"x": 1}]})


def test_non_string_values_in_a_string_column_match_by_text() -> None:
    prep = TabularPreprocessor.fit(pa.table({"code": ["1", "2", "2", "1", "3"]}))
    as_text = prep.transform({"code": ["1", "3", None]})
    np.testing.assert_array_equal(prep.transform({"code": [1, 3, None]}), as_text)
    with pytest.raises(ValidationError, match=r"row 1, column 'code': expected a string"):
        prep.transform({"code": ["1", ["a"]]})


def test_all_numeric_rows_encode_as_the_column_path_does() -> None:
    prep = TabularPreprocessor.fit(pa.table({"a": [1.0, 2.0, 9.0], "b": [5, 7, 3]}))
    rows = [{"a": None, "b": 2, "extra": "x"}, {"a": float("nan"), "b": True}, {"a": 4, "b": 1.5}]
    encoded = prep.encode_inputs(rows).numpy()
    np.testing.assert_array_equal(encoded, prep.transform(rows_to_columns(rows, ["a", "b"])))
    assert encoded.dtype == np.float32
    with pytest.raises(ValidationError, match=r"row 1 is missing column 'b'"):
        prep.encode_inputs([{"a": 1, "b": 2}, {"a": 3}])
    with pytest.raises(ValidationError, match=r"row 1, column 'a': expected a number, got 'abc'"):
        prep.encode_inputs([{"a": 1, "b": 2}, {"a": "abc", "b": 2}])

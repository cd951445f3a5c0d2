"""End to end: train_tabular on real and synthetic tables, then predict via load_predictor."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.numpy import load as load_safetensors

from dlp.errors import ValidationError
from dlp.ml.artifact import TrainedModel, load_predictor, train_tabular
from dlp.ml.config import AutoModelConfig, MLPConfig, TrainingConfig
from dlp.ml.split import split_train_validation

CLASSIFICATION_METRICS = {"train_loss", "val_loss", "val_accuracy", "val_f1", "val_auc"}
REGRESSION_METRICS = {"train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"}


@pytest.fixture(scope="module")
def cancer_model(breast_cancer) -> TrainedModel:
    return train_tabular(
        breast_cancer.train,
        target="target",
        task="classification",
        model=AutoModelConfig(),
        training=TrainingConfig(),
    )


@pytest.fixture(scope="module")
def diabetes_model(diabetes) -> TrainedModel:
    return train_tabular(
        diabetes.train,
        target="target",
        task="regression",
        model=AutoModelConfig(),
        training=TrainingConfig(epochs=60, learning_rate=3e-3),
    )


def test_breast_cancer_held_out_accuracy(breast_cancer, cancer_model: TrainedModel) -> None:
    predictor = load_predictor(cancer_model.files)
    result = predictor.predict(breast_cancer.test_rows)
    accuracy = float(np.mean(np.array(result.predictions) == breast_cancer.test_targets))
    print(f"breast cancer held-out accuracy: {accuracy:.4f}")
    assert accuracy >= 0.95
    assert predictor.task == "classification"
    assert predictor.classes == [0, 1]
    assert all(type(label) is int for label in result.predictions)
    assert result.probabilities is not None
    probabilities = np.array(result.probabilities)
    assert probabilities.shape == (len(breast_cancer.test_rows), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert list(np.argmax(probabilities, axis=1)) == result.predictions


def test_trained_model_describes_itself(breast_cancer, cancer_model: TrainedModel) -> None:
    assert set(cancer_model.files) == {"model.safetensors", "model.json"}
    assert set(cancer_model.metrics) == CLASSIFICATION_METRICS
    assert cancer_model.classes == [0, 1]
    assert cancer_model.model_type == "mlp"
    assert cancer_model.task == "classification"
    assert cancer_model.n_parameters == (30 * 64 + 64) + (64 * 2 + 2)
    features = [c for c in breast_cancer.train.column_names if c != "target"]
    assert cancer_model.input_schema == [{"name": c, "dtype": "number"} for c in features]
    assert 1 <= cancer_model.best_epoch <= cancer_model.epochs_run <= 100
    manifest = json.loads(cancer_model.files["model.json"])
    assert manifest["format_version"] == 1
    assert manifest["target"] == {"kind": "classification", "classes": [0, 1]}
    assert manifest["model"] == {"type": "mlp", "hidden_sizes": [64], "dropout": 0.2}
    weights = load_safetensors(cancer_model.files["model.safetensors"])
    assert sum(w.size for w in weights.values()) == cancer_model.n_parameters


def test_loaded_model_reproduces_the_kept_epochs_validation_metrics(
    breast_cancer, cancer_model: TrainedModel
) -> None:
    # Rebuild the validation split: the artifact must hold the best epoch's weights.
    table = breast_cancer.train
    labels = np.asarray(table.column("target").to_numpy(), dtype=np.int64)
    _, val_rows = split_train_validation(table.num_rows, fraction=0.2, seed=0, strata=labels)
    rows = table.take(pa.array(val_rows)).to_pylist()
    predicted = load_predictor(cancer_model.files).predict(rows).predictions
    accuracy = float(np.mean(np.array(predicted) == labels[val_rows]))
    assert accuracy == cancer_model.metrics["val_accuracy"]


def test_diabetes_held_out_r2(diabetes, diabetes_model: TrainedModel) -> None:
    predictor = load_predictor(diabetes_model.files)
    result = predictor.predict(diabetes.test_rows)
    assert result.probabilities is None
    assert predictor.classes is None
    assert predictor.task == "regression"
    predicted = np.array(result.predictions)
    y = diabetes.test_targets
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    print(f"diabetes held-out R2: {r2:.4f}")
    assert r2 >= 0.35
    assert set(diabetes_model.metrics) == REGRESSION_METRICS
    # RMSE is reported in the target's units (diabetes progression ~ 25..346), not standardised.
    assert 20 < diabetes_model.metrics["val_rmse"] < 100
    # val_loss is the MSE of the standardised target; val_rmse the same error in raw units.
    std = json.loads(diabetes_model.files["model.json"])["target"]["std"]
    assert diabetes_model.metrics["val_rmse"] == pytest.approx(
        np.sqrt(diabetes_model.metrics["val_loss"]) * std, rel=1e-4
    )


def test_same_seed_gives_identical_models_and_another_seed_does_not(diabetes) -> None:
    def run(seed: int, global_seed: int) -> TrainedModel:
        torch.manual_seed(global_seed)  # the caller's random state must not matter
        return train_tabular(
            diabetes.train,
            target="target",
            task="regression",
            model=MLPConfig(hidden_sizes=[32], dropout=0.2),
            training=TrainingConfig(epochs=6, seed=seed),
        )

    first, second, other = run(3, global_seed=1), run(3, global_seed=2), run(4, global_seed=1)
    assert first.metrics == second.metrics
    assert first.files == second.files
    assert first.metrics != other.metrics


def test_save_load_round_trip_gives_identical_predictions(
    tmp_path: pathlib.Path, breast_cancer, cancer_model: TrainedModel
) -> None:
    folder = tmp_path
    for name, content in cancer_model.files.items():
        (folder / name).write_bytes(content)
    reloaded = {p.name: p.read_bytes() for p in folder.iterdir()}
    rows = breast_cancer.test_rows[:40]
    first = load_predictor(cancer_model.files).predict(rows)
    second = load_predictor(reloaded).predict(rows)
    assert first == second
    # One row at a time gives the same answers as one batch.
    single = [load_predictor(reloaded).predict([row]).predictions[0] for row in rows[:5]]
    assert single == first.predictions[:5]


def test_categorical_and_missing_values(mixed_table: pa.Table) -> None:
    trained = train_tabular(
        mixed_table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[32]),
        training=TrainingConfig(epochs=60, learning_rate=1e-2),
    )
    assert trained.classes == ["no", "yes"]
    assert [c["name"] for c in trained.input_schema] == ["x", "color", "count", "flag"]
    assert {c["name"]: c["dtype"] for c in trained.input_schema}["color"] == "string"
    assert {d["name"] for d in trained.dropped_columns} == {"customer_id", "empty"}
    assert trained.metrics["val_accuracy"] >= 0.85

    predictor = load_predictor(trained.files)
    rows = [
        {"x": 0.0, "color": "red", "count": 1, "flag": True, "customer_id": "new"},
        {"x": 3.0, "color": "blue", "count": None, "flag": None},
        {"x": None, "color": None, "count": 2, "flag": False},
        {"x": -1.0, "color": "never-seen", "count": 0, "flag": False},
        {"x": -1.0, "color": "green", "count": 0, "flag": False},
    ]
    result = predictor.predict(rows)
    assert result.predictions[:2] == ["yes", "yes"]
    assert result.predictions[4] == "no"
    assert all(isinstance(label, str) for label in result.predictions)


def test_rows_without_a_target_are_dropped() -> None:
    n = 40
    x = np.arange(n, dtype=np.float64)
    labels: list[str | None] = ["low" if v < 20 else "high" for v in x]
    labels[::5] = [None] * 8
    table = pa.table({"x": x, "y": labels})
    trained = train_tabular(
        table,
        target="y",
        task="classification",
        model=AutoModelConfig(),
        training=TrainingConfig(epochs=2),
    )
    assert trained.classes == ["high", "low"]


def test_bool_target_round_trips_as_bool() -> None:
    x = np.linspace(-1, 1, 30)
    table = pa.table({"x": x, "y": (x > 0).tolist()})
    trained = train_tabular(
        table,
        target="y",
        task="classification",
        model=AutoModelConfig(),
        training=TrainingConfig(epochs=2),
    )
    assert trained.classes == [False, True]
    predictions = load_predictor(trained.files).predict([{"x": 0.5}]).predictions
    assert type(predictions[0]) is bool


def _train(table: pa.Table, target: str, task: str = "classification") -> TrainedModel:
    return train_tabular(
        table,
        target=target,
        task=task,  # type: ignore[arg-type]
        model=AutoModelConfig(),
        training=TrainingConfig(epochs=1),
    )


def test_unknown_target_is_a_validation_error(breast_cancer) -> None:
    with pytest.raises(ValidationError, match=r"target column 'diagnosis' is not in the dataset"):
        _train(breast_cancer.train, "diagnosis")


def test_one_class_target_is_a_validation_error() -> None:
    table = pa.table({"x": np.arange(20.0), "y": ["same"] * 20})
    with pytest.raises(ValidationError, match="at least 2 classes"):
        _train(table, "y")


def test_too_few_rows_is_a_validation_error() -> None:
    table = pa.table({"x": np.arange(12.0), "y": [0, 1, None, None, 0, 1, None, 0, 1, 0, 1, 0]})
    with pytest.raises(ValidationError, match="at least 10 rows"):
        _train(table, "y")


def test_regression_needs_a_numeric_target() -> None:
    table = pa.table({"x": np.arange(20.0), "y": [str(i) for i in range(20)]})
    with pytest.raises(ValidationError, match="regression needs a numeric target"):
        _train(table, "y", task="regression")


def test_unknown_task_is_a_validation_error(breast_cancer) -> None:
    with pytest.raises(ValidationError, match="unknown task"):
        _train(breast_cancer.train, "target", task="clustering")


def test_prediction_input_errors_name_row_and_column(cancer_model: TrainedModel) -> None:
    predictor = load_predictor(cancer_model.files)
    names = [c["name"] for c in predictor.input_schema]
    good = dict.fromkeys(names, 1.0)
    without_radius = {k: v for k, v in good.items() if k != "mean radius"}
    with pytest.raises(ValidationError, match=r"row 3 is missing column 'mean radius'"):
        predictor.predict([good, good, good, without_radius])
    with pytest.raises(ValidationError, match=r"row 1, column 'mean area': expected a number"):
        predictor.predict([good, {**good, "mean area": "large"}])
    gaps = predictor.predict([{**good, "mean area": None, "mean radius": float("nan")}])
    assert gaps.predictions[0] in (0, 1)
    assert predictor.predict([]).predictions == []


def test_corrupt_artifacts_are_validation_errors(
    cancer_model: TrainedModel, diabetes_model: TrainedModel
) -> None:
    files = cancer_model.files
    manifest = json.loads(files["model.json"])
    cases: list[tuple[dict[str, bytes], str]] = [
        ({"model.safetensors": files["model.safetensors"]}, "no model.json"),
        ({"model.json": files["model.json"]}, "no model.safetensors"),
        ({**files, "model.json": b"{not json"}, "not valid JSON"),
        ({**files, "model.json": b"[]"}, "does not describe a dlp model"),
        (
            {**files, "model.json": json.dumps({**manifest, "format_version": 99}).encode()},
            "unsupported model format version 99",
        ),
        (
            {**files, "model.json": json.dumps({**manifest, "n_features": "many"}).encode()},
            "corrupt: n_features",
        ),
        (
            {**files, "model.json": json.dumps({**manifest, "task": "regression"}).encode()},
            "corrupt",
        ),
        ({**files, "model.safetensors": b"\x00" * 64}, "unreadable"),
        (
            {**files, "model.safetensors": diabetes_model.files["model.safetensors"]},
            "does not match",
        ),
    ]
    for broken, message in cases:
        with pytest.raises(ValidationError, match=message):
            load_predictor(broken)

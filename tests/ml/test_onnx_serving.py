"""ONNX Runtime serving answers exactly what PyTorch serving answers, or falls back to it."""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch

from dlp.errors import DLPError
from dlp.ml import onnx_serving
from dlp.ml.artifact import TrainedModel, load_predictor, train_tabular
from dlp.ml.config import CNNConfig, MLPConfig, TextConfig, TrainingConfig
from dlp.ml.export import export_model
from dlp.ml.inference import Predictor
from dlp.ml.onnx_serving import load_serving_predictor, parity_samples, quantize_dynamic_int8
from dlp.ml.text import train_text

WORDS = ["good", "great", "fine", "bad", "awful", "dull", "plot", "actor", "scene", "film"]


@pytest.fixture(scope="module")
def tabular_model(mixed_table: pa.Table) -> TrainedModel:
    return train_tabular(
        mixed_table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[16, 8]),
        training=TrainingConfig(epochs=3),
    )


@pytest.fixture(scope="module")
def embedded_model() -> TrainedModel:
    # Past MAX_CATEGORIES distinct strings a column is embedded: the graph gathers rows.
    rng = np.random.default_rng(0)
    city = rng.integers(0, 60, size=600)
    table = pa.table(
        {
            "city": [f"c{c}" for c in city],
            "noise": rng.normal(size=600),
            "label": (city % 3 == 0).astype(int),
        }
    )
    return train_tabular(
        table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[16]),
        training=TrainingConfig(epochs=2),
    )


@pytest.fixture(scope="module")
def regression_model(diabetes: Any) -> TrainedModel:
    return train_tabular(
        diabetes.train,
        target="target",
        task="regression",
        model=MLPConfig(hidden_sizes=[8]),
        training=TrainingConfig(epochs=2),
    )


def _reviews(n_rows: int = 120) -> pa.Table:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n_rows)]
    labels = ["fresh" if ("good" in t or "great" in t) else "rotten" for t in texts]
    return pa.table({"text": texts, "label": labels})


def _texts() -> list[str]:
    return ["good film", "awful dull plot", "", "!!!", "a great great scene " * 20, "unseen words"]


@pytest.fixture(scope="module")
def text_model() -> TrainedModel:
    return train_text(
        _reviews(),
        text_column="text",
        target="label",
        task="classification",
        model=TextConfig(variant="bag", embedding_dim=8, max_length=16, ngrams=2),
        training=TrainingConfig(epochs=2, batch_size=32),
    )


@pytest.fixture(scope="module")
def image_model() -> TrainedModel:
    from dlp.ml.images import train_images
    from tests.images import digits_archive

    return train_images(
        io.BytesIO(digits_archive().train_zip),
        model=CNNConfig(input_size=8, channels=[8, 16]),
        training=TrainingConfig(epochs=1),
    )


def _assert_same(onnx: Predictor, torch_: Predictor, inputs: list[Any]) -> None:
    assert onnx.engine == "onnxruntime"
    assert torch_.engine == "torch"
    expected, actual = torch_.predict(inputs), onnx.predict(inputs)
    if expected.probabilities is None:
        assert actual.probabilities is None
        np.testing.assert_allclose(actual.predictions, expected.predictions, atol=1e-4)
        return
    assert actual.predictions == expected.predictions
    assert actual.probabilities is not None
    np.testing.assert_allclose(actual.probabilities, expected.probabilities, atol=1e-4)


def test_tabular_classification_matches_torch(
    tabular_model: TrainedModel, mixed_table: pa.Table
) -> None:
    rows = mixed_table.drop_columns(["label"]).slice(0, 40).to_pylist()
    rows.append({"x": None, "color": "purple", "count": 99, "flag": None})
    _assert_same(
        load_serving_predictor(tabular_model.files),
        load_serving_predictor(tabular_model.files, engine="torch"),
        rows,
    )


def test_tabular_embeddings_match_torch(embedded_model: TrainedModel) -> None:
    rows = [{"city": f"c{i}", "noise": 0.1 * i} for i in range(70)]
    _assert_same(
        load_serving_predictor(embedded_model.files), load_predictor(embedded_model.files), rows
    )


def test_tabular_regression_matches_torch(regression_model: TrainedModel, diabetes: Any) -> None:
    predictor = load_serving_predictor(regression_model.files, engine="onnx")
    _assert_same(predictor, load_predictor(regression_model.files), diabetes.test_rows)
    assert predictor.task == "regression"


def test_text_matches_torch(text_model: TrainedModel) -> None:
    _assert_same(
        load_serving_predictor(text_model.files), load_predictor(text_model.files), _texts()
    )


def test_text_transformer_matches_torch() -> None:
    trained = train_text(
        _reviews(),
        text_column="text",
        target="label",
        task="classification",
        model=TextConfig(variant="transformer", embedding_dim=16, layers=1, heads=2, max_length=16),
        training=TrainingConfig(epochs=1, batch_size=32),
    )
    _assert_same(load_serving_predictor(trained.files), load_predictor(trained.files), _texts())


def test_image_matches_torch(image_model: TrainedModel) -> None:
    from tests.images import as_base64, digits_archive

    images = [as_base64(png) for png in digits_archive().test_pngs[:20]]
    _assert_same(
        load_serving_predictor(image_model.files), load_predictor(image_model.files), images
    )


def test_forced_torch_never_exports(
    tabular_model: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any) -> bytes:
        raise AssertionError("engine='torch' must not export")

    monkeypatch.setattr(onnx_serving, "export_model", refuse)
    predictor = load_serving_predictor(tabular_model.files, engine="torch")
    assert predictor.engine == "torch"
    assert type(predictor) is Predictor


def test_failed_export_falls_back_to_torch(
    tabular_model: TrainedModel,
    mixed_table: pa.Table,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: Any) -> bytes:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_serving, "export_model", broken)
    with caplog.at_level(logging.WARNING, logger="dlp.ml.onnx_serving"):
        predictor = load_serving_predictor(tabular_model.files)
    assert predictor.engine == "torch"
    assert "unsupported operator" in caplog.text
    rows = mixed_table.drop_columns(["label"]).slice(0, 5).to_pylist()
    assert predictor.predict(rows) == load_predictor(tabular_model.files).predict(rows)
    with pytest.raises(DLPError, match="unsupported operator"):
        load_serving_predictor(tabular_model.files, engine="onnx")


def test_parity_failure_falls_back_to_torch(
    tabular_model: TrainedModel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A negative tolerance makes any graph "differ": the check, not the export, decides.
    monkeypatch.setattr(onnx_serving, "PARITY_TOLERANCE", -1.0)
    with caplog.at_level(logging.WARNING, logger="dlp.ml.onnx_serving"):
        predictor = load_serving_predictor(tabular_model.files)
    assert predictor.engine == "torch"
    assert "differ by" in caplog.text


def test_parity_samples_stay_in_range(embedded_model: TrainedModel) -> None:
    spec = load_predictor(embedded_model.files).input_spec
    assert spec.categorical_cardinalities
    n_dense = spec.n_features - len(spec.categorical_cardinalities)
    for batch in parity_samples("tabular", spec):
        assert batch.shape[1] == spec.n_features
        for column, size in enumerate(spec.categorical_cardinalities):
            values = batch[:, n_dense + column]
            assert bool((values >= 0).all()) and bool((values < size).all())


def test_int8_quantization_shrinks_and_stays_close() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    columns: dict[str, Any] = {f"p{i}": digits.data[:, i] for i in range(64)}
    columns["digit"] = digits.target
    trained = train_tabular(
        pa.table(columns),
        target="digit",
        task="classification",
        model=MLPConfig(hidden_sizes=[128]),
        training=TrainingConfig(epochs=5),
    )
    graph = export_model(trained.files, "onnx")
    quantized = quantize_dynamic_int8(graph)
    assert len(quantized) < len(graph) / 2
    features = {"inputs": torch.randn(200, 64, generator=torch.Generator().manual_seed(0)).numpy()}
    (exact,) = ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, features)
    (approx,) = ort.InferenceSession(quantized, providers=["CPUExecutionProvider"]).run(
        None, features
    )
    # int8 weights move logits a little; the decisions should barely change.
    assert np.mean(exact.argmax(axis=1) == approx.argmax(axis=1)) >= 0.95
    probabilities = torch.softmax(torch.from_numpy(exact), 1) - torch.softmax(
        torch.from_numpy(approx), 1
    )
    assert float(probabilities.abs().max()) < 0.1

"""int8 quantization re-scores a model on the validation split its training drew."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dlp.errors import ValidationError
from dlp.ml.artifact import train_tabular
from dlp.ml.config import CNNConfig, MLPConfig, TextConfig, TrainingConfig
from dlp.ml.image_archive import ArchiveLimits
from dlp.ml.images import train_images
from dlp.ml.quantize import ImageValidationSource, ValidationSource, quantize_model
from dlp.ml.text import train_text
from tests.images import digits_archive

WORDS = ["good", "great", "fine", "bad", "awful", "dull", "plot", "actor", "scene", "film"]


def test_regression_reports_val_rmse_as_training_measured_it(diabetes: Any) -> None:
    training = TrainingConfig(epochs=3, validation_fraction=0.25, seed=7)
    trained = train_tabular(
        diabetes.train,
        target="target",
        task="regression",
        model=MLPConfig(hidden_sizes=[32]),
        training=training,
    )
    quantized = quantize_model(
        trained.files, ValidationSource(table=diabetes.train, target="target", training=training)
    )
    assert quantized.metric == "val_rmse"
    assert quantized.before == pytest.approx(trained.metrics["val_rmse"], rel=1e-5)
    assert quantized.change == pytest.approx(quantized.after - quantized.before)
    assert quantized.validation_rows == round(diabetes.train.num_rows * 0.25)
    assert quantized.graph and quantized.size_bytes_fp32 > 0


def test_mixed_columns_with_gaps_and_string_labels(mixed_table: pa.Table) -> None:
    training = TrainingConfig(epochs=2)
    trained = train_tabular(
        mixed_table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[16]),
        training=training,
    )
    quantized = quantize_model(
        trained.files, ValidationSource(table=mixed_table, target="label", training=training)
    )
    assert quantized.metric == "val_accuracy"
    assert quantized.before == pytest.approx(trained.metrics["val_accuracy"])


def test_text_models_skip_rows_without_text_as_training_did() -> None:
    rng = np.random.default_rng(0)
    texts: list[str | None] = [
        " ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(200)
    ]
    labels = ["fresh" if ("good" in t or "great" in t) else "rotten" for t in texts if t]
    texts[3] = None
    table = pa.table({"text": texts, "label": labels})
    training = TrainingConfig(epochs=2)
    trained = train_text(
        table,
        text_column="text",
        target="label",
        task="classification",
        model=TextConfig(),
        training=training,
    )
    source = ValidationSource(table=table, target="label", training=training, text_column="text")
    quantized = quantize_model(trained.files, source)
    assert quantized.before == pytest.approx(trained.metrics["val_accuracy"])
    assert quantized.validation_rows == round(199 * 0.2)


def test_a_dataset_without_the_target_column_is_refused(mixed_table: pa.Table) -> None:
    training = TrainingConfig(epochs=1)
    trained = train_tabular(
        mixed_table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[4]),
        training=training,
    )
    source = ValidationSource(
        table=mixed_table.drop_columns(["label"]), target="label", training=training
    )
    with pytest.raises(ValidationError, match="no column 'label'"):
        quantize_model(trained.files, source)


def test_image_models_are_scored_on_their_archive_validation_split(
    mixed_table: pa.Table,
) -> None:
    archive = digits_archive().train_zip
    training = TrainingConfig(epochs=2, validation_fraction=0.2, seed=3)
    trained = train_images(
        io.BytesIO(archive), model=CNNConfig(input_size=8, channels=[8]), training=training
    )
    quantized = quantize_model(
        trained.files, ImageValidationSource(io.BytesIO(archive), training, ArchiveLimits())
    )
    assert quantized.metric == "val_accuracy"
    assert quantized.before == pytest.approx(trained.metrics["val_accuracy"], abs=1e-9)
    n_images = len(zipfile.ZipFile(io.BytesIO(archive)).namelist())
    # Stratified: a fifth of each class folder, rounded per class.
    assert abs(quantized.validation_rows - 0.2 * n_images) <= 10
    assert abs(quantized.change) < 0.05
    wrong = ValidationSource(table=mixed_table, target="label", training=TrainingConfig())
    with pytest.raises(ValidationError, match="image model needs its own kind of dataset"):
        quantize_model(trained.files, wrong)

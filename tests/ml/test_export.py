"""ONNX and TorchScript exports compute what the PyTorch model computes (within 1e-4)."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest
import torch

from dlp.ml.artifact import TrainedModel, load_predictor, train_tabular
from dlp.ml.config import MLPConfig, TrainingConfig
from dlp.ml.export import example_input, export_model


@pytest.fixture(scope="module")
def tabular_model() -> TrainedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    table = pa.table(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "colour": ["red" if v > 0 else "blue" for v in x[:, 3]],
            "y": (x[:, 0] + x[:, 3] > 0).astype(int),
        }
    )
    return train_tabular(
        table,
        target="y",
        task="classification",
        model=MLPConfig(hidden_sizes=[16, 8]),
        training=TrainingConfig(epochs=3),
    )


def _reference(files: dict[str, bytes], inputs: torch.Tensor) -> np.ndarray:
    network = load_predictor(files).network
    with torch.inference_mode():
        return network(inputs).numpy()


def test_onnx_matches_pytorch(tabular_model: TrainedModel) -> None:
    data = export_model(tabular_model.files, "onnx")
    graph = onnx.load_from_string(data)
    onnx.checker.check_model(graph)
    manifest = {p.key: p.value for p in graph.metadata_props}["dlp.manifest"]
    assert json.loads(manifest)["data_kind"] == "tabular"
    spec = load_predictor(tabular_model.files).input_spec
    inputs = torch.randn(7, spec.n_features)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"inputs": inputs.numpy()})
    np.testing.assert_allclose(outputs, _reference(tabular_model.files, inputs), atol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_matches_pytorch(tabular_model: TrainedModel) -> None:
    data = export_model(tabular_model.files, "torchscript")
    extra = {"model.json": ""}
    module = torch.jit.load(io.BytesIO(data), _extra_files=extra)
    assert json.loads(extra["model.json"])["task"] == "classification"
    spec = load_predictor(tabular_model.files).input_spec
    inputs = torch.randn(5, spec.n_features)
    with torch.inference_mode():
        outputs = module(inputs).numpy()
    np.testing.assert_allclose(outputs, _reference(tabular_model.files, inputs), atol=1e-4)


def test_example_input_shapes() -> None:
    from dlp.ml.config import InputSpec

    assert example_input("image", InputSpec(channels=3, image_size=8)).shape == (2, 3, 8, 8)
    assert example_input("text", InputSpec(vocab_size=100)).dtype == torch.int64
    assert example_input("tabular", InputSpec(n_features=6)).shape == (2, 6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cnn_exports_match_pytorch() -> None:
    from dlp.ml.config import CNNConfig
    from dlp.ml.images import train_images
    from tests.images import digits_archive

    trained = train_images(
        io.BytesIO(digits_archive().train_zip),
        model=CNNConfig(input_size=8, channels=[8, 16]),
        training=TrainingConfig(epochs=1),
    )
    spec = load_predictor(trained.files).input_spec
    inputs = torch.randn(3, spec.channels, spec.image_size, spec.image_size)
    reference = _reference(trained.files, inputs)
    session = ort.InferenceSession(
        export_model(trained.files, "onnx"), providers=["CPUExecutionProvider"]
    )
    (outputs,) = session.run(None, {"inputs": inputs.numpy()})
    np.testing.assert_allclose(outputs, reference, atol=1e-4)
    module = torch.jit.load(io.BytesIO(export_model(trained.files, "torchscript")))
    with torch.inference_mode():
        np.testing.assert_allclose(module(inputs).numpy(), reference, atol=1e-4)

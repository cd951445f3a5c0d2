"""The L1 cache charges what a loaded model holds in memory, and reloads a switched variant."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pytest

from dlp.ml.artifact import TrainedModel, train_tabular
from dlp.ml.config import MLPConfig, TrainingConfig
from dlp.ml.inference import Predictor
from dlp.ml.onnx_serving import load_serving_predictor
from dlp.ops.metrics import ApiMetrics
from dlp.predictions.server import ModelServer
from dlp.registry.models import Model

ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": (x[:, 0] > 0).astype(int)})
    return train_tabular(
        table,
        target="y",
        task="classification",
        model=MLPConfig(hidden_sizes=[64, 64]),
        training=TrainingConfig(epochs=1),
    )


def row(files: Mapping[str, bytes], variant: str = "fp32") -> Model:
    """A model row as the registry keeps it; ``size_bytes`` is the files' size on disk."""
    return Model(
        id=uuid.uuid4(),
        version=1,
        classes=[0, 1],
        size_bytes=sum(len(data) for data in files.values()),
        files={name: {"sha256": name} for name in files},
        serving_variant=variant,
    )


def server_loading(
    predictors: dict[uuid.UUID, Predictor], cache_bytes: int
) -> tuple[ModelServer, list[uuid.UUID]]:
    metrics = ApiMetrics()
    loaded: list[uuid.UUID] = []

    def loader(model: Model) -> Predictor:
        loaded.append(model.id)
        return predictors[model.id]

    server = ModelServer(
        None,  # type: ignore[arg-type]  # the loader reads no files
        metrics.serving(),
        cache_bytes=cache_bytes,
        max_batch_rows=64,
        max_wait_s=0.002,
        loader=loader,
    )
    return server, loaded


def test_an_onnx_served_model_is_charged_its_graph_too(trained: TrainedModel) -> None:
    torch_served = load_serving_predictor(trained.files, engine="torch")
    onnx_served = load_serving_predictor(trained.files, engine="onnx")
    weights = torch_served.resident_bytes
    assert weights == sum(4 * p.numel() for p in torch_served.network.parameters())
    assert onnx_served.engine == "onnxruntime"
    # The session holds a second copy of every weight, next to the PyTorch network.
    assert onnx_served.resident_bytes >= 2 * weights

    torch_model, onnx_model = row(trained.files), row(trained.files)
    server, _ = server_loading(
        {torch_model.id: torch_served, onnx_model.id: onnx_served}, cache_bytes=1 << 30
    )
    asyncio.run(server.warm([torch_model]))
    assert server.cache.size_bytes == weights
    asyncio.run(server.warm([onnx_model]))
    assert server.cache.size_bytes == weights + onnx_served.resident_bytes


def test_eviction_follows_resident_bytes_not_file_size(trained: TrainedModel) -> None:
    first, second = row(trained.files), row(trained.files)
    predictors = {
        first.id: load_serving_predictor(trained.files, engine="onnx"),
        second.id: load_serving_predictor(trained.files, engine="onnx"),
    }
    resident = predictors[first.id].resident_bytes
    # Room for both by file size, not by what two ONNX-served models hold.
    budget = resident + resident // 2
    assert first.size_bytes + second.size_bytes < budget
    server, loaded = server_loading(predictors, cache_bytes=budget)

    async def scenario() -> None:
        await server.predict(first, [ROW])
        await server.predict(second, [ROW])
        assert first.id not in server.cache and second.id in server.cache
        assert server.cache.size_bytes == resident

    asyncio.run(scenario())
    assert loaded == [first.id, second.id]


def test_a_row_serving_another_variant_is_a_miss(trained: TrainedModel) -> None:
    model = row(trained.files)
    predictor = load_serving_predictor(trained.files, engine="torch")
    server, loaded = server_loading({model.id: predictor}, cache_bytes=1 << 30)

    async def scenario() -> None:
        await server.predict(model, [ROW])
        await server.predict(model, [ROW])
        switched = row(trained.files, variant="int8")
        switched.id = model.id
        await server.predict(switched, [ROW])
        await server.predict(switched, [ROW])

    asyncio.run(scenario())
    assert loaded == [model.id, model.id]
    assert server.cache.size_bytes == predictor.resident_bytes

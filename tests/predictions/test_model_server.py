"""The model server on its own: byte-bounded L1 cache, load-once, batching, error isolation."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import generate_latest

from dlp.errors import ValidationError
from dlp.ml.inference import Prediction
from dlp.ops.metrics import ApiMetrics
from dlp.predictions.server import ModelServer
from dlp.registry.models import Model


class DoublingPredictor:
    """Predicts 2x each number; a non-number is a ValidationError naming its index."""

    def __init__(self, gate: threading.Event | None = None, resident_bytes: int = 100) -> None:
        self.gate = gate
        self.calls: list[int] = []
        self.resident_bytes = resident_bytes

    def predict(self, inputs: Sequence[Any]) -> Prediction:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(len(inputs))
        for index, value in enumerate(inputs):
            if not isinstance(value, int | float):
                raise ValidationError(f"inputs[{index}] must be a number")
        return Prediction(predictions=[2 * v for v in inputs], probabilities=None)


def fake_model(size_bytes: int = 100) -> Model:
    return Model(id=uuid.uuid4(), version=1, classes=None, size_bytes=size_bytes)


def make_server(
    predictor: Any = None,
    *,
    cache_bytes: int = 1 << 20,
    max_batch_rows: int = 256,
    max_wait_s: float = 0.002,
    load_seconds: float = 0.0,
) -> tuple[ModelServer, ApiMetrics, list[uuid.UUID]]:
    metrics = ApiMetrics()
    loaded: list[uuid.UUID] = []

    def loader(model: Model) -> Any:
        time.sleep(load_seconds)
        loaded.append(model.id)
        return predictor or DoublingPredictor(resident_bytes=model.size_bytes)

    server = ModelServer(
        None,  # type: ignore[arg-type]  # the loader reads no files
        metrics.serving(),
        cache_bytes=cache_bytes,
        max_batch_rows=max_batch_rows,
        max_wait_s=max_wait_s,
        loader=loader,
    )
    return server, metrics, loaded


def sample(metrics: ApiMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_l1_evicts_least_recently_used_by_bytes() -> None:
    server, metrics, loaded = make_server(cache_bytes=250)
    a, b, c = fake_model(100), fake_model(100), fake_model(100)

    async def scenario() -> None:
        await server.warm([a, b])
        await server.predict(a, [1])  # a is now the most recently used
        await server.predict(c, [1])  # 300 bytes > 250: b goes
        assert a.id in server.cache and c.id in server.cache and b.id not in server.cache
        assert server.cache.size_bytes == 200
        await server.predict(b, [1])  # loads again, evicting a
        assert a.id not in server.cache

    asyncio.run(scenario())
    assert loaded == [a.id, b.id, c.id, b.id]
    assert sample(metrics, "dlp_model_cache_total", level="l1", result="eviction") == 2
    assert sample(metrics, "dlp_model_cache_total", level="l1", result="hit") == 1
    assert sample(metrics, "dlp_model_cache_total", level="l1", result="miss") == 4
    assert b"dlp_serving_queue_wait_seconds" in generate_latest(metrics.registry)


def test_a_model_larger_than_the_budget_is_kept_alone() -> None:
    server, _, loaded = make_server(cache_bytes=50)
    small, huge = fake_model(10), fake_model(500)

    async def scenario() -> None:
        await server.warm([small, huge, huge])

    asyncio.run(scenario())
    assert loaded == [small.id, huge.id]
    assert huge.id in server.cache and small.id not in server.cache


def test_concurrent_misses_load_once() -> None:
    server, _, loaded = make_server(load_seconds=0.2)
    model = fake_model()

    async def scenario() -> list[Any]:
        answers = await asyncio.gather(*(server.predict(model, [i]) for i in range(20)))
        return [answer.predictions for answer in answers]

    assert asyncio.run(scenario()) == [[2 * i] for i in range(20)]
    assert loaded == [model.id]
    assert server.cache.loads == 1


def test_discard_during_a_load_keeps_nothing() -> None:
    server, _, _ = make_server(load_seconds=0.1)
    model = fake_model()

    async def scenario() -> None:
        pending = asyncio.create_task(server.predict(model, [1]))
        await asyncio.sleep(0.02)
        server.discard(model.id)
        assert (await pending).predictions == [2]

    asyncio.run(scenario())
    assert model.id not in server.cache


def test_requests_arriving_during_a_batch_are_coalesced_and_split_back() -> None:
    gate = threading.Event()
    predictor = DoublingPredictor(gate)
    server, metrics, _ = make_server(predictor)
    model = fake_model()

    async def scenario() -> list[Any]:
        await server.warm([model])
        first = asyncio.create_task(server.predict(model, [100]))
        await asyncio.sleep(0.05)  # the first batch is in flight, held by the gate
        rest = [asyncio.create_task(server.predict(model, [i, i + 1])) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        answers = await asyncio.gather(first, *rest)
        return [answer.predictions for answer in answers]

    assert asyncio.run(scenario()) == [[200]] + [[2 * i, 2 * i + 2] for i in range(5)]
    # An idle model's first request went alone, at once; the five queued behind it share one call.
    assert predictor.calls == [1, 10]
    assert sample(metrics, "dlp_serving_batch_requests_count") == 2
    assert sample(metrics, "dlp_serving_batch_requests_bucket", le="4.0") == 1
    assert sample(metrics, "dlp_serving_batch_rows_sum") == 11


def test_batches_respect_the_row_limit() -> None:
    gate = threading.Event()
    predictor = DoublingPredictor(gate)
    server, _, _ = make_server(predictor, max_batch_rows=4)
    model = fake_model()

    async def scenario() -> None:
        await server.warm([model])
        first = asyncio.create_task(server.predict(model, [0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(server.predict(model, [1, 2, 3])) for _ in range(3)]
        big = asyncio.create_task(server.predict(model, list(range(9))))
        await asyncio.sleep(0.02)
        gate.set()
        await asyncio.gather(first, *rest, big)

    asyncio.run(scenario())
    # A request bigger than the limit still goes through, alone.
    assert predictor.calls == [1, 3, 3, 3, 9]


def test_an_idle_model_does_not_wait_the_batching_window() -> None:
    server, _, _ = make_server(max_wait_s=1.0)
    model = fake_model()

    async def scenario() -> float:
        await server.warm([model])
        started = time.perf_counter()
        for i in range(5):
            await server.predict(model, [i])
        return time.perf_counter() - started

    assert asyncio.run(scenario()) < 0.5


def test_a_bad_request_fails_alone_with_its_own_row_numbers() -> None:
    gate = threading.Event()
    predictor = DoublingPredictor(gate)
    server, _, _ = make_server(predictor)
    model = fake_model()

    async def scenario() -> list[Any]:
        await server.warm([model])
        first = asyncio.create_task(server.predict(model, [0]))
        await asyncio.sleep(0.05)
        good = [asyncio.create_task(server.predict(model, [1, 2])) for _ in range(3)]
        bad = asyncio.create_task(server.predict(model, [1, "x"]))
        await asyncio.sleep(0.02)
        gate.set()
        return await asyncio.gather(first, *good, bad, return_exceptions=True)

    *answers, error = asyncio.run(scenario())
    assert [answer.predictions for answer in answers] == [[0], [2, 4], [2, 4], [2, 4]]
    assert isinstance(error, ValidationError)
    assert error.message == "inputs[1] must be a number"  # not the batch's inputs[7]


def test_other_errors_reach_every_request_of_the_batch() -> None:
    class Broken:
        resident_bytes = 100

        def predict(self, inputs: Sequence[Any]) -> Prediction:
            raise RuntimeError("boom")

    server, _, _ = make_server(Broken())
    model = fake_model()

    async def scenario() -> list[Any]:
        return await asyncio.gather(
            *(server.predict(model, [i]) for i in range(4)), return_exceptions=True
        )

    assert all(isinstance(result, RuntimeError) for result in asyncio.run(scenario()))


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_caller_that_goes_away_does_not_break_the_batch(cancel_first: bool) -> None:
    gate = threading.Event()
    server, _, _ = make_server(DoublingPredictor(gate))
    model = fake_model()

    async def scenario() -> list[Any]:
        await server.warm([model])
        first = asyncio.create_task(server.predict(model, [0]))
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(server.predict(model, [i])) for i in range(3)]
        await asyncio.sleep(0.01)
        (first if cancel_first else queued[0]).cancel()
        gate.set()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    results = asyncio.run(scenario())
    cancelled = 0 if cancel_first else 1
    assert isinstance(results[cancelled], asyncio.CancelledError)
    assert [r.predictions for i, r in enumerate(results) if i != cancelled][-2:] == [[2], [4]]

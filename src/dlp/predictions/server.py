"""The online-prediction engine: a per-model micro-batcher that coalesces concurrent
requests into one model call, over the loaded-model cache of ``model_cache``.

Everything here runs on the event loop except reading a model's files and calling the
model on batches measured to take more than a couple of milliseconds, which go to
worker threads.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import structlog
from anyio import CapacityLimiter

from dlp.config import Settings
from dlp.errors import ValidationError
from dlp.ops.metrics import ApiMetrics, ServingMetrics
from dlp.predictions.file_cache import FileCache, NullFileCache, create_model_file_cache
from dlp.predictions.model_cache import LoadedModelCache, PredictorLoader
from dlp.predictions.schemas import PredictResponse
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.storage import FileStore

if TYPE_CHECKING:
    from dlp.ml.inference import Prediction, Predictor
    from dlp.ml.onnx_serving import EngineChoice

log = structlog.get_logger(__name__)

# Model calls that may run at once across all models: more only fight over the cores.
INFERENCE_THREADS = 2
# Batches expected to take less than this run on the event loop, not in a thread.
INLINE_BUDGET_SECONDS = 0.002
COST_SMOOTHING = 0.2


@dataclass
class _Request:
    predictor: Predictor
    inputs: Sequence[Any]
    future: asyncio.Future[Prediction]
    enqueued_at: float


@dataclass
class _ModelQueue:
    requests: deque[_Request] = field(default_factory=deque)
    rows: int = 0
    full: asyncio.Future[None] | None = None


class ModelServer:
    """Answers predictions: L1 cache, then a per-model micro-batcher.

    The first request to an idle model is dispatched at once (a model measured cheap
    enough for the event loop is run by that request itself, with the requests that
    were already runnable); requests that arrive while a batch of that model runs are
    coalesced into the next one, which waits at most ``max_wait_s`` (from its oldest
    request's arrival) to fill ``max_rows``.
    """

    def __init__(
        self,
        store: FileStore,
        metrics: ServingMetrics,
        *,
        cache_bytes: int,
        max_batch_rows: int,
        max_wait_s: float,
        file_cache: FileCache | None = None,
        engine: EngineChoice = "auto",
        loader: PredictorLoader | None = None,
    ) -> None:
        self.store = store
        self.file_cache: FileCache = file_cache or NullFileCache()
        self.engine: EngineChoice = engine
        self.metrics = metrics
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.cache = LoadedModelCache(cache_bytes, loader or self._load_predictor, metrics.cache)
        self._queues: dict[uuid.UUID, _ModelQueue] = {}
        self._drainers: set[asyncio.Task[None]] = set()
        self._limiter = CapacityLimiter(INFERENCE_THREADS)
        self._row_seconds: dict[uuid.UUID, float] = {}

    def _load_predictor(self, model: Model) -> Predictor:
        """L2 (Redis, when configured) else the store, digests checked either way; then
        ONNX Runtime where it matches PyTorch (``DLP_SERVING_ENGINE``), or the int8 graph
        when the version serves its quantized variant."""
        from dlp.ml.onnx_serving import load_serving_predictor

        files = self.file_cache.get(model.id, model.files)
        if files is None:
            files = registry_service.load_model_files(self.store, model)
            self.file_cache.put(model.id, files)
        int8 = model.serving_variant == "int8"
        predictor = load_serving_predictor(files, engine=self.engine, int8=int8)
        log.info(
            "serving.model_loaded",
            model_id=str(model.id),
            version=model.version,
            variant=model.serving_variant,
            engine=predictor.engine,
        )
        return predictor

    async def predict(self, model: Model, inputs: list[Any]) -> PredictResponse:
        """Run the model on ``inputs``, batched with other requests to the same model."""
        started = time.perf_counter()
        predictor = await self.cache.get_or_load(model)
        prediction = await self._submit(model.id, predictor, inputs)
        self.metrics.latency.observe(time.perf_counter() - started)
        if model.serving_variant == "int8":
            # An explicit opt-in whose answers differ from the trained network's: say so.
            log.info(
                "prediction.int8_variant",
                model_id=str(model.id),
                version=model.version,
                rows=len(inputs),
            )
        return PredictResponse(
            model_id=model.id,
            model_version=model.version,
            predictions=prediction.predictions,
            probabilities=prediction.probabilities,
            classes=model.classes,
        )

    def discard(self, model_id: uuid.UUID) -> None:
        """Forget a loaded model (after it was deleted)."""
        self.cache.discard(model_id)
        self._row_seconds.pop(model_id, None)

    async def warm(self, models: list[Model]) -> None:
        """Load ``models`` into the L1 cache ahead of their first request."""
        for model in models:
            await self.cache.get_or_load(model)

    async def _submit(
        self, model_id: uuid.UUID, predictor: Predictor, inputs: Sequence[Any]
    ) -> Prediction:
        loop = asyncio.get_running_loop()
        request = _Request(predictor, inputs, loop.create_future(), loop.time())
        queue = self._queues.get(model_id)
        if queue is not None:
            self._enqueue(queue, request)
            return await request.future
        queue = self._queues[model_id] = _ModelQueue()
        self._enqueue(queue, request)
        inline_rows = self._inline_rows(model_id)
        if inline_rows < len(inputs):
            self._start_drainer(model_id, queue)
            return await request.future
        # A cheap model gone idle: this request leads. One turn of the loop lets the
        # requests that are already runnable join it, then its batch runs right here on
        # the loop (no task to start, no hop back), and a drainer takes what came later.
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            request.future.cancel()
            self._start_drainer(model_id, queue)
            raise
        batch = self._take_batch(queue, max(inline_rows, len(inputs)))
        # Inline by construction, so nothing in here awaits: a caller going away
        # cannot leave the batch half-answered.
        self._run_inline(model_id, batch, loop)
        if queue.requests:
            self._start_drainer(model_id, queue)
        else:
            del self._queues[model_id]
        return request.future.result()

    def _enqueue(self, queue: _ModelQueue, request: _Request) -> None:
        queue.requests.append(request)
        queue.rows += len(request.inputs)
        full = queue.full
        if full is not None and not full.done() and queue.rows >= self.max_batch_rows:
            full.set_result(None)

    def _start_drainer(self, model_id: uuid.UUID, queue: _ModelQueue) -> None:
        drainer = asyncio.create_task(self._drain(model_id, queue))
        self._drainers.add(drainer)
        drainer.add_done_callback(self._drainers.discard)

    def _inline_rows(self, model_id: uuid.UUID) -> int:
        """How many rows of this model fit the inline budget (0 until its cost is known)."""
        per_row = self._row_seconds.get(model_id)
        if per_row is None:
            return 0
        return int(INLINE_BUDGET_SECONDS / max(per_row, 1e-9))

    async def _drain(self, model_id: uuid.UUID, queue: _ModelQueue) -> None:
        """Run the model's queued requests batch by batch until none are left."""
        loop = asyncio.get_running_loop()
        try:
            first = True
            while queue.requests:
                if not first:
                    await self._wait_for_more(queue, loop)
                first = False
                batch = self._take_batch(queue)
                if batch:
                    await self._run_batch(model_id, batch, loop)
        finally:
            # No await between the last check and here: a new request starts a new drainer.
            if self._queues.get(model_id) is queue:
                del self._queues[model_id]

    async def _wait_for_more(self, queue: _ModelQueue, loop: asyncio.AbstractEventLoop) -> None:
        remaining = queue.requests[0].enqueued_at + self.max_wait_s - loop.time()
        if remaining <= 0 or queue.rows >= self.max_batch_rows:
            return
        queue.full = loop.create_future()
        try:
            await asyncio.wait([queue.full], timeout=remaining)
        finally:
            queue.full = None

    def _take_batch(self, queue: _ModelQueue, max_rows: int | None = None) -> list[_Request]:
        """The oldest requests for one predictor, up to ``max_rows`` (default: the batch
        row limit), at least one."""
        limit = self.max_batch_rows if max_rows is None else max_rows
        batch: list[_Request] = []
        rows = 0
        while queue.requests:
            request = queue.requests[0]
            if request.future.done():  # the caller went away
                queue.requests.popleft()
                queue.rows -= len(request.inputs)
                continue
            if batch and (
                request.predictor is not batch[0].predictor or rows + len(request.inputs) > limit
            ):
                break
            queue.requests.popleft()
            queue.rows -= len(request.inputs)
            batch.append(request)
            rows += len(request.inputs)
        return batch

    async def _run_batch(
        self, model_id: uuid.UUID, batch: list[_Request], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Run one batch: on the event loop when this model's measured cost says it fits
        the inline budget (a thread hop would cost more than the work), else in a worker
        thread so the loop keeps serving."""
        rows = sum(len(request.inputs) for request in batch)
        if rows <= self._inline_rows(model_id):
            self._run_inline(model_id, batch, loop)
            return
        predictor, inputs = self._start_batch(batch, loop)
        try:
            prediction, seconds = await anyio.to_thread.run_sync(
                _timed_predict, predictor, inputs, limiter=self._limiter
            )
        except ValidationError as exc:
            if len(batch) == 1:
                _settle(batch[0].future, exc)
                return
            results = await anyio.to_thread.run_sync(
                _predict_each, predictor, [r.inputs for r in batch], limiter=self._limiter
            )
            _settle_each(batch, results)
            return
        except Exception as exc:  # every waiting caller gets the error
            _settle_each(batch, [exc] * len(batch))
            return
        self._record_cost(model_id, seconds, len(inputs))
        _settle_each(batch, _split(prediction, batch))

    def _run_inline(
        self, model_id: uuid.UUID, batch: list[_Request], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Run one batch on the event loop, start to finish, without awaiting anything."""
        predictor, inputs = self._start_batch(batch, loop)
        try:
            prediction, seconds = _timed_predict(predictor, inputs)
        except ValidationError as exc:
            # Row numbers in the error are the batch's: re-run each request alone so
            # the bad one gets its own message and the others still succeed.
            results = (
                [exc] if len(batch) == 1 else _predict_each(predictor, [r.inputs for r in batch])
            )
            _settle_each(batch, results)
            return
        except Exception as exc:  # every waiting caller gets the error
            _settle_each(batch, [exc] * len(batch))
            return
        self._record_cost(model_id, seconds, len(inputs))
        _settle_each(batch, _split(prediction, batch))

    def _start_batch(
        self, batch: list[_Request], loop: asyncio.AbstractEventLoop
    ) -> tuple[Predictor, Sequence[Any]]:
        """Record the batch's metrics; its predictor and all its rows."""
        started = loop.time()
        for request in batch:
            self.metrics.queue_wait.observe(started - request.enqueued_at)
        self.metrics.batch_requests.observe(len(batch))
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = [row for request in batch for row in request.inputs]
        self.metrics.batch_rows.observe(len(inputs))
        return batch[0].predictor, inputs

    def _record_cost(self, model_id: uuid.UUID, seconds: float, rows: int) -> None:
        measured = seconds / max(1, rows)
        per_row = self._row_seconds.get(model_id, measured)
        self._row_seconds[model_id] = (1 - COST_SMOOTHING) * per_row + COST_SMOOTHING * measured


def _timed_predict(predictor: Predictor, inputs: Sequence[Any]) -> tuple[Prediction, float]:
    started = time.perf_counter()
    prediction = predictor.predict(inputs)
    return prediction, time.perf_counter() - started


def _predict_each(
    predictor: Predictor, inputs: list[Sequence[Any]]
) -> list[Prediction | Exception]:
    results: list[Prediction | Exception] = []
    for one in inputs:
        try:
            results.append(predictor.predict(one))
        except Exception as exc:  # handed to that request's caller
            results.append(exc)
    return results


def _split(prediction: Prediction, batch: list[_Request]) -> list[Prediction]:
    from dlp.ml.inference import Prediction

    if len(batch) == 1:
        return [prediction]
    parts = []
    start = 0
    for request in batch:
        end = start + len(request.inputs)
        probabilities = prediction.probabilities
        parts.append(
            Prediction(
                predictions=prediction.predictions[start:end],
                probabilities=None if probabilities is None else probabilities[start:end],
            )
        )
        start = end
    return parts


def _settle_each(batch: list[_Request], results: Sequence[Prediction | BaseException]) -> None:
    for request, result in zip(batch, results, strict=True):
        _settle(request.future, result)


def _settle(future: asyncio.Future[Prediction], result: Prediction | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def build_model_server(store: FileStore, settings: Settings, metrics: ApiMetrics) -> ModelServer:
    """The process's model server, sized by ``settings`` and reporting to ``metrics``."""
    return ModelServer(
        store,
        metrics.serving(),
        cache_bytes=settings.model_cache_mb * 1024 * 1024,
        max_batch_rows=settings.serving_max_batch_rows,
        max_wait_s=settings.serving_max_wait_ms / 1000,
        file_cache=create_model_file_cache(settings, metrics.model_cache),
        engine=settings.serving_engine,
    )

"""The L1 cache of the prediction engine: loaded models, bounded by the memory they hold."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from prometheus_client import Counter

from dlp.registry.models import Model

if TYPE_CHECKING:
    from dlp.ml.inference import Predictor

L1 = "l1"

PredictorLoader = Callable[[Model], "Predictor"]
ServedKey = tuple[uuid.UUID, str | None, tuple[tuple[str, Any], ...]]


@dataclass
class _Entry:
    predictor: Predictor
    size_bytes: int
    served: ServedKey


def served_key(model: Model) -> ServedKey:
    """What a loaded predictor stands for: the version, the variant that serves and the
    digests of its files. A row that differs (variant switched, re-quantized) is a miss."""
    digests = tuple(
        sorted((name, meta.get("sha256")) for name, meta in (model.files or {}).items())
    )
    return model.id, model.serving_variant, digests


class LoadedModelCache:
    """Least-recently-used loaded models (L1), bounded by the bytes they hold in memory
    (``Predictor.resident_bytes``: an ONNX-served model holds its graph too).

    Concurrent misses for one model share one load. The newest model is kept even
    when it alone exceeds the budget, so an oversized model is not reloaded per request.
    One entry per model id: loading another variant of it replaces the one held.
    """

    def __init__(self, capacity_bytes: int, loader: PredictorLoader, events: Counter) -> None:
        self.capacity_bytes = capacity_bytes
        self.loads = 0
        self._loader = loader
        self._events = events
        self._items: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._loading: dict[ServedKey, asyncio.Task[Predictor]] = {}
        self._bytes = 0
        # Only discard() may come from another thread (a sync endpoint).
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """The total resident bytes of the models held."""
        return self._bytes

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._items

    async def get_or_load(self, model: Model) -> Predictor:
        """The loaded model, read and checked in a worker thread on a miss."""
        served = served_key(model)
        with self._lock:
            entry = self._items.get(model.id)
            if entry is not None and entry.served == served:
                self._items.move_to_end(model.id)
            else:
                entry = None
        if entry is not None:
            self._events.labels(L1, "hit").inc()
            return entry.predictor
        self._events.labels(L1, "miss").inc()
        task = self._loading.get(served)
        if task is None:
            task = asyncio.create_task(self._load(model), name=f"dlp-load-model-{model.id}")
            self._loading[served] = task
        # Shielded: a caller that goes away must not cancel the load the others await.
        return await asyncio.shield(task)

    async def _load(self, model: Model) -> Predictor:
        this = asyncio.current_task()
        served = served_key(model)
        try:
            self.loads += 1
            predictor = await anyio.to_thread.run_sync(self._loader, model)
            with self._lock:
                # Discarded while loading (deleted): serve the waiters but keep nothing.
                if self._loading.get(served) is this:
                    entry = _Entry(predictor, max(1, predictor.resident_bytes), served)
                    self._insert(model.id, entry)
            return predictor
        finally:
            with self._lock:
                if self._loading.get(served) is this:
                    del self._loading[served]

    def _insert(self, model_id: uuid.UUID, entry: _Entry) -> None:
        old = self._items.pop(model_id, None)
        if old is not None:
            self._bytes -= old.size_bytes
        self._items[model_id] = entry
        self._bytes += entry.size_bytes
        while self._bytes > self.capacity_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.size_bytes
            self._events.labels(L1, "eviction").inc()

    def discard(self, model_id: uuid.UUID) -> None:
        """Forget a model, and any load of it in flight (after it was deleted or its
        serving variant changed)."""
        with self._lock:
            entry = self._items.pop(model_id, None)
            if entry is not None:
                self._bytes -= entry.size_bytes
            for served in [key for key in self._loading if key[0] == model_id]:
                del self._loading[served]

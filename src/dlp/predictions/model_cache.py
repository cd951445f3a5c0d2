"""The L1 cache of the prediction engine: loaded models, bounded by their size in bytes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread
from prometheus_client import Counter

from dlp.registry.models import Model

if TYPE_CHECKING:
    from dlp.ml.inference import Predictor

L1 = "l1"

PredictorLoader = Callable[[Model], "Predictor"]


@dataclass
class _Entry:
    predictor: Predictor
    size_bytes: int


class LoadedModelCache:
    """Least-recently-used loaded models (L1), bounded by their total size in bytes.

    Concurrent misses for one model share one load. The newest model is kept even
    when it alone exceeds the budget, so an oversized model is not reloaded per request.
    """

    def __init__(self, capacity_bytes: int, loader: PredictorLoader, events: Counter) -> None:
        self.capacity_bytes = capacity_bytes
        self.loads = 0
        self._loader = loader
        self._events = events
        self._items: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._loading: dict[uuid.UUID, asyncio.Task[Predictor]] = {}
        self._bytes = 0
        # Only discard() may come from another thread (a sync endpoint).
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """The total size of the models held."""
        return self._bytes

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._items

    async def get_or_load(self, model: Model) -> Predictor:
        """The loaded model, read and checked in a worker thread on a miss."""
        with self._lock:
            entry = self._items.get(model.id)
            if entry is not None:
                self._items.move_to_end(model.id)
        if entry is not None:
            self._events.labels(L1, "hit").inc()
            return entry.predictor
        self._events.labels(L1, "miss").inc()
        task = self._loading.get(model.id)
        if task is None:
            task = asyncio.create_task(self._load(model), name=f"dlp-load-model-{model.id}")
            self._loading[model.id] = task
        # Shielded: a caller that goes away must not cancel the load the others await.
        return await asyncio.shield(task)

    async def _load(self, model: Model) -> Predictor:
        this = asyncio.current_task()
        try:
            self.loads += 1
            predictor = await anyio.to_thread.run_sync(self._loader, model)
            with self._lock:
                # Discarded while loading (deleted): serve the waiters but keep nothing.
                if self._loading.get(model.id) is this:
                    self._insert(model.id, _Entry(predictor, max(1, model.size_bytes)))
            return predictor
        finally:
            with self._lock:
                if self._loading.get(model.id) is this:
                    del self._loading[model.id]

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
        """Forget a model, and any load of it in flight (after it was deleted)."""
        with self._lock:
            entry = self._items.pop(model_id, None)
            if entry is not None:
                self._bytes -= entry.size_bytes
            self._loading.pop(model_id, None)

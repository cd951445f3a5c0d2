"""A small thread-safe cache whose entries expire, for lookups on the prediction hot path."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """At most ``max_entries`` values, each forgotten ``ttl_seconds`` after it was stored
    (``ttl_seconds`` 0 disables the cache)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored under ``key``, unless it expired."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            expires, value = found
            if time.monotonic() >= expires:
                del self._items[key]
                return None
            return value

    def put(self, key: K, value: V) -> None:
        """Store ``value``; the oldest entries go once the cache is full."""
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl_seconds, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def forget(self, matches: Callable[[K], bool]) -> None:
        """Drop every entry whose key ``matches``."""
        with self._lock:
            for key in [key for key in self._items if matches(key)]:
                del self._items[key]


class SingleFlightCache(TTLCache[K, V]):
    """A :class:`TTLCache` for an event loop whose misses load once: requests that miss
    the same key while it loads wait for that one load (no stampede when an entry
    expires under load)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        super().__init__(ttl_seconds, max_entries)
        self._loading: dict[K, asyncio.Task[V]] = {}

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, else the result of ``load()`` (shared with concurrent misses)."""
        value = self.get(key)
        if value is not None:
            return value
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
        # Shielded: one caller going away must not cancel the load the others await.
        return await asyncio.shield(task)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
            self.put(key, value)
            return value
        finally:
            self._loading.pop(key, None)

"""A small thread-safe cache whose entries expire, for lookups on the prediction hot path."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
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

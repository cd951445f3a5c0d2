"""The L2 model cache: a model's artifact files kept in Redis, shared by API processes.

Each model's files live in one Redis hash written in one transaction with its TTL,
so a reader sees all of them or none. Every file is checked against the sha256 the
registry recorded before it is served; an entry that does not match is deleted and
counts as a miss. Redis being slow or away is a miss too: the file store still
answers, so a prediction never fails because of this cache.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import redis
from prometheus_client import Counter

from dlp.config import Settings

__all__ = [
    "KEY_PREFIX",
    "L2",
    "FileCache",
    "ModelFileCache",
    "NullFileCache",
    "create_model_file_cache",
    "model_key",
]

logger = logging.getLogger(__name__)

L2 = "l2"
KEY_PREFIX = "dlp:model-files:"
CONNECT_TIMEOUT_SECONDS = 1.0
SOCKET_TIMEOUT_SECONDS = 5.0
"""Short enough that a stalled Redis costs a request little more than a file-store read."""


class FileCache(Protocol):
    """Where a model's checked files may be found before going to the file store."""

    def get(
        self, model_id: uuid.UUID, digests: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, bytes] | None:
        """The model's files if cached and matching ``digests``, else None."""

    def put(self, model_id: uuid.UUID, files: Mapping[str, bytes]) -> None:
        """Cache the model's files (already checked against their digests)."""


class NullFileCache:
    """No L2 cache (no Redis configured): every lookup misses, nothing is kept."""

    def get(
        self, model_id: uuid.UUID, digests: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, bytes] | None:
        """Always None."""
        return None

    def put(self, model_id: uuid.UUID, files: Mapping[str, bytes]) -> None:
        """Keep nothing."""


class ModelFileCache:
    """Model files in Redis: one hash per model, a TTL, and a size cap per model."""

    def __init__(
        self, client: redis.Redis, *, max_bytes: int, ttl_seconds: int, events: Counter
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._ttl_seconds = ttl_seconds
        self._events = events
        self._reachable = True

    def get(
        self, model_id: uuid.UUID, digests: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, bytes] | None:
        """The model's files if all are cached and match ``digests``; None otherwise."""
        files = self._lookup(model_id, digests)
        self._events.labels(level=L2, result="miss" if files is None else "hit").inc()
        return files

    def put(self, model_id: uuid.UUID, files: Mapping[str, bytes]) -> None:
        """Cache the files for the TTL; models over the size cap are not cached."""
        if not files:
            return
        size = sum(len(data) for data in files.values())
        if size > self._max_bytes:
            self._events.labels(level=L2, result="eviction").inc()
            logger.info(
                "model %s not cached in L2: %d bytes exceed the %d-byte cap",
                model_id,
                size,
                self._max_bytes,
            )
            return
        key = model_key(model_id)
        try:
            # One MULTI: readers never see some files without the rest, or no TTL.
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=dict(files))  # type: ignore[arg-type]
                pipe.expire(key, self._ttl_seconds)
                pipe.execute()
            self._note_reachable()
        except redis.RedisError as exc:
            self._note_unreachable(exc)

    def _lookup(
        self, model_id: uuid.UUID, digests: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, bytes] | None:
        key = model_key(model_id)
        try:
            entry: dict[bytes, bytes] = self._client.hgetall(key)  # type: ignore[assignment]
            self._note_reachable()
        except redis.RedisError as exc:
            self._note_unreachable(exc)
            return None
        if not entry:
            return None
        files = {name.decode(errors="replace"): data for name, data in entry.items()}
        problem = _mismatch(files, digests)
        if problem is not None:
            logger.warning("L2 cache entry of model %s refused: %s; deleting it", model_id, problem)
            self._delete(key)
            return None
        return files

    def _delete(self, key: str) -> None:
        try:
            self._client.delete(key)
        except redis.RedisError as exc:
            self._note_unreachable(exc)

    def _note_unreachable(self, exc: redis.RedisError) -> None:
        # Warn once per outage, not once per request.
        if self._reachable:
            logger.warning("L2 model cache unavailable, reading the file store: %s", exc)
        else:
            logger.debug("L2 model cache still unavailable: %s", exc)
        self._reachable = False

    def _note_reachable(self) -> None:
        if not self._reachable:
            logger.info("L2 model cache reachable again")
        self._reachable = True


def model_key(model_id: uuid.UUID) -> str:
    """The Redis key of a model's files."""
    return f"{KEY_PREFIX}{model_id}"


def create_model_file_cache(settings: Settings, counter: Counter) -> ModelFileCache | NullFileCache:
    """The L2 cache the settings ask for: Redis when ``DLP_REDIS_URL`` is set, else none."""
    if settings.redis_url is None:
        return NullFileCache()
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )
    return ModelFileCache(
        client,
        max_bytes=settings.model_l2_max_mb * 1024 * 1024,
        ttl_seconds=settings.model_l2_ttl_seconds,
        events=counter,
    )


def _mismatch(files: Mapping[str, bytes], digests: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why cached files cannot stand for the recorded ones, or None if they can."""
    if files.keys() != digests.keys():
        return f"it holds files {sorted(files)}, the model has {sorted(digests)}"
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != digests[name].get("sha256"):
            return f"file {name} does not match its recorded sha256"
    return None

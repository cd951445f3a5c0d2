"""The Redis L2 cache of model files: whole entries, checked digests, never a failure."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry, Counter

from dlp.config import Settings
from dlp.predictions.file_cache import (
    ModelFileCache,
    NullFileCache,
    create_model_file_cache,
    model_key,
)
from tests.conftest import _unavailable

REDIS_URL = "redis://127.0.0.1:6379/11"
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
FILES = {"model.json": b'{"format": "dlp.model"}', "model.safetensors": bytes(range(256)) * 40}


def _digests(files: dict[str, bytes]) -> dict[str, dict[str, object]]:
    return {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in files.items()
    }


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.flushdb()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {REDIS_URL}: {exc}")
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def counter(registry: CollectorRegistry) -> Counter:
    return Counter("dlp_model_cache_total", "cache events", ["level", "result"], registry=registry)


def _count(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value("dlp_model_cache_total", {"level": "l2", "result": result})
    return value or 0.0


def _cache(client: redis.Redis, counter: Counter, *, max_bytes: int = 1 << 20) -> ModelFileCache:
    return ModelFileCache(client, max_bytes=max_bytes, ttl_seconds=3600, events=counter)


def test_round_trip_counts_hits_and_misses(
    client: redis.Redis, counter: Counter, registry: CollectorRegistry
) -> None:
    cache, model_id = _cache(client, counter), uuid.uuid4()
    assert cache.get(model_id, _digests(FILES)) is None
    cache.put(model_id, FILES)
    assert cache.get(model_id, _digests(FILES)) == FILES
    assert cache.get(uuid.uuid4(), _digests(FILES)) is None
    assert (_count(registry, "hit"), _count(registry, "miss")) == (1, 2)


def test_entry_expires_after_the_ttl(client: redis.Redis, counter: Counter) -> None:
    settings = Settings(redis_url=REDIS_URL, model_l2_ttl_seconds=120)
    cache = create_model_file_cache(settings, counter)
    assert isinstance(cache, ModelFileCache)
    model_id = uuid.uuid4()
    cache.put(model_id, FILES)
    assert 110 <= client.ttl(model_key(model_id)) <= 120
    cache.put(model_id, FILES)  # a rewrite renews the TTL rather than dropping it
    assert client.ttl(model_key(model_id)) > 0


def test_tampered_entry_is_refused_and_deleted(
    client: redis.Redis,
    counter: Counter,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, model_id = _cache(client, counter), uuid.uuid4()
    cache.put(model_id, FILES)
    client.hset(model_key(model_id), "model.safetensors", b"not the weights")
    with caplog.at_level(logging.WARNING, logger="dlp.predictions.file_cache"):
        assert cache.get(model_id, _digests(FILES)) is None
    assert "does not match its recorded sha256" in caplog.text
    assert not client.exists(model_key(model_id))
    assert (_count(registry, "hit"), _count(registry, "miss")) == (0, 1)


def test_entry_missing_a_file_is_refused(client: redis.Redis, counter: Counter) -> None:
    cache, model_id = _cache(client, counter), uuid.uuid4()
    cache.put(model_id, FILES)
    client.hdel(model_key(model_id), "model.json")
    assert cache.get(model_id, _digests(FILES)) is None
    assert not client.exists(model_key(model_id))


def test_oversize_model_is_not_stored(
    client: redis.Redis, counter: Counter, registry: CollectorRegistry
) -> None:
    size = sum(len(data) for data in FILES.values())
    cache, model_id = _cache(client, counter, max_bytes=size - 1), uuid.uuid4()
    cache.put(model_id, FILES)
    assert not client.exists(model_key(model_id))
    assert cache.get(model_id, _digests(FILES)) is None
    assert _count(registry, "eviction") == 1
    _cache(client, counter, max_bytes=size).put(model_id, FILES)  # the cap is inclusive
    assert client.exists(model_key(model_id))


def test_redis_down_is_a_miss_without_raising(
    counter: Counter, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=CLOSED_PORT_URL)
    cache = create_model_file_cache(settings, counter)
    model_id = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="dlp.predictions.file_cache"):
        cache.put(model_id, FILES)
        assert cache.get(model_id, _digests(FILES)) is None
        assert cache.get(model_id, _digests(FILES)) is None
    assert _count(registry, "miss") == 2
    # One warning per outage, not one per request.
    assert caplog.text.count("L2 model cache unavailable") == 1


def test_without_redis_the_null_cache_keeps_nothing(counter: Counter) -> None:
    cache = create_model_file_cache(Settings(redis_url=None), counter)
    assert isinstance(cache, NullFileCache)
    cache.put(uuid.uuid4(), FILES)
    assert cache.get(uuid.uuid4(), _digests(FILES)) is None

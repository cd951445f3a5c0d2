"""The expiring cache used on the prediction hot path."""

from __future__ import annotations

import asyncio
import contextlib
import time

from dlp.cache import SingleFlightCache, TTLCache


def test_entries_expire_and_the_oldest_go_first() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl_seconds=0.05, max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    time.sleep(0.06)
    assert cache.get("b") is None and cache.get("c") is None


def test_forget_drops_matching_keys_and_zero_ttl_caches_nothing() -> None:
    cache: TTLCache[tuple[str, int], str] = TTLCache(ttl_seconds=60)
    for key in [("org1", 1), ("org1", 2), ("org2", 1)]:
        cache.put(key, "x")
    cache.forget(lambda key: key[0] == "org1")
    assert [cache.get(k) for k in [("org1", 1), ("org1", 2), ("org2", 1)]] == [None, None, "x"]
    disabled: TTLCache[str, str] = TTLCache(ttl_seconds=0)
    disabled.put("k", "v")
    assert disabled.get("k") is None


def test_concurrent_misses_share_one_load_and_errors_are_not_kept() -> None:
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return "value"

    async def failing() -> str:
        raise LookupError("gone")

    async def scenario() -> None:
        cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60)
        values = await asyncio.gather(*[cache.get_or_load("k", load) for _ in range(20)])
        assert values == ["value"] * 20 and loads == 1
        for _ in range(2):
            with contextlib.suppress(LookupError):
                await cache.get_or_load("bad", failing)
        assert cache.get("bad") is None

    asyncio.run(scenario())

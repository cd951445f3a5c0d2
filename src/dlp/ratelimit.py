"""Rate limits: request budgets per caller and per client IP, and the failure counters
behind login throttling (``dlp.auth.throttle``).

One ``RateLimiter`` per API process, built at start-up from settings. Its counters live
in Redis when the installation has one, so every API process spends the same budgets,
and in the process's memory when embedded. The strategy is limits' sliding-window
counter: two counters per key whatever the budget's size (a moving window keeps one
timestamp per request, 60,000 of them per caller for the default prediction budget),
one Lua script per hit on Redis, and none of the double bursts a fixed window lets
through at its edges. A counter store that fails lets the request through, logged:
budgets must not take the API down with them.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import limits
import redis.asyncio
import structlog
from fastapi import FastAPI
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter as InProcessSlidingWindow
from limits.util import WindowStats
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dlp.config import Settings
from dlp.errors import DLPError, RateLimitedError

log = structlog.get_logger(__name__)

REDIS_KEY_PREFIX = "dlp:ratelimit"
REDIS_TIMEOUT_SECONDS = 2.0
# Paths charged to the general budget per IP; prediction routes are charged where their
# caller is known (``dlp.dependencies.get_serving_principal``).
CHARGED_PREFIXES = ("/api/", "/ui/fragments/")
PREDICTION_SUFFIXES = ("/predict", "/invocations")


class _Counters(Protocol):
    """The part of a limits strategy the limiter uses, awaited."""

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None: ...


class InProcessCounters:
    """limits' thread-safe memory storage, called inline: it does no I/O (its asyncio
    twin sweeps every key for expiry on each event-loop turn, about 0.1 ms a request
    once 1,000 callers are counted)."""

    def __init__(self) -> None:
        self._strategy = InProcessSlidingWindow(MemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Spend one unit; False when none is left."""
        return self._strategy.hit(item, *identifiers)

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one unit is left, spending nothing."""
        return self._strategy.test(item, *identifiers)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When the next unit frees up, and how many are left."""
        return self._strategy.get_window_stats(item, *identifiers)

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        """Forget the counter."""
        self._strategy.clear(item, *identifiers)


@dataclass(frozen=True)
class Budget:
    """Requests allowed in a window to each caller and to each client IP (None: no limit)."""

    name: str
    per_caller: RateLimitItem | None
    per_ip: RateLimitItem | None


def parse_limit(settings: Settings, field: str) -> RateLimitItem | None:
    """The limit in ``settings.<field>`` (limits' notation, e.g. ``600/minute``); None
    when empty, which turns it off."""
    value = str(getattr(settings, field)).strip()
    if not value:
        return None
    try:
        return limits.parse(value)
    except ValueError as exc:
        raise ValueError(
            f"DLP_{field.upper()}={value!r} is not a rate like '600/minute' or '5 per 15 minutes'"
        ) from exc


class RateLimiter:
    """The budgets of one installation, spent on counters shared by its API processes."""

    def __init__(
        self,
        settings: Settings,
        counters: _Counters,
        connections: redis.asyncio.ConnectionPool | None = None,
    ) -> None:
        self.api = Budget(
            "api",
            parse_limit(settings, "rate_limit_api"),
            parse_limit(settings, "rate_limit_api_per_ip"),
        )
        self.predictions = Budget(
            "predictions",
            parse_limit(settings, "rate_limit_predictions"),
            parse_limit(settings, "rate_limit_predictions_per_ip"),
        )
        self.login_failures_per_account = parse_limit(settings, "login_failures_per_account")
        self.login_failures_per_ip = parse_limit(settings, "login_failures_per_ip")
        self.registrations_per_ip = parse_limit(settings, "registrations_per_ip")
        self._counters = counters
        self._connections = connections
        # In memory a hit never waits, so gathering would only add tasks.
        self._gather = not isinstance(counters, InProcessCounters)

    async def spend(
        self, budget: Budget, *, caller: str | None = None, ip: str | None = None
    ) -> None:
        """Charge one request to ``caller``'s and ``ip``'s budgets (both at once: one round
        trip to Redis); ``RateLimitedError`` when either is spent."""
        charges: list[tuple[RateLimitItem, tuple[str, ...]]] = []
        if caller is not None and budget.per_caller is not None:
            charges.append((budget.per_caller, (budget.name, "caller", caller)))
        if ip is not None and budget.per_ip is not None:
            charges.append((budget.per_ip, (budget.name, "ip", ip)))
        if not charges:
            return
        if self._gather and len(charges) > 1:
            allowed = await asyncio.gather(*(self._hit(item, key) for item, key in charges))
        else:
            allowed = [await self._hit(item, key) for item, key in charges]
        for accepted, (item, key) in zip(allowed, charges, strict=True):
            if not accepted:
                await self._refuse(item, key, f"too many requests ({item}); slow down")

    async def take(self, item: RateLimitItem | None, *key: str) -> None:
        """Spend one unit of ``key``'s budget; ``RateLimitedError`` when none is left."""
        if item is not None and not await self._hit(item, key):
            await self._refuse(item, key, f"too many attempts ({item}); try again later")

    async def refuse_if_spent(self, item: RateLimitItem | None, *key: str) -> None:
        """``RateLimitedError`` if ``key``'s budget is spent; spends nothing."""
        if item is not None and not await self._call(self._counters.test, item, key, True):
            await self._refuse(item, key, f"too many attempts ({item}); try again later")

    async def count(self, item: RateLimitItem | None, *key: str) -> None:
        """Spend one unit of ``key``'s budget (a failure counted, say), refused or not."""
        if item is not None:
            await self._hit(item, key)

    async def forget(self, item: RateLimitItem | None, *key: str) -> None:
        """Reset ``key``'s counter."""
        if item is not None:
            await self._call(self._counters.clear, item, key, None)

    async def close(self) -> None:
        """Close the connections to the counters' store."""
        if self._connections is not None:
            await self._connections.disconnect()

    async def _hit(self, item: RateLimitItem, key: tuple[str, ...]) -> bool:
        return bool(await self._call(self._counters.hit, item, key, True))

    async def _refuse(self, item: RateLimitItem, key: tuple[str, ...], message: str) -> NoReturn:
        stats = await self._call(self._counters.get_window_stats, item, key, None)
        wait = stats.reset_time - time.time() if stats else item.get_expiry()
        raise RateLimitedError(message, retry_after=max(1, math.ceil(wait)))

    async def _call(
        self, method: Any, item: RateLimitItem, key: tuple[str, ...], failed: Any
    ) -> Any:
        try:
            return await method(item, *key)
        except StorageError as exc:
            log.warning("ratelimit.storage_unavailable", error=str(exc.storage_error))
            return failed


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter for ``settings``: counters in Redis when there is one, else in memory."""
    if not settings.redis_url:
        return RateLimiter(settings, InProcessCounters())
    pool = redis.asyncio.ConnectionPool.from_url(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    # limits' signature types its pass-through options as scalars; a pool goes through too.
    options: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"async+{settings.redis_url}",
        implementation="redispy",
        key_prefix=REDIS_KEY_PREFIX,
        wrap_exceptions=True,
        **options,
    )
    return RateLimiter(settings, SlidingWindowCounterRateLimiter(storage), pool)


def scope_client_ip(scope: Scope) -> str | None:
    """The client's address as the server saw it (``dlp serve`` has already replaced a
    trusted proxy's address with the one it forwarded for, see ``DLP_TRUSTED_PROXIES``)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def is_charged_per_ip(path: str) -> bool:
    """Whether a request to ``path`` spends its IP's general budget on arrival."""
    return path.startswith(CHARGED_PREFIXES) and not path.endswith(PREDICTION_SUFFIXES)


def caller_key(user_id: object, credential: str, *, is_api_key: bool) -> str:
    """Whom a request is charged to: the user behind an access token, else the API key
    (named by a digest: a secret never becomes a counter's name)."""
    if is_api_key:
        return "key:" + hashlib.blake2b(credential.encode(), digest_size=16).hexdigest()
    return f"user:{user_id}"


def rate_limiter(app: Any) -> RateLimiter:
    """The limiter built at start-up for ``app``."""
    limiter: RateLimiter = app.state.rate_limiter
    return limiter


class ApiRateLimitMiddleware:
    """Charges each request to the API to its client IP's general budget before any other
    work, so an unauthenticated flood costs no database lookup. Health, metrics, docs,
    the web UI's pages and static files are free; prediction routes pay their own budget."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_charged_per_ip(scope["path"]):
            limiter = rate_limiter(self.api)
            try:
                await limiter.spend(limiter.api, ip=scope_client_ip(scope))
            except RateLimitedError as exc:
                handler: Any = self.api.exception_handlers[DLPError]
                response = await handler(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

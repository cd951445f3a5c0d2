"""The job-event bus: workers publish a job's events, API processes follow them live.

Live events only make streams fast; the database stays the truth. Publishing is
best effort and never raises, and a follower that misses a message (or runs on
the embedded shape, which has no broker) catches up from the database every
``catch_up_seconds`` (see ``dlp.events.stream``).
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import anyio
import redis
import redis.asyncio
import structlog

from dlp.config import Settings

log = structlog.get_logger(__name__)

REDIS_CATCH_UP_SECONDS = 5.0
DATABASE_CATCH_UP_SECONDS = 0.5
REDIS_TIMEOUT_SECONDS = 2.0
ITERATION_POLL_SECONDS = 1.0


def channel_name(job_id: uuid.UUID) -> str:
    """The pub/sub channel of one job's events."""
    return f"dlp:jobs:{job_id}:events"


class Subscription(AsyncIterator[dict[str, Any]], ABC):
    """Live events of one job published after the subscription started.

    Iterate it, or call ``receive`` to wait at most a given time. Once ``ended``
    (closed, connection lost, or a bus with no live channel), no event arrives any
    more: iteration stops and ``receive`` just waits out its timeout.
    """

    @property
    @abstractmethod
    def ended(self) -> bool:
        """True once no further live event can arrive."""

    @abstractmethod
    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next live event, or None when none arrived within ``timeout`` seconds."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop listening and release the connection (never raises)."""

    def __aiter__(self) -> Subscription:
        """The subscription is its own iterator."""
        return self

    async def __anext__(self) -> dict[str, Any]:
        """The next live event; stops once the subscription ended."""
        while not self.ended:
            event = await self.receive(ITERATION_POLL_SECONDS)
            if event is not None:
                return event
        raise StopAsyncIteration


class JobEvents(ABC):
    """Carries job events from publishers (workers, API) to followers (event streams)."""

    catch_up_seconds: float
    """How often a follower re-reads the database, in case a live event was lost."""

    @abstractmethod
    def publish(self, job_id: uuid.UUID, event: dict[str, Any]) -> None:
        """Send ``event`` to the job's followers; best effort: logs a warning, never raises."""

    @abstractmethod
    async def follow(self, job_id: uuid.UUID) -> Subscription:
        """Subscribe to the job's live events; events published after this returns arrive."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def check(self) -> None:  # noqa: B027 - most buses have nothing to check
        """Raise unless the bus's broker answers (for ``/ready``); none by default."""


class DatabaseJobEvents(JobEvents):
    """The embedded shape: no broker links the worker process to the API.

    Publishing does nothing and following yields nothing; streams find every
    event by re-reading the database often.
    """

    def __init__(self, *, catch_up_seconds: float = DATABASE_CATCH_UP_SECONDS) -> None:
        self.catch_up_seconds = catch_up_seconds

    def publish(self, job_id: uuid.UUID, event: dict[str, Any]) -> None:
        """Nothing to do: followers read the database."""

    async def follow(self, job_id: uuid.UUID) -> Subscription:
        """A subscription on which nothing ever arrives."""
        return NoLiveEvents()

    def close(self) -> None:
        """Nothing to release."""


class RedisJobEvents(JobEvents):
    """Scale-out: events as JSON on the Redis pub/sub channel ``dlp:jobs:{id}:events``."""

    def __init__(self, url: str, *, catch_up_seconds: float = REDIS_CATCH_UP_SECONDS) -> None:
        self.url = url
        self.catch_up_seconds = catch_up_seconds
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )

    def publish(self, job_id: uuid.UUID, event: dict[str, Any]) -> None:
        """Publish ``event`` as JSON; a failure is logged and otherwise ignored."""
        try:
            self._client.publish(channel_name(job_id), json.dumps(event))
        # Best effort by contract: whatever goes wrong (Redis down, an event that
        # is not JSON), training must go on; followers catch up from the database.
        except Exception as exc:
            log.warning(
                "job_events.publish_failed",
                job_id=str(job_id),
                event_type=event.get("type") if isinstance(event, dict) else None,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def follow(self, job_id: uuid.UUID) -> Subscription:
        """Subscribe and wait for Redis to confirm; if Redis fails, a quiet subscription."""
        # One client per follower: a subscriber holds a connection of its own
        # anyway, and the client then lives and dies in the follower's event loop.
        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel_name(job_id))
            # The confirmation means Redis registered the subscription, so every
            # event published from now on reaches it.
            await pubsub.get_message(timeout=REDIS_TIMEOUT_SECONDS)
        except (redis.RedisError, OSError) as exc:
            log.warning("job_events.follow_failed", job_id=str(job_id), error=str(exc))
            await _close_quietly(client, pubsub)
            return NoLiveEvents()
        return RedisSubscription(client, pubsub, job_id)

    def check(self) -> None:
        """Raise unless Redis answers a PING."""
        self._client.ping()

    def close(self) -> None:
        """Close the publishing connection pool."""
        self._client.close()


class NoLiveEvents(Subscription):
    """A subscription on which nothing arrives: the embedded shape, or Redis unreachable."""

    @property
    def ended(self) -> bool:
        """Always: nothing will ever arrive."""
        return True

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """Wait out ``timeout`` and report that nothing came."""
        await anyio.sleep(timeout)
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisSubscription(Subscription):
    """Messages of one job's Redis channel, decoded from JSON."""

    def __init__(
        self, client: redis.asyncio.Redis, pubsub: redis.asyncio.client.PubSub, job_id: uuid.UUID
    ) -> None:
        self._client = client
        self._pubsub = pubsub
        self._job_id = job_id
        self._ended = False

    @property
    def ended(self) -> bool:
        """True once closed or disconnected."""
        return self._ended

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next decodable event on the channel, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = await self._pubsub.get_message(timeout=remaining)
            except (redis.RedisError, OSError) as exc:
                # Streams keep catching up from the database; losing the live
                # channel only makes them slower.
                log.warning(
                    "job_events.subscription_lost", job_id=str(self._job_id), error=str(exc)
                )
                await self.aclose()
                break
            if message is None or message.get("type") != "message":
                continue
            event = _decode(message["data"], self._job_id)
            if event is not None:
                return event
        await anyio.sleep(max(0.0, deadline - time.monotonic()))
        return None

    async def aclose(self) -> None:
        """Unsubscribe and close the connection."""
        if self._ended:
            return
        self._ended = True
        await _close_quietly(self._client, self._pubsub)


def create_job_events(settings: Settings) -> JobEvents:
    """Redis pub/sub when ``DLP_REDIS_URL`` is set, else the database-only bus."""
    if settings.redis_url:
        return RedisJobEvents(settings.redis_url)
    return DatabaseJobEvents()


def _decode(data: bytes | str, job_id: uuid.UUID) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        log.warning("job_events.undecodable", job_id=str(job_id))
        return None
    return event


async def _close_quietly(client: redis.asyncio.Redis, pubsub: redis.asyncio.client.PubSub) -> None:
    # Shielded: closing often happens while the follower is being cancelled.
    with anyio.CancelScope(shield=True):
        try:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await client.aclose()
        except (redis.RedisError, OSError) as exc:
            log.warning("job_events.close_failed", error=str(exc))

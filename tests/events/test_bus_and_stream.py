"""The event bus backends, the stream's deduplication and gap filling, and SSE keep-alives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from dlp.auth import service as auth_service
from dlp.auth.schemas import RegisterRequest
from dlp.auth.service import Principal
from dlp.config import Settings
from dlp.db import session_scope, utcnow
from dlp.events.bus import DatabaseJobEvents, JobEvents, RedisJobEvents, Subscription
from dlp.events.delivery import KEEP_ALIVE_FRAME, sse_frames
from dlp.events.payloads import log_event, metric_event, status_event
from dlp.events.stream import job_event_stream
from dlp.migrate import upgrade_database
from dlp.platform import Platform, build_platform
from dlp.training import repository
from dlp.training.models import JobMetric, TrainingJob
from tests.conftest import REDIS_URL

Step = Callable[[], dict[str, Any] | None]


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("set DLP_TEST_REDIS_URL to test the Redis event bus")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL}: {exc}")
    return REDIS_URL


def test_redis_bus_delivers_published_events_to_followers(redis_url: str) -> None:
    job_id = uuid.uuid4()
    bus = RedisJobEvents(redis_url)
    events = [log_event("epoch 1 started"), {"type": "metric", "id": 7, "value": 0.5}]

    async def follow() -> list[dict[str, Any]]:
        subscription = await bus.follow(job_id)
        assert not subscription.ended
        assert await subscription.receive(0.05) is None
        bus.publish(uuid.uuid4(), log_event("another job's event"))
        for event in events:
            bus.publish(job_id, event)
        received = [await anext(subscription) for _ in events]
        await subscription.aclose()
        assert subscription.ended
        assert [event async for event in subscription] == []
        return received

    try:
        assert asyncio.run(follow()) == events
    finally:
        bus.close()


def test_redis_bus_is_best_effort_when_redis_is_down() -> None:
    bus = RedisJobEvents("redis://127.0.0.1:1/0")
    with capture_logs() as logs:
        bus.publish(uuid.uuid4(), log_event("nobody hears this"))
        bus.publish(uuid.uuid4(), {"type": "log", "message": object()})
        subscription = asyncio.run(bus.follow(uuid.uuid4()))
    assert subscription.ended
    assert [entry["event"] for entry in logs] == [
        "job_events.publish_failed",
        "job_events.publish_failed",
        "job_events.follow_failed",
    ]
    assert all(entry["log_level"] == "warning" for entry in logs)
    bus.close()


def test_database_bus_carries_nothing() -> None:
    bus = DatabaseJobEvents()
    bus.publish(uuid.uuid4(), log_event("dropped"))

    async def follow() -> tuple[bool, dict[str, Any] | None, list[dict[str, Any]]]:
        subscription = await bus.follow(uuid.uuid4())
        return subscription.ended, await subscription.receive(0.01), [e async for e in subscription]

    assert asyncio.run(follow()) == (True, None, [])
    assert bus.catch_up_seconds == 0.5
    assert RedisJobEvents("redis://127.0.0.1:1/0").catch_up_seconds == 5.0


class ScriptedSubscription(Subscription):
    """Live events from a script: each step may change the database, then returns an event."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.closed = False

    @property
    def ended(self) -> bool:
        return self.closed

    async def receive(self, timeout: float) -> dict[str, Any] | None:
        if not self.steps:
            await asyncio.sleep(timeout)
            return None
        return self.steps.pop(0)()

    async def aclose(self) -> None:
        self.closed = True


class ScriptedJobEvents(JobEvents):
    """A bus whose one follower plays a script (no periodic catch-up within the test)."""

    catch_up_seconds = 60.0

    def __init__(self, steps: list[Step]) -> None:
        self.subscription = ScriptedSubscription(steps)

    def publish(self, job_id: uuid.UUID, event: dict[str, Any]) -> None:
        raise AssertionError("the stream never publishes")

    async def follow(self, job_id: uuid.UUID) -> Subscription:
        return self.subscription

    def close(self) -> None:
        pass


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings.sqlalchemy_url)
    built = build_platform(settings)
    yield built
    built.close()


def _register(platform: Platform) -> Principal:
    with session_scope(platform.sessions) as session:
        return auth_service.register(
            session,
            RegisterRequest(username="streamer", email="s@example.com", password="x" * 12),
        )


def test_stream_drops_duplicate_metrics_and_fills_lost_ones_from_the_database(
    platform: Platform,
) -> None:
    principal = _register(platform)
    with session_scope(platform.sessions) as session:
        job = repository.add(
            session,
            TrainingJob(
                organization_id=principal.organization_id,
                name="scripted",
                status="running",
                config={},
                total_epochs=2,
                started_at=utcnow(),
            ),
        )
        job_id = job.id

    def add_metrics(epoch: int, *names: str) -> list[dict[str, Any]]:
        rows = [JobMetric(job_id=job_id, epoch=epoch, step=epoch, name=n, value=0.5) for n in names]
        with session_scope(platform.sessions) as session:
            repository.add_metrics(session, rows)
            return [metric_event(row) for row in rows]

    def finish() -> dict[str, Any]:
        with session_scope(platform.sessions) as session:
            job = repository.get_for_worker(session, job_id)
            assert job is not None
            job.status, job.completed_at, job.progress_epoch = "succeeded", utcnow(), 2
            job.metrics = {"val_loss": 0.25}
            session.flush()
            return status_event(job)

    m1, m2 = add_metrics(1, "train_loss", "val_loss")
    later: dict[str, list[dict[str, Any]]] = {}
    log = log_event("hello")

    def second_epoch_with_lost_messages() -> dict[str, Any]:
        later["epoch2"] = add_metrics(2, "train_loss", "val_loss", "val_accuracy")
        return later["epoch2"][-1]  # the first two were never delivered live

    def finish_with_a_last_metric() -> dict[str, Any]:
        later["last"] = add_metrics(2, "val_f1")
        return finish()

    platform.events = bus = ScriptedJobEvents(
        [
            lambda: m1,  # repeats the snapshot
            lambda: log,
            second_epoch_with_lost_messages,
            lambda: later["epoch2"][1],  # a late duplicate
            lambda: None,  # a quiet interval
            finish_with_a_last_metric,
        ]
    )

    async def collect() -> list[dict[str, Any]]:
        return [event async for event in job_event_stream(platform, principal, job_id)]

    events = asyncio.run(collect())
    kinds = [(e["type"], e.get("status") or e.get("name") or e.get("message")) for e in events]
    assert kinds == [
        ("status", "running"),
        ("metric", "train_loss"),
        ("metric", "val_loss"),
        ("log", "hello"),
        ("metric", "train_loss"),
        ("metric", "val_loss"),
        ("metric", "val_accuracy"),
        ("metric", "val_f1"),
        ("status", "succeeded"),
    ]
    assert events[1:3] == [m1, m2]
    assert events[4:7] == later["epoch2"] and events[7:8] == later["last"]
    assert events[-1]["metrics"] == {"val_loss": 0.25}
    assert bus.subscription.closed


def test_stream_refuses_another_organizations_job(platform: Platform) -> None:
    from dlp.errors import NotFoundError

    principal = _register(platform)
    platform.events = DatabaseJobEvents()

    async def first() -> dict[str, Any]:
        return await anext(job_event_stream(platform, principal, uuid.uuid4()))

    with pytest.raises(NotFoundError):
        asyncio.run(first())


def test_sse_frames_send_keep_alives_during_silence() -> None:
    async def slow_events() -> AsyncGenerator[dict[str, Any]]:
        await asyncio.sleep(0.35)
        yield {"type": "status", "status": "succeeded"}

    async def collect() -> list[bytes]:
        frames = sse_frames(
            {"type": "status", "status": "running"}, slow_events(), keep_alive_seconds=0.1
        )
        return [frame async for frame in frames]

    frames = asyncio.run(collect())
    assert frames[0] == b'event: status\ndata: {"type":"status","status":"running"}\n\n'
    assert frames[-1] == b'event: status\ndata: {"type":"status","status":"succeeded"}\n\n'
    assert KEEP_ALIVE_FRAME == b": keep-alive\n\n"
    assert (
        2 <= frames.count(KEEP_ALIVE_FRAME) <= 4
        and len(frames) == frames.count(KEEP_ALIVE_FRAME) + 2
    )


def test_sse_frames_close_the_stream_when_abandoned() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[dict[str, Any]]:
        try:
            while True:
                await asyncio.sleep(10)
                yield {"type": "log", "message": "never"}
        finally:
            closed.set()

    async def abandon() -> None:
        frames = sse_frames(
            {"type": "status", "status": "running"}, endless(), keep_alive_seconds=0.05
        )
        assert (await anext(frames)).startswith(b"event: status")
        assert await anext(frames) == KEEP_ALIVE_FRAME
        await frames.aclose()
        assert closed.is_set()

    asyncio.run(abandon())

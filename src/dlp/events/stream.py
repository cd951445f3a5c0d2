"""One job's event stream: a database snapshot, then live events, with nothing lost.

The stream subscribes before it reads the database, so every event is either in
the snapshot or arrives live. Live events may be lost (Redis is best effort) or
never exist (the embedded shape), so the stream also re-reads the database every
``catch_up_seconds`` of its bus, and before it passes on a live metric or status
event, so a lost message is filled in from the database first. Metric events
are deduplicated by their row id: a job's metric rows are written one epoch at a
time by the one worker holding the job, so row ids grow in the order events happen.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from dlp.auth.service import Principal
from dlp.db import session_scope
from dlp.errors import NotFoundError
from dlp.events.payloads import (
    LOG,
    METRIC,
    STATUS,
    is_terminal,
    metric_event,
    status_event,
)
from dlp.platform import Platform
from dlp.training import repository
from dlp.training import service as training_service


async def job_event_stream(
    platform: Platform, principal: Principal, job_id: uuid.UUID
) -> AsyncGenerator[dict[str, Any]]:
    """The job's events, from its current state to its terminal status event.

    The first step checks that the job is the principal's organization's and
    raises ``NotFoundError`` otherwise: callers await the first event before they
    start a response, so a missing job is a 404 rather than a broken stream.
    The first events are a snapshot: a ``status`` event and every metric so far
    (for an ended job, the metrics first: a terminal status is always the last
    event). Then come status changes, new metrics and log lines as they happen.
    """
    await run_in_threadpool(_check_access, platform.sessions, principal, job_id)
    bus = platform.events
    subscription = await bus.follow(job_id)
    try:
        cursor = _Cursor()
        next_catch_up = 0.0
        live: dict[str, Any] | None = None
        while True:
            if live is None or cursor.needs_catch_up(live) or time.monotonic() >= next_catch_up:
                state = await run_in_threadpool(
                    _read_since, platform.sessions, principal, job_id, cursor.last_metric_id
                )
                if state is None:  # the job was deleted while we watched
                    return
                for event in cursor.catch_up(*state):
                    yield event
                next_catch_up = time.monotonic() + bus.catch_up_seconds
            if live is not None and not cursor.finished:
                for event in cursor.accept_live(live):
                    yield event
            if cursor.finished:
                return
            live = await subscription.receive(max(0.0, next_catch_up - time.monotonic()))
    finally:
        # Shielded: the stream is often closed because its reader was cancelled.
        with anyio.CancelScope(shield=True):
            await subscription.aclose()


@dataclass
class _Cursor:
    """What the stream already sent: the last metric row id and the last status."""

    last_metric_id: int = 0
    last_status: str | None = None
    finished: bool = False

    def needs_catch_up(self, live: dict[str, Any]) -> bool:
        """True for a live event that may have overtaken events lost before it."""
        if live.get("type") == METRIC:
            return _metric_id(live) > self.last_metric_id
        if live.get("type") == STATUS:
            return live.get("status") != self.last_status
        return False

    def catch_up(
        self, status: dict[str, Any], metrics: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """The database's news: a changed status, then new metrics; a terminal status last."""
        terminal = is_terminal(status)
        if not terminal:
            yield from self._status(status)
        for event in metrics:
            yield from self._metric(event)
        if terminal:
            yield from self._status(status)

    def accept_live(self, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """A live event unless it repeats one already sent."""
        kind = event.get("type")
        if kind == METRIC:
            yield from self._metric(event)
        elif kind == STATUS:
            yield from self._status(event)
        elif kind == LOG:
            yield event

    def _metric(self, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
        metric_id = _metric_id(event)
        if metric_id > self.last_metric_id:
            self.last_metric_id = metric_id
            yield event

    def _status(self, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if event.get("status") != self.last_status:
            self.last_status = event.get("status")
            self.finished = is_terminal(event)
            yield event


def _metric_id(event: dict[str, Any]) -> int:
    metric_id = event.get("id")
    return metric_id if isinstance(metric_id, int) else 0


def _check_access(sessions: sessionmaker[Session], principal: Principal, job_id: uuid.UUID) -> None:
    with session_scope(sessions) as session:
        training_service.get_job_or_raise(session, principal, job_id)


def _read_since(
    sessions: sessionmaker[Session], principal: Principal, job_id: uuid.UUID, after_id: int
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    # The job before its metrics: metrics committed before a terminal status are
    # then always in the same read, so no metric can follow the terminal event.
    with session_scope(sessions) as session:
        try:
            job = training_service.get_job_or_raise(session, principal, job_id)
        except NotFoundError:
            return None
        status = status_event(job)
        rows = repository.list_metrics_after(session, job_id, after_id)
        return status, [metric_event(row) for row in rows]

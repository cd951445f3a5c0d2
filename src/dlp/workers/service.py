"""Housekeeping every worker does on a timer, and the admins' view of the queues.

Every step is idempotent and safe to run from many workers at once: the reaper's
updates are conditional on the rows it locked, and an extra hint only wakes a
worker that then finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from dlp.db import session_scope
from dlp.events.payloads import log_event, status_event
from dlp.platform import Platform
from dlp.queue import ALL_QUEUES, TRAINING_QUEUE
from dlp.training import lifecycle
from dlp.training import repository as training_repository
from dlp.training.service import RUN_TRAINING_TASK
from dlp.workers import repository
from dlp.workers.models import WorkerRecord
from dlp.workers.schemas import QueueOut, QueuesOverview, RunningJobOut, WorkerOut

log = structlog.get_logger(__name__)
FORGET_WORKERS_AFTER = timedelta(days=7)

# Per queue: the task that takes work from it, and how many jobs wait for it.
WAITING_WORK: dict[str, tuple[str, Callable[[Session, datetime], int]]] = {
    TRAINING_QUEUE: (RUN_TRAINING_TASK, training_repository.count_waiting),
}


@dataclass(frozen=True)
class WorkerIdentity:
    """Who a worker process is, as recorded in the workers table."""

    name: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime


def beat(platform: Platform, identity: WorkerIdentity, now: datetime) -> None:
    """Record this worker as alive, reap jobs of vanished workers, and re-send lost hints."""
    with session_scope(platform.sessions) as session:
        repository.record_heartbeat(
            session,
            WorkerRecord(
                name=identity.name,
                hostname=identity.hostname,
                pid=identity.pid,
                queues=list(identity.queues),
                concurrency=identity.concurrency,
                started_at=identity.started_at,
                last_seen_at=now,
            ),
        )
        repository.forget_workers_seen_before(session, now - FORGET_WORKERS_AFTER)
    take_back_stale_jobs(platform, now)
    for queue in identity.queues:
        resend_missing_hints(platform, queue, now)


def take_back_stale_jobs(platform: Platform, now: datetime) -> int:
    """Re-queue (or end) running jobs whose lease expired; tell their followers."""
    settings = platform.settings
    with session_scope(platform.sessions) as session:
        reaped = lifecycle.reap_stale_jobs(
            session,
            now=now,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
        )
    for job in reaped:
        platform.events.publish(job.id, log_event("its worker vanished; the job was taken back"))
        platform.events.publish(job.id, status_event(job))
    return len(reaped)


def resend_missing_hints(platform: Platform, queue: str, now: datetime) -> int:
    """Top the broker up to one hint per waiting job (a restarted broker lost them all)."""
    if queue not in WAITING_WORK:
        return 0
    task_name, count_waiting = WAITING_WORK[queue]
    with session_scope(platform.sessions) as session:
        waiting = count_waiting(session, now)
    missing = waiting - platform.queue.depth(queue) if waiting else 0
    if missing > 0:
        log.info("queue.hints_resent", queue=queue, count=missing)
        platform.queue.wake(task_name, queue=queue, count=missing)
    return max(missing, 0)


def queues_overview(session: Session, platform: Platform, now: datetime) -> QueuesOverview:
    """Queue depths, workers with their last heartbeat, and the jobs running now."""
    alive_after = now - timedelta(seconds=platform.settings.job_lease_seconds)
    queues = []
    for name in ALL_QUEUES:
        depth: int | None
        try:
            depth = platform.queue.depth(name)
        except Exception as exc:
            log.warning("queue.depth_unavailable", queue=name, error=str(exc))
            depth = None
        waiting = WAITING_WORK[name][1](session, now) if name in WAITING_WORK else 0
        queues.append(QueueOut(name=name, depth=depth, waiting_jobs=waiting))
    workers = [
        WorkerOut(
            name=w.name,
            hostname=w.hostname,
            pid=w.pid,
            queues=w.queues,
            concurrency=w.concurrency,
            started_at=w.started_at,
            last_heartbeat_at=w.last_seen_at,
            alive=w.last_seen_at >= alive_after,
        )
        for w in repository.list_workers(session)
    ]
    running = [
        RunningJobOut(
            id=job.id,
            name=job.name,
            organization_id=job.organization_id,
            queue=TRAINING_QUEUE,
            priority=job.priority,
            worker=job.worker,
            attempts=job.attempts,
            started_at=job.started_at,
            heartbeat_at=job.heartbeat_at,
            epoch=job.progress_epoch,
            total_epochs=job.total_epochs,
        )
        for job in training_repository.list_running(session)
    ]
    return QueuesOverview(queues=queues, workers=workers, running_jobs=running)

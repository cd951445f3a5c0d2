"""Housekeeping every worker does on a timer, and the admins' view of the queues.

Every step is idempotent and safe to run from many workers at once: the reaper's
updates are conditional on the rows it locked, and an extra hint only wakes a
worker that then finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from dlp.batch.kind import BATCH_PREDICTIONS
from dlp.db import session_scope
from dlp.jobs import lifecycle
from dlp.jobs import repository as jobs_repository
from dlp.jobs.capacity import Capacity
from dlp.jobs.kind import JobKind
from dlp.platform import Platform
from dlp.queue import ALL_QUEUES
from dlp.training.kind import TRAINING_JOBS
from dlp.tuning.kind import TUNING_TRIALS
from dlp.workers import repository
from dlp.workers.models import WorkerRecord
from dlp.workers.schemas import (
    QueueOut,
    QueuesOverview,
    RunningJobOut,
    WorkerHardwareOut,
    WorkerOut,
)

log = structlog.get_logger(__name__)
FORGET_WORKERS_AFTER = timedelta(days=7)

# Every kind of job a worker claims, by the queue its hints travel on.
JOB_KINDS: dict[str, JobKind[Any]] = {
    kind.queue: kind for kind in (TRAINING_JOBS, TUNING_TRIALS, BATCH_PREDICTIONS)
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
    hardware: dict[str, Any] | None = None


def record_heartbeat(platform: Platform, identity: WorkerIdentity, now: datetime) -> None:
    """Record this worker as alive (and forget workers long gone)."""
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
                hardware=identity.hardware,
            ),
        )
        repository.forget_workers_seen_before(session, now - FORGET_WORKERS_AFTER)


def take_back_stale_jobs(platform: Platform, now: datetime) -> int:
    """Re-queue (or end) running jobs of every kind whose lease expired; tell followers."""
    settings = platform.settings
    total = 0
    for kind in JOB_KINDS.values():
        with session_scope(platform.sessions) as session:
            reaped = lifecycle.reap_stale_jobs(
                session,
                kind,
                now=now,
                lease_seconds=settings.job_lease_seconds,
                max_attempts=settings.job_max_attempts,
            )
        for job in reaped:
            kind.announce(platform.events, job, "its worker vanished; the job was taken back")
        if reaped:
            # The dead attempt's hint may still count as waiting on the broker (unacknowledged),
            # so the top-up would send none: wake a worker for each job taken back.
            platform.queue.wake(kind.task_name, queue=kind.queue, count=len(reaped))
        total += len(reaped)
    return total


def resend_missing_hints(platform: Platform, queue: str, now: datetime) -> int:
    """Top the broker up to one hint per waiting job (a restarted broker lost them all)."""
    kind = JOB_KINDS.get(queue)
    if kind is None:
        return 0
    with session_scope(platform.sessions) as session:
        waiting = jobs_repository.count_waiting(session, kind.table, kind.scope, now)
    missing = waiting - platform.queue.depth(queue) if waiting else 0
    if missing > 0:
        log.info("queue.hints_resent", queue=queue, count=missing)
        platform.queue.wake(kind.task_name, queue=queue, count=missing)
    return max(missing, 0)


def alive_after(now: datetime, lease_seconds: float) -> datetime:
    """The heartbeat a worker must have sent since to count as alive at ``now``."""
    return now - timedelta(seconds=lease_seconds)


def live_capacities(
    session: Session, *, now: datetime, lease_seconds: float
) -> dict[str, list[tuple[str, Capacity | None]]]:
    """The live workers of each queue, each with what one of its jobs may use (None for
    a worker of an older release, which does not say), from one query."""
    by_queue: dict[str, list[tuple[str, Capacity | None]]] = {}
    for worker in repository.list_workers_seen_since(session, alive_after(now, lease_seconds)):
        for queue in worker.queues:
            by_queue.setdefault(queue, []).append((worker.name, _job_capacity(worker)))
    return by_queue


def _job_capacity(worker: WorkerRecord) -> Capacity | None:
    job_devices = (worker.hardware or {}).get("job_devices")
    return Capacity.from_job_devices(job_devices) if isinstance(job_devices, dict) else None


@dataclass(frozen=True)
class PlatformSnapshot:
    """What the API's ``/metrics`` reads from the database and the broker at scrape time."""

    jobs: dict[tuple[str, str], int]
    """Jobs by (queue of their kind, status)."""
    queue_depths: dict[str, int | None]
    """Hints waiting on each queue; None where the broker did not answer."""
    heartbeat_ages: dict[str, float]
    """Seconds since each worker seen lately last heartbeated."""
    live_workers: int


def platform_snapshot(session: Session, platform: Platform, now: datetime) -> PlatformSnapshot:
    """Jobs by kind and status, queue depths, and each worker's heartbeat age."""
    jobs = {
        (queue, status): count
        for queue, kind in JOB_KINDS.items()
        for status, count in jobs_repository.count_by_status(
            session, kind.table, kind.scope
        ).items()
    }
    seen_after = alive_after(now, platform.settings.job_lease_seconds)
    workers = repository.list_workers(session)
    return PlatformSnapshot(
        jobs=jobs,
        queue_depths={name: _depth_or_none(platform, name) for name in ALL_QUEUES},
        heartbeat_ages={w.name: (now - w.last_seen_at).total_seconds() for w in workers},
        live_workers=sum(w.last_seen_at >= seen_after for w in workers),
    )


def _depth_or_none(platform: Platform, queue: str) -> int | None:
    try:
        return platform.queue.depth(queue)
    except Exception as exc:
        log.warning("queue.depth_unavailable", queue=queue, error=str(exc))
        return None


def worker_health(
    session: Session,
    *,
    now: datetime,
    lease_seconds: float,
    hostname: str,
    name: str | None = None,
) -> tuple[bool, str]:
    """Whether the worker called ``name`` (default: any worker on ``hostname``) has
    heartbeated within the lease, and a sentence that says which and when."""
    if name is not None:
        subject = f"worker {name}"
        workers = [w for w in repository.list_workers(session) if w.name == name]
    else:
        subject = f"any worker on {hostname}"
        workers = [w for w in repository.list_workers(session) if w.hostname == hostname]
    if not workers:
        return False, f"no heartbeat recorded for {subject}"
    newest = workers[0]  # most recently seen first
    age = (now - newest.last_seen_at).total_seconds()
    if newest.last_seen_at >= alive_after(now, lease_seconds):
        return True, f"{newest.name} heartbeated {age:.1f}s ago"
    return False, (
        f"{subject}: last heartbeat {age:.1f}s ago, from {newest.name} (lease {lease_seconds:g}s)"
    )


def queues_overview(session: Session, platform: Platform, now: datetime) -> QueuesOverview:
    """Queue depths, workers with their last heartbeat, and the jobs running now."""
    seen_after = alive_after(now, platform.settings.job_lease_seconds)
    queues = []
    for name in ALL_QUEUES:
        depth = _depth_or_none(platform, name)
        kind = JOB_KINDS.get(name)
        waiting = jobs_repository.count_waiting(session, kind.table, kind.scope, now) if kind else 0
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
            alive=w.last_seen_at >= seen_after,
            hardware=WorkerHardwareOut.model_validate(w.hardware) if w.hardware else None,
        )
        for w in repository.list_workers(session)
    ]
    running = [
        RunningJobOut(
            id=job.id,
            kind=kind.label,
            name=job.name,
            organization_id=job.organization_id,
            queue=kind.queue,
            priority=job.priority,
            worker=job.worker,
            attempts=job.attempts,
            started_at=job.started_at,
            heartbeat_at=job.heartbeat_at,
            progress=kind.progress(job),
        )
        for kind in JOB_KINDS.values()
        for job in jobs_repository.list_running(session, kind.table, kind.scope)
    ]
    return QueuesOverview(queues=queues, workers=workers, running_jobs=running)

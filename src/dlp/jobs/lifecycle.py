"""How a job moves between states outside the happy path: it ends, it waits for a retry,
or the reaper takes it back from a worker that vanished."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from dlp.jobs import repository
from dlp.jobs.kind import J, JobKind

log = structlog.get_logger(__name__)
MAX_RETRY_DELAY_SECONDS = 300.0


def end_job(kind: JobKind[J], job: J, status: str, error: str | None, now: datetime) -> None:
    """Give the job its terminal status, release its lease and run the kind's end hook."""
    job.status = status
    job.error_message = error
    job.completed_at = now
    job.lease_token = None
    job.heartbeat_at = None
    job.run_after = None
    kind.on_end(job, now)


def requeue_job(job: J, *, run_after: datetime | None) -> None:
    """Put a running job back in the queue for its next attempt."""
    job.status = "queued"
    job.worker = None
    job.lease_token = None
    job.heartbeat_at = None
    job.run_after = run_after


def retry_delay(attempts: int, base_seconds: float) -> float:
    """Exponential backoff after ``attempts`` tries: base, 2x base, 4x base... up to 5 min."""
    return float(min(base_seconds * 2 ** max(0, attempts - 1), MAX_RETRY_DELAY_SECONDS))


def retry_or_fail(
    kind: JobKind[J],
    job: J,
    reason: str,
    *,
    now: datetime,
    max_attempts: int,
    backoff_seconds: float,
) -> bool:
    """After a transient fault: re-queue with backoff while tries remain, else fail.

    Returns True when the job will run again.
    """
    if job.cancel_requested:
        end_job(kind, job, "cancelled", None, now)
        return False
    if job.attempts >= max_attempts:
        end_job(kind, job, "failed", f"gave up after {job.attempts} attempts: {reason}", now)
        return False
    delay = retry_delay(job.attempts, backoff_seconds)
    requeue_job(job, run_after=now + timedelta(seconds=delay))
    return True


def reap_stale_jobs(
    session: Session,
    kind: JobKind[J],
    *,
    now: datetime,
    lease_seconds: float,
    max_attempts: int,
) -> list[J]:
    """Take back running jobs whose worker stopped renewing their lease.

    Each is re-queued for another attempt, or ends (cancelled if that was asked,
    failed once it has lost ``max_attempts`` workers). Returns the jobs touched.
    """
    stale = repository.list_stale_running(
        session, kind.table, kind.scope, now - timedelta(seconds=lease_seconds)
    )
    for job in stale:
        reason = f"worker {job.worker} stopped renewing the job's lease"
        log.warning(
            "job.reaped",
            kind=kind.label,
            job_id=str(job.id),
            worker=job.worker,
            attempts=job.attempts,
        )
        if job.cancel_requested:
            end_job(kind, job, "cancelled", None, now)
        elif job.attempts >= max_attempts:
            end_job(kind, job, "failed", f"{reason}; gave up after {job.attempts} attempts", now)
        else:
            requeue_job(job, run_after=None)
    return stale

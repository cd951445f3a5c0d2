"""A worker's attempt at one job of any kind: claim it under a lease, run the kind's work,
and turn whatever happened into the job's next state.

Each step runs in its own short transaction, so the API sees progress while the job
runs, and a crash leaves the job in the last state it reached. Every write after the
claim is conditional on still holding the lease. Every log line written while the job
runs carries its ``job_id``, ``org_id``, ``user_id`` (who submitted it) and, when the
hint that woke the worker names this job, the submitting ``request_id``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import structlog
from sqlalchemy.orm import Session

from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.faults import is_transient
from dlp.jobs import lifecycle, repository
from dlp.jobs.capacity import Capacity, local_capacity
from dlp.jobs.kind import J, JobKind
from dlp.jobs.lease import Lease, LeaseLostError
from dlp.jobs.metrics import job_metrics
from dlp.platform import Platform
from dlp.queue import JobHint

log = structlog.get_logger(__name__)
MAX_ERROR_LENGTH = 500
# Recording a retry needs the database, which may be the very thing that is away.
RECORD_RETRY_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0)


class JobCancelled(Exception):  # noqa: N818 - the name of the state the job ends in
    """The job's owner asked it to stop: it ends ``cancelled`` (the message, if any, says why)."""


def run_next_job(
    platform: Platform,
    kind: JobKind[J],
    *,
    worker: str,
    work: Callable[[Lease[J]], None],
    capacity: Capacity | None = None,
    hint: JobHint | None = None,
) -> uuid.UUID | None:
    """Claim the best waiting job of ``kind`` that fits ``capacity`` (default: this
    machine's cores, no GPU) and run ``work`` on it; ``hint`` is the message that woke
    the worker (it may name the submitting request).

    ``work`` gives the job its terminal status when it succeeds; a
    ``JobCancelled``, a ``DLPError`` (the user's problem) or a crash ends it
    here, and a transient fault re-queues it with backoff.
    Returns the job's id; None when none was waiting. Traced as the hint's handling
    (see ``dlp.ops.tracing``).
    """
    trace_headers = hint.trace_headers if hint is not None else {}
    with platform.tracing.taking_hint(kind.queue, trace_headers):
        return _claim_and_run(platform, kind, worker, work, capacity, hint)


def _claim_and_run(
    platform: Platform,
    kind: JobKind[J],
    worker: str,
    work: Callable[[Lease[J]], None],
    capacity: Capacity | None,
    hint: JobHint | None,
) -> uuid.UUID | None:
    token = uuid.uuid4()
    with session_scope(platform.sessions) as session:
        job_id = repository.claim_next(
            session,
            kind.table,
            kind.scope,
            worker=worker,
            lease_token=token,
            now=utcnow(),
            eligible=kind.fits(capacity or local_capacity()),
        )
        context = _log_context(session, kind, job_id, hint) if job_id is not None else {}
    if job_id is None:
        log.info("job.nothing_waiting", kind=kind.label, worker=worker)
        return None
    lease = Lease(
        platform.sessions, kind, job_id, token, interval=platform.settings.job_heartbeat_seconds
    )
    metrics = job_metrics()
    running = metrics.running.labels(kind.queue)
    running.inc()
    outcome = "failed"
    sent_for_it = hint is not None and hint.names(job_id)
    try:
        with (
            platform.tracing.running_job(kind.queue, job_id, sent_for_it=sent_for_it),
            structlog.contextvars.bound_contextvars(**context),
            lease,
        ):
            outcome = _run_claimed(platform, lease, worker, work)
    finally:
        running.dec()
        metrics.jobs.labels(kind.queue, outcome).inc()
    return job_id


def _log_context(
    session: Session, kind: JobKind[J], job_id: uuid.UUID, hint: JobHint | None
) -> dict[str, str]:
    """The fields every log line of the claimed job carries."""
    context = {"job_id": str(job_id)}
    job = repository.get(session, kind.table, job_id)
    if job is not None:
        context["org_id"] = str(job.organization_id)
        # Every table of jobs records who submitted them; the shared mixin does not say so.
        submitter: uuid.UUID | None = getattr(job, "created_by", None)
        if submitter is not None:
            context["user_id"] = str(submitter)
    request_id = hint.request_id_for(job_id) if hint is not None else None
    if request_id is not None:
        context["request_id"] = request_id
    return context


def _run_claimed(
    platform: Platform, lease: Lease[J], worker: str, work: Callable[[Lease[J]], None]
) -> str:
    """Run ``work`` and settle the job; the attempt's outcome, for the worker's metrics."""
    logger = log.bind(kind=lease.kind.label, worker=worker)
    try:
        work(lease)
    except LeaseLostError:
        logger.warning("job.abandoned", reason="the job's lease moved to another attempt")
        return "abandoned"
    except JobCancelled as exc:
        _finish(platform, lease, "cancelled", str(exc) or None)
        logger.info("job.cancelled")
        return "cancelled"
    except DLPError as exc:
        _finish(platform, lease, "failed", exc.message)
        logger.info("job.failed", error=exc.message)
        return "failed"
    except Exception as exc:
        if is_transient(exc):
            logger.warning("job.transient_fault", error=_first_line(exc))
            _retry_or_fail(platform, lease, _first_line(exc))
            return "retried"
        logger.exception("job.crashed")
        _finish(platform, lease, "failed", f"internal error: {_first_line(exc)}"[:MAX_ERROR_LENGTH])
        return "failed"
    return "finished"


def _finish(platform: Platform, lease: Lease[J], status: str, error: str | None) -> None:
    """Give the job its terminal status, if this attempt still holds it, and announce it."""
    kind = lease.kind
    try:
        with session_scope(platform.sessions) as session:
            job = lease.load(session)
            lifecycle.end_job(kind, job, status, error, utcnow())
    except LeaseLostError:
        log.warning("job.end_refused", kind=kind.label, job_id=str(lease.job_id), status=status)
        return
    kind.announce(platform.events, job, None)


def _retry_or_fail(platform: Platform, lease: Lease[J], reason: str) -> None:
    """Re-queue the job with backoff (or fail it after its last try), retrying the write
    itself while the fault lasts; if it never gets through, the lease expires and the
    reaper re-queues the job instead."""
    settings = platform.settings
    kind = lease.kind
    for delay in RECORD_RETRY_DELAYS:
        time.sleep(delay)
        try:
            with session_scope(platform.sessions) as session:
                job = lease.load(session)
                again = lifecycle.retry_or_fail(
                    kind,
                    job,
                    f"transient fault: {reason}",
                    now=utcnow(),
                    max_attempts=settings.job_max_attempts,
                    backoff_seconds=settings.job_retry_backoff_seconds,
                )
            message = f"transient fault ({reason}); retrying at {job.run_after}" if again else None
            kind.announce(platform.events, job, message)
            return
        except LeaseLostError:
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("job.retry_not_recorded", job_id=str(lease.job_id), error=str(exc))
    log.warning("job.left_to_reaper", kind=kind.label, job_id=str(lease.job_id))


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough for an error column."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}".rstrip(": ")[:MAX_ERROR_LENGTH]

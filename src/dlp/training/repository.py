"""Every query on training jobs and their metrics."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from dlp.repository import get_owned, paginate
from dlp.training.models import JobMetric, TrainingJob

ACTIVE_STATUSES = ("queued", "running")


def add(session: Session, job: TrainingJob) -> TrainingJob:
    """Insert a job row."""
    session.add(job)
    session.flush()
    return job


def get(session: Session, *, job_id: uuid.UUID, organization_id: uuid.UUID) -> TrainingJob | None:
    """The organization's job, or None."""
    return get_owned(session, TrainingJob, row_id=job_id, organization_id=organization_id)


def get_for_worker(session: Session, job_id: uuid.UUID) -> TrainingJob | None:
    """Any job by id (the worker acts for the job's organization)."""
    return session.get(TrainingJob, job_id)


def list_page(
    session: Session,
    *,
    organization_id: uuid.UUID,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """The organization's jobs, newest first, optionally of one status."""
    statement = select(TrainingJob).where(TrainingJob.organization_id == organization_id)
    if status is not None:
        statement = statement.where(TrainingJob.status == status)
    statement = statement.order_by(TrainingJob.created_at.desc(), TrainingJob.id)
    return paginate(session, statement, limit=limit, offset=offset)


def count_active_for_dataset(session: Session, dataset_id: uuid.UUID) -> int:
    """How many queued or running jobs train on the dataset."""
    return (
        session.scalar(
            select(func.count())
            .select_from(TrainingJob)
            .where(TrainingJob.dataset_id == dataset_id, TrainingJob.status.in_(ACTIVE_STATUSES))
        )
        or 0
    )


PRIORITY_RANK = case(
    (TrainingJob.priority == "high", 0), (TrainingJob.priority == "normal", 1), else_=2
)


def _waiting(now: datetime) -> ColumnElement[bool]:
    return and_(
        TrainingJob.status == "queued",
        or_(TrainingJob.run_after.is_(None), TrainingJob.run_after <= now),
    )


def claim_next(
    session: Session, *, worker: str, lease_token: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """Move the best waiting job (highest priority, then oldest) to running under a new
    lease; None when no job waits.

    PostgreSQL skips rows another claimer has locked; SQLite serialises writers, and
    the conditional UPDATE lets exactly one of two racing claimers win a row.
    """
    candidates = (
        select(TrainingJob.id)
        .where(_waiting(now))
        .order_by(PRIORITY_RANK, TrainingJob.created_at, TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    while (job_id := session.scalar(candidates)) is not None:
        claimed = session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
            .values(
                status="running",
                worker=worker,
                lease_token=lease_token,
                heartbeat_at=now,
                attempts=TrainingJob.attempts + 1,
                run_after=None,
                started_at=func.coalesce(TrainingJob.started_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount:  # type: ignore[attr-defined]
            return job_id
    return None


def count_waiting(session: Session, now: datetime) -> int:
    """Jobs a worker could claim right now."""
    return session.scalar(select(func.count()).select_from(TrainingJob).where(_waiting(now))) or 0


def cancel_if_queued(session: Session, job_id: uuid.UUID, at: datetime) -> bool:
    """Cancel a job that has not started; False if it already left the queue."""
    # One conditional UPDATE: of two racing callers exactly one sees rowcount 1.
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(status="cancelled", cancel_requested=True, completed_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_lease(session: Session, job_id: uuid.UUID, lease_token: uuid.UUID, now: datetime) -> bool:
    """Record a heartbeat; False when the lease is no longer held (the job moved on)."""
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.lease_token == lease_token,
            TrainingJob.status == "running",
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_leased(session: Session, job_id: uuid.UUID, lease_token: uuid.UUID) -> TrainingJob | None:
    """The running job, row-locked, if ``lease_token`` still holds it; else None."""
    return session.scalar(
        select(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.lease_token == lease_token,
            TrainingJob.status == "running",
        )
        .with_for_update()
    )


def list_stale_running(session: Session, heartbeat_before: datetime) -> list[TrainingJob]:
    """Running jobs whose lease holder stopped renewing it, row-locked."""
    return list(
        session.scalars(
            select(TrainingJob)
            .where(TrainingJob.status == "running", TrainingJob.heartbeat_at < heartbeat_before)
            .with_for_update(skip_locked=True)
        )
    )


def list_running(session: Session) -> list[TrainingJob]:
    """Every running job, of every organization, oldest first."""
    return list(
        session.scalars(
            select(TrainingJob)
            .where(TrainingJob.status == "running")
            .order_by(TrainingJob.started_at)
        )
    )


def add_metrics(session: Session, rows: list[JobMetric]) -> None:
    """Insert metric rows."""
    session.add_all(rows)
    session.flush()


def delete_metrics_after(session: Session, job_id: uuid.UUID, epoch: int) -> None:
    """Forget metrics of epochs after ``epoch`` (a resumed run reports them again)."""
    session.execute(
        delete(JobMetric)
        .where(JobMetric.job_id == job_id, JobMetric.epoch > epoch)
        .execution_options(synchronize_session=False)
    )


def list_metrics(session: Session, job_id: uuid.UUID) -> list[JobMetric]:
    """A job's metrics, oldest first."""
    return list(
        session.scalars(select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.id))
    )


# Live event streams (dlp.events): catching up from the database.


def list_metrics_after(session: Session, job_id: uuid.UUID, after_id: int) -> list[JobMetric]:
    """A job's metrics with a row id above ``after_id``, oldest first."""
    return list(
        session.scalars(
            select(JobMetric)
            .where(JobMetric.job_id == job_id, JobMetric.id > after_id)
            .order_by(JobMetric.id)
        )
    )

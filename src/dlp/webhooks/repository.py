"""Every query of webhook delivery, on the webhook columns of ``training_jobs``.

A pending delivery is due when ``webhook_next_at`` has passed. A worker claims
it with one conditional UPDATE that moves ``webhook_next_at`` forward by a
lease, only if it still holds the value the worker read: of two workers that
read the same row, exactly one sees a row count of 1. The claimed value is the
claim's token; every later write is conditional on it, so a worker whose lease
ran out cannot overwrite the outcome of the worker that took over.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dlp.training.models import TrainingJob

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


def list_due(session: Session, *, now: datetime, limit: int) -> list[TrainingJob]:
    """Pending deliveries whose time has come, oldest first."""
    statement = (
        select(TrainingJob)
        .where(TrainingJob.webhook_status == PENDING, TrainingJob.webhook_next_at <= now)
        .order_by(TrainingJob.webhook_next_at, TrainingJob.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def claim(
    session: Session, job_id: uuid.UUID, *, seen_next_at: datetime, lease_until: datetime
) -> bool:
    """Take a delivery until ``lease_until`` and count the attempt; False if another worker did."""
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.webhook_status == PENDING,
            TrainingJob.webhook_next_at == seen_next_at,
        )
        .values(webhook_next_at=lease_until, webhook_attempts=TrainingJob.webhook_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_claimed(session: Session, job_id: uuid.UUID) -> TrainingJob | None:
    """The job as the database holds it now (not a copy loaded before the claim)."""
    return session.get(TrainingJob, job_id, populate_existing=True)


def _finish(session: Session, job_id: uuid.UUID, claimed_until: datetime, **values: object) -> bool:
    result = session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            TrainingJob.webhook_status == PENDING,
            TrainingJob.webhook_next_at == claimed_until,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_delivered(session: Session, job_id: uuid.UUID, *, claimed_until: datetime) -> bool:
    """Record a delivery the receiver accepted; False if the claim was lost."""
    return _finish(
        session,
        job_id,
        claimed_until,
        webhook_status=DELIVERED,
        webhook_next_at=None,
        webhook_error=None,
    )


def mark_failed(
    session: Session, job_id: uuid.UUID, *, claimed_until: datetime, error: str
) -> bool:
    """Give a delivery up for good; False if the claim was lost."""
    return _finish(
        session,
        job_id,
        claimed_until,
        webhook_status=FAILED,
        webhook_next_at=None,
        webhook_error=error,
    )


def schedule_retry(
    session: Session,
    job_id: uuid.UUID,
    *,
    claimed_until: datetime,
    next_at: datetime,
    error: str,
) -> bool:
    """Try a delivery again at ``next_at``; False if the claim was lost."""
    return _finish(session, job_id, claimed_until, webhook_next_at=next_at, webhook_error=error)

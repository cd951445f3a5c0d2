"""Every query on batch prediction jobs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dlp.batch.models import BatchPrediction
from dlp.jobs.repository import ACTIVE_STATUSES
from dlp.repository import get_owned, paginate


def add(session: Session, job: BatchPrediction) -> BatchPrediction:
    """Insert a job row."""
    session.add(job)
    session.flush()
    return job


def get(
    session: Session, *, job_id: uuid.UUID, organization_id: uuid.UUID
) -> BatchPrediction | None:
    """The organization's job, or None."""
    return get_owned(session, BatchPrediction, row_id=job_id, organization_id=organization_id)


def list_page(
    session: Session,
    *,
    organization_id: uuid.UUID,
    status: str | None,
    model_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """The organization's jobs, newest first, optionally of one status or model."""
    statement = select(BatchPrediction).where(BatchPrediction.organization_id == organization_id)
    if status is not None:
        statement = statement.where(BatchPrediction.status == status)
    if model_id is not None:
        statement = statement.where(BatchPrediction.model_id == model_id)
    statement = statement.order_by(BatchPrediction.created_at.desc(), BatchPrediction.id)
    return paginate(session, statement, limit=limit, offset=offset)


def count_active_for_dataset(session: Session, dataset_id: uuid.UUID) -> int:
    """How many queued or running batch predictions read the dataset."""
    return (
        session.scalar(
            select(func.count())
            .select_from(BatchPrediction)
            .where(
                BatchPrediction.dataset_id == dataset_id,
                BatchPrediction.status.in_(ACTIVE_STATUSES),
            )
        )
        or 0
    )


def delete(session: Session, job: BatchPrediction) -> None:
    """Remove a job row."""
    session.delete(job)
    session.flush()


def count_active(session: Session, organization_id: uuid.UUID) -> int:
    """How many of the organization's batch predictions are queued or running."""
    statement = select(func.count()).where(
        BatchPrediction.organization_id == organization_id,
        BatchPrediction.status.in_(ACTIVE_STATUSES),
    )
    return session.scalar(statement) or 0


def stored_bytes(session: Session, organization_id: uuid.UUID) -> int:
    """How many bytes the organization's batch prediction outputs take."""
    total = session.scalar(
        select(func.coalesce(func.sum(BatchPrediction.output_bytes), 0)).where(
            BatchPrediction.organization_id == organization_id
        )
    )
    return int(total or 0)

"""Every query on training jobs and their metrics."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dlp.jobs.repository import ACTIVE_STATUSES
from dlp.repository import get_owned, paginate
from dlp.training.models import JobMetric, TrainingJob


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


def count_active_outside_studies(session: Session, organization_id: uuid.UUID) -> int:
    """How many of the organization's training jobs that are not tuning trials are queued
    or running."""
    statement = select(func.count()).where(
        TrainingJob.organization_id == organization_id,
        TrainingJob.study_id.is_(None),
        TrainingJob.status.in_(ACTIVE_STATUSES),
    )
    return session.scalar(statement) or 0


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

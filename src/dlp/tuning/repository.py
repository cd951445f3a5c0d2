"""Every query about tuning studies and their trial jobs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dlp.training.models import TrainingJob
from dlp.tuning.models import TuningStudy


def add(session: Session, study: TuningStudy) -> TuningStudy:
    """Insert a study."""
    session.add(study)
    session.flush()
    return study


def get(session: Session, *, study_id: uuid.UUID, organization_id: uuid.UUID) -> TuningStudy | None:
    """The organization's study, or None."""
    return session.scalar(
        select(TuningStudy).where(
            TuningStudy.id == study_id, TuningStudy.organization_id == organization_id
        )
    )


def lock(session: Session, study_id: uuid.UUID) -> TuningStudy | None:
    """The study, locked until the transaction ends (trials are added under this lock).

    A write comes first: on PostgreSQL it takes the row lock, on SQLite the database's
    write lock, so a second caller waits and then reads what the first one committed
    instead of deciding from a stale snapshot.
    """
    session.execute(
        update(TuningStudy)
        .where(TuningStudy.id == study_id)
        .values(status=TuningStudy.status)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(select(TuningStudy).where(TuningStudy.id == study_id))


def list_page(
    session: Session, *, organization_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[TuningStudy], int]:
    """A page of the organization's studies, newest first, and their total."""
    where = TuningStudy.organization_id == organization_id
    total = session.scalar(select(func.count()).select_from(TuningStudy).where(where)) or 0
    rows = session.scalars(
        select(TuningStudy)
        .where(where)
        .order_by(TuningStudy.created_at.desc(), TuningStudy.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def trials(session: Session, study_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[TrainingJob]]:
    """The trial jobs of each study."""
    found: dict[uuid.UUID, list[TrainingJob]] = {study_id: [] for study_id in study_ids}
    if study_ids:
        for job in session.scalars(select(TrainingJob).where(TrainingJob.study_id.in_(study_ids))):
            found[job.study_id].append(job)  # type: ignore[index]
    return found


def count_running_for_dataset(session: Session, dataset_id: uuid.UUID) -> int:
    """Running studies that train on the dataset."""
    statement = select(func.count()).where(
        TuningStudy.dataset_id == dataset_id, TuningStudy.status == "running"
    )
    return session.scalar(statement) or 0


def count_running(session: Session, organization_id: uuid.UUID) -> int:
    """How many of the organization's studies are running."""
    statement = select(func.count()).where(
        TuningStudy.organization_id == organization_id, TuningStudy.status == "running"
    )
    return session.scalar(statement) or 0


def running_study_ids(session: Session) -> list[uuid.UUID]:
    """Every study still running, of every organization."""
    return list(session.scalars(select(TuningStudy.id).where(TuningStudy.status == "running")))


def cancel_queued_trials(
    session: Session, study_id: uuid.UUID, at: datetime, *, reason: str
) -> int:
    """Cancel the study's trials that have not started, saying why; returns how many."""
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.study_id == study_id, TrainingJob.status == "queued")
        .values(status="cancelled", cancel_requested=True, completed_at=at, error_message=reason)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def request_cancel_of_running_trials(session: Session, study_id: uuid.UUID) -> int:
    """Ask the study's running trials to stop at their next check; returns how many."""
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.study_id == study_id, TrainingJob.status == "running")
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unregistered_trial_results(session: Session, study_id: uuid.UUID) -> list[TrainingJob]:
    """Trials of the study holding a stored model that was never registered."""
    rows = session.scalars(
        select(TrainingJob).where(
            TrainingJob.study_id == study_id,
            TrainingJob.status == "succeeded",
            TrainingJob.model_id.is_(None),
        )
    )
    return [job for job in rows if job.trial_result]

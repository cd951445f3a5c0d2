"""Every query on the workers table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dlp.workers.models import WorkerRecord


def record_heartbeat(session: Session, record: WorkerRecord) -> None:
    """Insert the worker or refresh its row (the primary key is its unique name)."""
    session.merge(record)
    session.flush()


def list_workers(session: Session) -> list[WorkerRecord]:
    """Every worker seen, most recently seen first."""
    return list(session.scalars(select(WorkerRecord).order_by(WorkerRecord.last_seen_at.desc())))


def list_workers_seen_since(session: Session, since: datetime) -> list[WorkerRecord]:
    """Workers whose last heartbeat is at or after ``since``."""
    return list(session.scalars(select(WorkerRecord).where(WorkerRecord.last_seen_at >= since)))


def forget_workers_seen_before(session: Session, before: datetime) -> None:
    """Drop workers silent since ``before``."""
    session.execute(
        delete(WorkerRecord)
        .where(WorkerRecord.last_seen_at < before)
        .execution_options(synchronize_session=False)
    )

"""Every query housekeeping makes: its run lease, spent credentials, and the rows that
stored files belong to (read across the domains that own those files)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from dlp.auth.models import Invitation, Organization, RefreshToken
from dlp.batch.models import BatchPrediction
from dlp.datasets.models import Dataset
from dlp.housekeeping.models import HousekeepingRun
from dlp.registry.models import Model
from dlp.training.models import JobMetric, TrainingJob

ID_BATCH = 500
"""Ids per ``IN`` list (SQLite allows a few thousand bound parameters per statement)."""


def claim_run(
    session: Session, name: str, *, holder: str, now: datetime, interval: timedelta
) -> bool:
    """Start the pass ``name`` if its last start is ``interval`` old (or it never ran);
    False when another process started it within the interval."""
    result = session.execute(
        update(HousekeepingRun)
        .where(HousekeepingRun.name == name, HousekeepingRun.started_at <= now - interval)
        .values(holder=holder, started_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    if session.get(HousekeepingRun, name) is not None:
        return False
    # The first pass ever: of two processes inserting at once, one fails on the key.
    session.add(HousekeepingRun(name=name, holder=holder, started_at=now))
    session.flush()
    return True


def delete_ended_refresh_families(session: Session, *, now: datetime, before: datetime) -> int:
    """Delete every token of the logins that can no longer refresh (no token of theirs
    is unspent, unrevoked and unexpired) and rotated last before ``before``."""
    live = case(
        (
            and_(
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            ),
            1,
        ),
        else_=0,
    )
    ended = (
        select(RefreshToken.family_id)
        .group_by(RefreshToken.family_id)
        .having(func.max(RefreshToken.created_at) < before, func.sum(live) == 0)
    )
    result = session.execute(
        delete(RefreshToken)
        .where(RefreshToken.family_id.in_(ended))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_invitations_closed_before(session: Session, before: datetime) -> int:
    """Delete invitations that expired, were accepted or were revoked before ``before``."""
    result = session.execute(
        delete(Invitation)
        .where(
            or_(
                Invitation.expires_at < before,
                Invitation.accepted_at < before,
                Invitation.revoked_at < before,
            )
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _batches(ids: Iterable[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    chunk: list[uuid.UUID] = []
    for row_id in ids:
        chunk.append(row_id)
        if len(chunk) == ID_BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def existing_ids(session: Session, table: type[Any], ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` have a row in ``table`` (a table with a UUID ``id``)."""
    found: set[uuid.UUID] = set()
    for chunk in _batches(ids):
        found.update(session.scalars(select(table.id).where(table.id.in_(chunk))))
    return found


def unregistered_trial_model_ids(session: Session) -> set[uuid.UUID]:
    """The models tuning trials stored but no study registered (yet): files with no row
    in ``models`` that are not orphans."""
    results = session.scalars(
        select(TrainingJob.trial_result).where(TrainingJob.trial_result.is_not(None))
    )
    return {uuid.UUID(str(result["model_id"])) for result in results if result}


def training_jobs(session: Session, ids: Iterable[uuid.UUID]) -> list[TrainingJob]:
    """The training jobs (and tuning trials) with these ids."""
    jobs: list[TrainingJob] = []
    for chunk in _batches(ids):
        jobs.extend(session.scalars(select(TrainingJob).where(TrainingJob.id.in_(chunk))))
    return jobs


def batch_predictions(session: Session, ids: Iterable[uuid.UUID]) -> list[BatchPrediction]:
    """The batch predictions with these ids."""
    jobs: list[BatchPrediction] = []
    for chunk in _batches(ids):
        jobs.extend(session.scalars(select(BatchPrediction).where(BatchPrediction.id.in_(chunk))))
    return jobs


def retention_days(session: Session) -> dict[uuid.UUID, int]:
    """The organizations that set a retention of their own, with it in days."""
    rows = session.execute(
        select(Organization.id, Organization.retention_days).where(
            Organization.retention_days.is_not(None)
        )
    )
    return {row_id: days for row_id, days in rows if days is not None}


def metric_by_epoch(session: Session, job_id: uuid.UUID, name: str) -> dict[int, float]:
    """The last value of metric ``name`` the job reported for each epoch."""
    rows = session.execute(
        select(JobMetric.epoch, JobMetric.value)
        .where(JobMetric.job_id == job_id, JobMetric.name == name)
        .order_by(JobMetric.id)
    )
    return {epoch: value for epoch, value in rows}


def clear_batch_output(session: Session, job_id: uuid.UUID, *, reason: str) -> bool:
    """Forget a batch prediction's deleted output, saying why; False if it had none."""
    result = session.execute(
        update(BatchPrediction)
        .where(BatchPrediction.id == job_id, BatchPrediction.output_key.is_not(None))
        .values(output_key=None, output_bytes=None, error_message=reason)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def ready_dataset_files(session: Session, created_before: datetime) -> list[tuple[uuid.UUID, str]]:
    """The id and file key of every ready dataset created before ``created_before``."""
    rows = session.execute(
        select(Dataset.id, Dataset.file_key).where(
            Dataset.status == "ready", Dataset.created_at < created_before
        )
    )
    return [(row_id, key) for row_id, key in rows]


def mark_datasets_failed(session: Session, ids: list[uuid.UUID], *, reason: str) -> int:
    """Mark these datasets failed (those still ready), saying why; returns how many."""
    marked = 0
    for chunk in _batches(ids):
        result = session.execute(
            update(Dataset)
            .where(Dataset.id.in_(chunk), Dataset.status == "ready")
            .values(status="failed", error_message=reason)
            .execution_options(synchronize_session=False)
        )
        marked += int(result.rowcount)  # type: ignore[attr-defined]
    return marked


def model_files(
    session: Session, created_before: datetime
) -> list[tuple[uuid.UUID, str, list[str]]]:
    """The id, file prefix and file names of every model version created before
    ``created_before``."""
    rows = session.execute(
        select(Model.id, Model.file_prefix, Model.files).where(Model.created_at < created_before)
    )
    return [(row_id, prefix, list(files or {})) for row_id, prefix, files in rows]

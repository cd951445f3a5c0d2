"""Every query the lease machinery makes, for any table of ``LeasedJob`` rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true, update
from sqlalchemy.orm import Session

from dlp.jobs.models import LeasedJob

J = TypeVar("J", bound=LeasedJob)
ACTIVE_STATUSES = ("queued", "running")


def _priority_rank(table: type[LeasedJob]) -> Any:
    return case((table.priority == "high", 0), (table.priority == "normal", 1), else_=2)


def _waiting(table: type[LeasedJob], now: datetime) -> ColumnElement[bool]:
    return and_(
        table.status == "queued",
        or_(table.run_after.is_(None), table.run_after <= now),
    )


def claim_next(
    session: Session,
    table: type[LeasedJob],
    scope: ColumnElement[bool],
    *,
    worker: str,
    lease_token: uuid.UUID,
    now: datetime,
    eligible: ColumnElement[bool] | None = None,
) -> uuid.UUID | None:
    """Move the best waiting job (highest priority, then oldest) that is also ``eligible``
    (what the claimer's devices fit) to running under a new lease; None when none waits.

    PostgreSQL skips rows another claimer has locked; SQLite serialises writers, and
    the conditional UPDATE lets exactly one of two racing claimers win a row.
    """
    candidates = (
        select(table.id)
        .where(_waiting(table, now), scope, true() if eligible is None else eligible)
        .order_by(_priority_rank(table), table.created_at, table.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    while (job_id := session.scalar(candidates)) is not None:
        claimed = session.execute(
            update(table)
            .where(table.id == job_id, table.status == "queued")
            .values(
                status="running",
                worker=worker,
                lease_token=lease_token,
                heartbeat_at=now,
                attempts=table.attempts + 1,
                run_after=None,
                started_at=func.coalesce(table.started_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount:  # type: ignore[attr-defined]
            return job_id
    return None


def get(session: Session, table: type[J], job_id: uuid.UUID) -> J | None:
    """The job row, whoever holds it; None when missing."""
    return session.get(table, job_id)


def count_by_status(
    session: Session, table: type[LeasedJob], scope: ColumnElement[bool]
) -> dict[str, int]:
    """How many jobs of the table are in each status."""
    rows = session.execute(
        select(table.status, func.count()).where(scope).group_by(table.status)
    ).all()
    return {status: count for status, count in rows}


def count_waiting(
    session: Session, table: type[LeasedJob], scope: ColumnElement[bool], now: datetime
) -> int:
    """Jobs a worker could claim right now."""
    statement = select(func.count()).select_from(table).where(_waiting(table, now), scope)
    return session.scalar(statement) or 0


def cancel_if_queued(
    session: Session, table: type[LeasedJob], job_id: uuid.UUID, at: datetime
) -> bool:
    """Cancel a job that has not started; False if it already left the queue."""
    # One conditional UPDATE: of two racing callers exactly one sees rowcount 1.
    result = session.execute(
        update(table)
        .where(table.id == job_id, table.status == "queued")
        .values(status="cancelled", cancel_requested=True, completed_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_lease(
    session: Session,
    table: type[LeasedJob],
    job_id: uuid.UUID,
    lease_token: uuid.UUID,
    now: datetime,
) -> bool:
    """Record a heartbeat; False when the lease is no longer held (the job moved on)."""
    result = session.execute(
        update(table)
        .where(table.id == job_id, table.lease_token == lease_token, table.status == "running")
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_leased(
    session: Session, table: type[J], job_id: uuid.UUID, lease_token: uuid.UUID
) -> J | None:
    """The running job, row-locked, if ``lease_token`` still holds it; else None."""
    return session.scalar(
        select(table)
        .where(table.id == job_id, table.lease_token == lease_token, table.status == "running")
        .with_for_update()
    )


def list_stale_running(
    session: Session, table: type[J], scope: ColumnElement[bool], heartbeat_before: datetime
) -> list[J]:
    """Running jobs whose lease holder stopped renewing it, row-locked."""
    return list(
        session.scalars(
            select(table)
            .where(table.status == "running", table.heartbeat_at < heartbeat_before, scope)
            .with_for_update(skip_locked=True)
        )
    )


def list_running(session: Session, table: type[J], scope: ColumnElement[bool]) -> list[J]:
    """Every running job of the table, of every organization, oldest first."""
    return list(
        session.scalars(
            select(table).where(table.status == "running", scope).order_by(table.started_at)
        )
    )

"""Every query on the audit log."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dlp.audit.models import AuditEvent


def add_event(session: Session, event: AuditEvent) -> AuditEvent:
    """Add ``event`` to the session (written with the request's transaction)."""
    session.add(event)
    return event


def page_events(
    session: Session, organization_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    """One page of an organization's events, newest first, and how many there are."""
    where = AuditEvent.organization_id == organization_id
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where)) or 0
    rows = session.scalars(
        select(AuditEvent)
        .where(where)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total

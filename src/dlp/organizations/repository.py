"""Every query on organizations as a whole and on invitations to them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from dlp.auth.models import Invitation, Membership, Organization, Role, User


def get(session: Session, organization_id: uuid.UUID) -> Organization | None:
    """The organization, or None."""
    return session.get(Organization, organization_id)


def lock(session: Session, organization_id: uuid.UUID) -> Organization | None:
    """The organization, locked until the transaction ends, so quota checks of one
    organization happen one at a time.

    A write comes first: on PostgreSQL it takes the row lock (``FOR NO KEY UPDATE``:
    inserts that merely reference the organization do not wait), on SQLite the
    database's write lock, so a second caller waits and then counts what the first one
    committed instead of deciding from a stale snapshot.
    """
    session.execute(
        update(Organization)
        .where(Organization.id == organization_id)
        .values(max_concurrent_jobs=Organization.max_concurrent_jobs)
        .execution_options(synchronize_session=False)
    )
    organization = session.get(Organization, organization_id, populate_existing=True)
    return organization


def count_shared_administered(session: Session, user_id: uuid.UUID) -> int:
    """How many shared (not personal) organizations the user is an admin of."""
    statement = (
        select(func.count())
        .select_from(Membership)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(
            Membership.user_id == user_id,
            Membership.role == Role.ADMIN,
            Organization.is_personal.is_(False),
        )
    )
    return session.scalar(statement) or 0


def member_with_email(session: Session, *, organization_id: uuid.UUID, email: str) -> User | None:
    """The organization's member whose email is ``email`` (case-insensitive), or None."""
    return session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            Membership.organization_id == organization_id,
            func.lower(User.email) == email.lower(),
        )
    )


def _pending(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )


def add_invitation(session: Session, invitation: Invitation) -> Invitation:
    """Insert an invitation."""
    session.add(invitation)
    session.flush()
    return invitation


def get_pending_invitation(
    session: Session, *, invitation_id: uuid.UUID, organization_id: uuid.UUID, now: datetime
) -> Invitation | None:
    """The organization's pending invitation with ``invitation_id``, or None."""
    return session.scalar(
        select(Invitation).where(
            Invitation.id == invitation_id,
            Invitation.organization_id == organization_id,
            *_pending(now),
        )
    )


def get_invitation_by_hash(session: Session, token_hash: str) -> Invitation | None:
    """The invitation whose token has this hash, whatever its state, or None."""
    return session.scalar(select(Invitation).where(Invitation.token_hash == token_hash))


def pending_invitation_for(
    session: Session, *, organization_id: uuid.UUID, email: str, now: datetime
) -> Invitation | None:
    """A pending invitation of the organization to ``email`` (case-insensitive), or None."""
    return session.scalars(
        select(Invitation).where(
            Invitation.organization_id == organization_id,
            func.lower(Invitation.email) == email.lower(),
            *_pending(now),
        )
    ).first()


def count_pending_invitations(
    session: Session, *, organization_id: uuid.UUID, now: datetime
) -> int:
    """How many invitations of the organization are pending."""
    statement = select(func.count()).where(
        Invitation.organization_id == organization_id, *_pending(now)
    )
    return session.scalar(statement) or 0


def list_pending_invitations(
    session: Session, *, organization_id: uuid.UUID, now: datetime, limit: int, offset: int
) -> tuple[list[Invitation], int]:
    """One page of the organization's pending invitations, newest first, and their total."""
    where = (Invitation.organization_id == organization_id, *_pending(now))
    total = session.scalar(select(func.count()).select_from(Invitation).where(*where))
    rows = session.scalars(
        select(Invitation)
        .where(*where)
        .order_by(Invitation.created_at.desc(), Invitation.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total or 0


def mark_invitation_accepted(session: Session, invitation_id: uuid.UUID, at: datetime) -> bool:
    """Spend a pending invitation atomically; False when it was spent, revoked or expired."""
    result = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, *_pending(at))
        .values(accepted_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]

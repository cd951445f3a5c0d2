"""Every query on identity tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from dlp.auth.models import ApiKey, Membership, Organization, RefreshToken, Role, User
from dlp.db import writable


def count_users(session: Session) -> int:
    """How many users the installation has."""
    return session.scalar(select(func.count()).select_from(User)) or 0


def get_user(session: Session, user_id: uuid.UUID) -> User | None:
    """The user with ``user_id``, or None."""
    return session.get(User, user_id)


def get_user_and_membership(
    session: Session, *, user_id: uuid.UUID, organization_id: uuid.UUID | None
) -> tuple[User | None, Membership | None]:
    """The user and their membership in the organization, in one query (either may be None)."""
    row = session.execute(
        select(User, Membership)
        .outerjoin(
            Membership,
            and_(Membership.user_id == User.id, Membership.organization_id == organization_id),
        )
        .where(User.id == user_id)
    ).first()
    if row is None:
        return None, None
    return row[0], row[1]


def get_user_by_username(session: Session, username: str) -> User | None:
    """The user named ``username`` (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def get_user_by_login(session: Session, login: str) -> User | None:
    """The user whose username or email is ``login`` (case-insensitive), or None."""
    lowered = login.lower()
    return session.scalar(
        select(User).where(
            (func.lower(User.username) == lowered) | (func.lower(User.email) == lowered)
        )
    )


def username_or_email_taken(session: Session, username: str, email: str) -> str | None:
    """Which of ``username``/``email`` is already in use, if any."""
    if get_user_by_username(session, username) is not None:
        return "username"
    if session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        return "email"
    return None


def add_organization(session: Session, *, name: str, is_personal: bool) -> Organization:
    """Insert an organization."""
    organization = Organization(name=name, is_personal=is_personal)
    session.add(organization)
    session.flush()
    return organization


def add_user(session: Session, user: User) -> User:
    """Insert a user."""
    session.add(user)
    session.flush()
    return user


def add_membership(
    session: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    """Give ``user_id`` ``role`` in ``organization_id``."""
    membership = Membership(organization_id=organization_id, user_id=user_id, role=role)
    session.add(membership)
    session.flush()
    return membership


def get_membership(
    session: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    """The user's membership in the organization, or None."""
    return session.get(Membership, (organization_id, user_id))


def lock_organization(session: Session, organization_id: uuid.UUID) -> Organization | None:
    """The organization, locked until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway), so membership changes in one organization happen one at a time.

    ``FOR NO KEY UPDATE``: inserts that merely reference the organization (datasets,
    jobs, keys) take a key-share lock on it and must not wait for this one.
    """
    statement = select(Organization).where(Organization.id == organization_id)
    return session.scalar(statement.with_for_update(key_share=True))


def list_members(
    session: Session, *, organization_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[tuple[User, Membership]], int]:
    """One page of the organization's members by username, and how many there are."""
    total = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == organization_id)
    )
    rows = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.organization_id == organization_id)
        .order_by(func.lower(User.username))
        .limit(limit)
        .offset(offset)
    )
    return [(user, membership) for user, membership in rows], total or 0


def list_organizations_of(
    session: Session, *, user_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[tuple[Organization, Membership]], int]:
    """One page of the organizations the user belongs to by name, and how many there are."""
    total = session.scalar(
        select(func.count()).select_from(Membership).where(Membership.user_id == user_id)
    )
    rows = session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.name, Organization.id)
        .limit(limit)
        .offset(offset)
    )
    return [(organization, membership) for organization, membership in rows], total or 0


def count_admins(session: Session, organization_id: uuid.UUID) -> int:
    """How many admins the organization has."""
    statement = select(func.count()).where(
        Membership.organization_id == organization_id, Membership.role == Role.ADMIN
    )
    return session.scalar(statement) or 0


def delete_membership(session: Session, membership: Membership) -> None:
    """Remove a membership."""
    session.delete(membership)
    session.flush()


def revoke_api_keys_of_member(
    session: Session, *, organization_id: uuid.UUID, user_id: uuid.UUID, at: datetime
) -> None:
    """Revoke every live key the user made in the organization."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.organization_id == organization_id,
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )


def add_refresh_token(session: Session, token: RefreshToken) -> None:
    """Insert a refresh token row."""
    session.add(token)
    session.flush()


def get_refresh_token_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    """The refresh token with this hash, or None."""
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


def mark_refresh_token_used(session: Session, token_id: uuid.UUID, at: datetime) -> bool:
    """Spend a token atomically; False when it was already spent or revoked."""
    result = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_refresh_family(session: Session, family_id: uuid.UUID, at: datetime) -> None:
    """Revoke every live token of one login."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )


def revoke_refresh_tokens_of_user(session: Session, user_id: uuid.UUID, at: datetime) -> None:
    """Revoke every live refresh token of the user, in all their logins."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )


def add_api_key(session: Session, api_key: ApiKey) -> ApiKey:
    """Insert an API key row."""
    session.add(api_key)
    session.flush()
    return api_key


def get_api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    """The API key with this hash, or None."""
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def get_api_key(
    session: Session, *, key_id: uuid.UUID, user_id: uuid.UUID, organization_id: uuid.UUID
) -> ApiKey | None:
    """The caller's own live key with ``key_id`` in the organization, or None."""
    return session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id,
            ApiKey.user_id == user_id,
            ApiKey.organization_id == organization_id,
            ApiKey.revoked_at.is_(None),
        )
    )


def list_api_keys(
    session: Session, *, user_id: uuid.UUID, organization_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    """One page of the user's keys in the organization, newest first, and how many there are."""
    where = (ApiKey.user_id == user_id, ApiKey.organization_id == organization_id)
    total = session.scalar(select(func.count()).select_from(ApiKey).where(*where))
    rows = session.scalars(
        select(ApiKey)
        .where(*where)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total or 0


def touch_api_key(session: Session, key_id: uuid.UUID, at: datetime) -> None:
    """Record that a key was just used (on the primary, when ``session`` reads a replica)."""
    with writable(session) as target:
        target.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=at)
            .execution_options(synchronize_session=False)
        )

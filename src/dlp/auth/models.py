"""Tables of identity: organizations, users, memberships, invitations, refresh tokens, API keys."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, CreatedAt, UUIDPrimaryKey


class Role(enum.StrEnum):
    """A member's role in an organization, from most to least powerful."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        """Higher is more powerful."""
        return {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}[self]


class Organization(UUIDPrimaryKey, CreatedAt, Base):
    """The owner of every dataset, job, model, key and file."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(100))
    is_personal: Mapped[bool] = mapped_column(default=False)
    # Quotas set by the installation's superuser; None falls back to the settings' default.
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_concurrent_jobs: Mapped[int | None]
    # Days batch outputs and finished jobs' checkpoints are kept; None: the settings' default.
    retention_days: Mapped[int | None]


class User(UUIDPrimaryKey, CreatedAt, Base):
    """A person who signs in."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(50), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    default_organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )


# Sign-in and sign-up look users up by lower-cased username or email.
Index("ix_users_lower_username", func.lower(User.username))
Index("ix_users_lower_email", func.lower(User.email))


class Membership(CreatedAt, Base):
    """A user's role in one organization."""

    __tablename__ = "memberships"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )


class Invitation(UUIDPrimaryKey, CreatedAt, Base):
    """An admin's offer of a role in an organization, accepted with a one-time token."""

    __tablename__ = "invitations"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RefreshToken(UUIDPrimaryKey, CreatedAt, Base):
    """One refresh token; rotation chains tokens of one login into a family."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(UUIDPrimaryKey, CreatedAt, Base):
    """A long-lived credential for scripts; only its hash is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # "read", "write" (read and write) or "predict" (predictions only).
    scope: Mapped[str] = mapped_column(String(20), default="write")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

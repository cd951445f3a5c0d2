"""Request and response bodies of the auth and organization endpoints."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dlp.auth.models import ApiKey, Membership, Organization, Role, User

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,49}$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email_shape(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value.lower()


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_email_shape)]
"""An email address, lower-cased (only its shape is checked: nothing is sent to it)."""


class RegisterRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="3-50 letters, digits, _ . -")
    email: EmailAddress
    password: str = Field(min_length=8, max_length=256)


class LoginRequest(BaseModel):
    """Credentials, as JSON (the form variant carries the same fields)."""

    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    """A refresh token to spend (or revoke, on logout)."""

    refresh_token: str = Field(min_length=1, max_length=512)


class TokenPair(BaseModel):
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(BaseModel):
    """A user as seen in the current organization."""

    id: uuid.UUID
    username: str
    email: str
    role: Role
    organization_id: uuid.UUID
    is_superuser: bool
    created_at: datetime


class PasswordChange(BaseModel):
    """The current password, and the one to replace it."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


class ApiKeyScope(enum.StrEnum):
    """What an API key may do, within its owner's role."""

    READ = "read"
    """Read only: anything that needs the member role or more is refused."""
    WRITE = "write"
    """Whatever the owner's role allows."""
    PREDICT = "predict"
    """The prediction endpoints only."""


class ApiKeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scope: ApiKeyScope = ApiKeyScope.WRITE
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="Days until the key expires; absent: never."
    )


class ApiKeyOut(BaseModel):
    """An API key as listed: never the key itself, nor its hash."""

    id: uuid.UUID
    name: str
    scope: ApiKeyScope
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def build(cls, api_key: ApiKey) -> ApiKeyOut:
        """The API view of a stored key."""
        return cls(
            id=api_key.id,
            name=api_key.name,
            scope=ApiKeyScope(api_key.scope),
            prefix=api_key.prefix,
            created_at=api_key.created_at,
            expires_at=api_key.expires_at,
            last_used_at=api_key.last_used_at,
            revoked_at=api_key.revoked_at,
        )


class ApiKeyCreated(BaseModel):
    """A new key; ``key`` is shown this once and never again."""

    id: uuid.UUID
    name: str
    key: str
    scope: ApiKeyScope
    prefix: str
    created_at: datetime
    expires_at: datetime | None


class MemberOut(BaseModel):
    """A user's membership in the current organization."""

    user_id: uuid.UUID
    username: str
    email: str
    role: Role
    joined_at: datetime

    @classmethod
    def build(cls, user: User, membership: Membership) -> MemberOut:
        """The API view of a user and their membership."""
        return cls(
            user_id=user.id,
            username=user.username,
            email=user.email,
            role=membership.role,
            joined_at=membership.created_at,
        )


class MemberCreate(BaseModel):
    """An existing user to add to the current organization."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=50)
    role: Role


class MemberUpdate(BaseModel):
    """A member's new role."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class OrganizationOut(BaseModel):
    """An organization the caller belongs to, with their role in it."""

    id: uuid.UUID
    name: str
    is_personal: bool
    role: Role
    joined_at: datetime

    @classmethod
    def build(cls, organization: Organization, membership: Membership) -> OrganizationOut:
        """The API view of an organization and the caller's membership."""
        return cls(
            id=organization.id,
            name=organization.name,
            is_personal=organization.is_personal,
            role=membership.role,
            joined_at=membership.created_at,
        )

"""Request and response bodies of the auth and organization endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlp.auth.models import Membership, Organization, Role, User

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,49}$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RegisterRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="3-50 letters, digits, _ . -")
    email: str = Field(max_length=254)
    password: str = Field(min_length=8, max_length=256)

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value.lower()


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


class ApiKeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class ApiKeyCreated(BaseModel):
    """A new key; ``key`` is shown this once and never again."""

    id: uuid.UUID
    name: str
    key: str
    created_at: datetime


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

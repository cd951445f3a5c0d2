"""Request and response bodies of the organization, invitation and quota endpoints."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlp.auth.models import Invitation, Membership, Organization, Role
from dlp.auth.schemas import EmailAddress
from dlp.organizations.quotas import Quotas, Usage

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean_name(value: str) -> str:
    name = value.strip()
    if not name or _CONTROL.search(name):
        raise ValueError("the name must not be blank nor hold control characters")
    return name


class OrganizationCreate(BaseModel):
    """A new shared organization."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)

    _name = field_validator("name")(_clean_name)


class OrganizationUpdate(BaseModel):
    """A new name for the current organization."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)

    _name = field_validator("name")(_clean_name)


class QuotasOut(BaseModel):
    """Limits; null is unlimited."""

    max_storage_bytes: int | None
    max_concurrent_jobs: int | None
    retention_days: int | None = Field(
        description="Days batch prediction outputs and finished jobs' checkpoints are kept "
        "(datasets and registered models are never deleted); null: forever."
    )

    @classmethod
    def build(cls, quotas: Quotas) -> QuotasOut:
        """The API view of quotas."""
        return cls(
            max_storage_bytes=quotas.max_storage_bytes,
            max_concurrent_jobs=quotas.max_concurrent_jobs,
            retention_days=quotas.retention_days,
        )


class UsageOut(BaseModel):
    """What the organization uses now."""

    storage_bytes: int = Field(description="Datasets, model files and batch outputs.")
    active_jobs: int = Field(
        description="Queued or running training jobs and batch predictions, and running "
        "tuning studies (one each)."
    )

    @classmethod
    def build(cls, usage: Usage) -> UsageOut:
        """The API view of usage."""
        return cls(storage_bytes=usage.storage_bytes, active_jobs=usage.active_jobs)


class OrganizationDetail(BaseModel):
    """The current organization, your role in it, its quotas in force and its usage."""

    id: uuid.UUID
    name: str
    is_personal: bool
    role: Role
    created_at: datetime
    joined_at: datetime
    quotas: QuotasOut
    usage: UsageOut

    @classmethod
    def build(
        cls, organization: Organization, membership: Membership, quotas: Quotas, usage: Usage
    ) -> OrganizationDetail:
        """The API view of an organization seen by one of its members."""
        return cls(
            id=organization.id,
            name=organization.name,
            is_personal=organization.is_personal,
            role=membership.role,
            created_at=organization.created_at,
            joined_at=membership.created_at,
            quotas=QuotasOut.build(quotas),
            usage=UsageOut.build(usage),
        )


class QuotaUpdate(BaseModel):
    """An organization's own quotas and retention; a field left out stays, null falls back
    to the installation's default (``DLP_ORG_MAX_STORAGE_MB``, ``DLP_ORG_MAX_CONCURRENT_JOBS``,
    ``DLP_RETENTION_DAYS``)."""

    model_config = ConfigDict(extra="forbid")

    max_storage_bytes: int | None = Field(default=None, ge=0)
    max_concurrent_jobs: int | None = Field(default=None, ge=0, le=1_000_000)
    retention_days: int | None = Field(default=None, ge=1, le=100_000)


class OrganizationQuotasOut(BaseModel):
    """An organization as the installation's superuser sees it."""

    id: uuid.UUID
    name: str
    is_personal: bool
    created_at: datetime
    overrides: QuotasOut = Field(description="Its own quotas; null: the default applies.")
    quotas: QuotasOut = Field(description="The quotas in force; null: unlimited.")
    usage: UsageOut

    @classmethod
    def build(
        cls, organization: Organization, quotas: Quotas, usage: Usage
    ) -> OrganizationQuotasOut:
        """The superuser's view of an organization."""
        return cls(
            id=organization.id,
            name=organization.name,
            is_personal=organization.is_personal,
            created_at=organization.created_at,
            overrides=QuotasOut(
                max_storage_bytes=organization.max_storage_bytes,
                max_concurrent_jobs=organization.max_concurrent_jobs,
                retention_days=organization.retention_days,
            ),
            quotas=QuotasOut.build(quotas),
            usage=UsageOut.build(usage),
        )


class InvitationCreate(BaseModel):
    """Whom to invite to the current organization, with which role."""

    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    role: Role


class InvitationOut(BaseModel):
    """A pending invitation (never its token)."""

    id: uuid.UUID
    email: str
    role: Role
    invited_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime

    @classmethod
    def build(cls, invitation: Invitation) -> InvitationOut:
        """The API view of an invitation."""
        return cls(
            id=invitation.id,
            email=invitation.email,
            role=invitation.role,
            invited_by=invitation.invited_by,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
        )


class InvitationCreated(InvitationOut):
    """A new invitation; ``token`` is shown this once: send it to the invitee."""

    token: str


class InvitationAccept(BaseModel):
    """The token of an invitation sent to your email address."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=512)

"""Business rules of organizations as a whole: shared organizations, invitations to
them, and the quotas the installation's superuser sets.

Members themselves (list, add, change a role, remove) are ``dlp.auth.service``'s.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth import repository as auth_repository
from dlp.auth.models import Invitation, Membership, Organization, Role
from dlp.auth.security import hash_secret
from dlp.auth.service import Principal
from dlp.config import Settings
from dlp.db import utcnow
from dlp.errors import ConflictError, NotFoundError
from dlp.organizations import quotas, repository
from dlp.organizations.quotas import Quotas, Usage

MAX_PENDING_INVITATIONS = 100


def create_organization(
    session: Session, settings: Settings, principal: Principal, name: str
) -> tuple[Organization, Membership, Quotas, Usage]:
    """A new shared organization with the caller as its admin, within the settings' bound
    on the shared organizations one user administers."""
    principal.require_write()
    user = principal.user
    # The caller's personal organization serialises their creations.
    quotas.lock(session, user.default_organization_id)
    limit = settings.max_organizations_per_user
    if repository.count_shared_administered(session, user.id) >= limit:
        raise ConflictError(
            f"you already administer {limit} shared organizations, the most one user may "
            "create; leave one or hand it to another admin first"
        )
    organization = auth_repository.add_organization(session, name=name, is_personal=False)
    membership = auth_repository.add_membership(
        session, organization_id=organization.id, user_id=user.id, role=Role.ADMIN
    )
    audit.record_act(
        session,
        principal,
        "organization.created",
        organization_id=organization.id,
        target_type="organization",
        target_id=organization.id,
        name=name,
    )
    return organization, membership, quotas.quotas_of(organization, settings), Usage(0, 0)


def current_organization(
    session: Session, settings: Settings, principal: Principal
) -> tuple[Organization, Membership, Quotas, Usage]:
    """The current organization, the caller's membership, its quotas and its usage."""
    organization = _get_or_raise(session, principal.organization_id)
    membership = _membership_or_raise(session, principal)
    return (
        organization,
        membership,
        quotas.quotas_of(organization, settings),
        quotas.usage_of(session, organization.id),
    )


def rename_organization(
    session: Session, settings: Settings, principal: Principal, name: str
) -> tuple[Organization, Membership, Quotas, Usage]:
    """Rename the current organization (admins only)."""
    principal.require(Role.ADMIN)
    organization = _get_or_raise(session, principal.organization_id)
    if organization.name != name:
        audit.record_act(
            session,
            principal,
            "organization.renamed",
            target_type="organization",
            target_id=organization.id,
            old_name=organization.name,
            name=name,
        )
        organization.name = name
        session.flush()
    return current_organization(session, settings, principal)


def set_quotas(
    session: Session,
    settings: Settings,
    principal: Principal,
    organization_id: uuid.UUID,
    changes: dict[str, int | None],
) -> tuple[Organization, Quotas, Usage]:
    """Set an organization's own quotas (the installation's superuser only); ``changes``
    holds the fields sent, None restoring the settings' default."""
    principal.require_superuser()
    organization = quotas.lock(session, organization_id)
    for field in ("max_storage_bytes", "max_concurrent_jobs", "retention_days"):
        if field in changes:
            setattr(organization, field, changes[field])
    session.flush()
    audit.record_act(
        session,
        principal,
        "organization.quotas_changed",
        organization_id=organization.id,
        target_type="organization",
        target_id=organization.id,
        quotas=changes,
    )
    return (
        organization,
        quotas.quotas_of(organization, settings),
        quotas.usage_of(session, organization.id),
    )


def invite(
    session: Session, settings: Settings, principal: Principal, *, email: str, role: Role
) -> tuple[Invitation, str]:
    """Invite ``email`` to the current organization (admins only): the invitation and its
    one-time token, of which only the hash is kept."""
    principal.require(Role.ADMIN)
    organization_id = principal.organization_id
    now = utcnow()
    quotas.lock(session, organization_id)
    if repository.member_with_email(session, organization_id=organization_id, email=email):
        raise ConflictError(f"{email} is already a member of this organization")
    if repository.pending_invitation_for(
        session, organization_id=organization_id, email=email, now=now
    ):
        raise ConflictError(f"{email} has a pending invitation; revoke it to send another")
    pending = repository.count_pending_invitations(
        session, organization_id=organization_id, now=now
    )
    if pending >= MAX_PENDING_INVITATIONS:
        raise ConflictError(
            f"the organization has {pending} pending invitations, the most it may have; "
            "revoke some first"
        )
    token = secrets.token_urlsafe(32)
    invitation = repository.add_invitation(
        session,
        Invitation(
            organization_id=organization_id,
            email=email,
            role=role,
            token_hash=hash_secret(token),
            invited_by=principal.user.id,
            expires_at=now + timedelta(hours=settings.invitation_ttl_hours),
        ),
    )
    _audit_invitation(session, "invitation.created", principal, invitation)
    return invitation, token


def list_invitations(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[Invitation], int]:
    """A page of the current organization's pending invitations (admins only)."""
    principal.require(Role.ADMIN)
    return repository.list_pending_invitations(
        session, organization_id=principal.organization_id, now=utcnow(), limit=limit, offset=offset
    )


def revoke_invitation(session: Session, principal: Principal, invitation_id: uuid.UUID) -> None:
    """Revoke a pending invitation of the current organization (admins only)."""
    principal.require(Role.ADMIN)
    now = utcnow()
    invitation = repository.get_pending_invitation(
        session, invitation_id=invitation_id, organization_id=principal.organization_id, now=now
    )
    if invitation is None:
        raise NotFoundError("invitation", invitation_id)
    invitation.revoked_at = now
    session.flush()
    _audit_invitation(session, "invitation.revoked", principal, invitation)


def accept_invitation(
    session: Session, principal: Principal, token: str
) -> tuple[Organization, Membership]:
    """Join the organization an invitation to the caller's email address offers.

    An unknown, revoked, expired or spent token, and one sent to another address, all
    answer the same 404, so the answer tells nothing about other people's invitations.
    """
    principal.require_write()
    user = principal.user
    now = utcnow()
    invitation = repository.get_invitation_by_hash(session, hash_secret(token))
    if (
        invitation is None
        or invitation.email.lower() != user.email.lower()
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
    ):
        raise NotFoundError("invitation")
    organization = quotas.lock(session, invitation.organization_id)
    if auth_repository.get_membership(session, organization_id=organization.id, user_id=user.id):
        raise ConflictError("you are already a member of this organization")
    # Conditional, so one token cannot be spent twice by simultaneous requests.
    if not repository.mark_invitation_accepted(session, invitation.id, now):
        raise NotFoundError("invitation")
    membership = auth_repository.add_membership(
        session, organization_id=organization.id, user_id=user.id, role=invitation.role
    )
    _audit_invitation(session, "invitation.accepted", principal, invitation)
    return organization, membership


def _audit_invitation(
    session: Session, action: str, principal: Principal, invitation: Invitation
) -> None:
    audit.record_act(
        session,
        principal,
        action,
        organization_id=invitation.organization_id,
        target_type="invitation",
        target_id=invitation.id,
        email=invitation.email,
        role=invitation.role.value,
    )


def _get_or_raise(session: Session, organization_id: uuid.UUID) -> Organization:
    organization = repository.get(session, organization_id)
    if organization is None:
        raise NotFoundError("organization", organization_id)
    return organization


def _membership_or_raise(session: Session, principal: Principal) -> Membership:
    membership = auth_repository.get_membership(
        session, organization_id=principal.organization_id, user_id=principal.user.id
    )
    if membership is None:
        raise NotFoundError("organization", principal.organization_id)
    return membership

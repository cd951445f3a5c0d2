"""Organization endpoints: create a shared organization, read and rename the current
one, its invitations, accepting one, and the superuser's quotas."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from dlp.auth.schemas import OrganizationOut
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep, SuperuserPrincipal
from dlp.organizations import service
from dlp.organizations.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    OrganizationCreate,
    OrganizationDetail,
    OrganizationQuotasOut,
    OrganizationUpdate,
    QuotaUpdate,
)
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1", tags=["organizations"])

CURRENT = "/organizations/current"
INVITATIONS = CURRENT + "/invitations"
InvitationId = Annotated[uuid.UUID, Path(description="The invitation's id.")]


@router.post("/organizations", status_code=status.HTTP_201_CREATED)
def create_organization(
    body: OrganizationCreate,
    session: SessionDep,
    platform: PlatformDep,
    principal: CurrentPrincipal,
) -> OrganizationDetail:
    """Create a shared organization; you are its admin (pick it with ``X-DLP-Org``)."""
    return OrganizationDetail.build(
        *service.create_organization(session, platform.settings, principal, body.name)
    )


@router.get(CURRENT)
def current_organization(
    session: SessionDep, platform: PlatformDep, principal: CurrentPrincipal
) -> OrganizationDetail:
    """The current organization with your role, its quotas (null: unlimited) and usage."""
    return OrganizationDetail.build(
        *service.current_organization(session, platform.settings, principal)
    )


@router.patch(CURRENT)
def rename_organization(
    body: OrganizationUpdate,
    session: SessionDep,
    platform: PlatformDep,
    principal: CurrentPrincipal,
) -> OrganizationDetail:
    """Rename the current organization (admins only)."""
    return OrganizationDetail.build(
        *service.rename_organization(session, platform.settings, principal, body.name)
    )


@router.get(INVITATIONS)
def list_invitations(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[InvitationOut]:
    """The current organization's pending invitations, newest first (admins only)."""
    rows, total = service.list_invitations(session, principal, limit=page.limit, offset=page.offset)
    return Page.build(rows, total, page, InvitationOut.build)


@router.post(INVITATIONS, status_code=status.HTTP_201_CREATED)
def invite(
    body: InvitationCreate, session: SessionDep, platform: PlatformDep, principal: CurrentPrincipal
) -> InvitationCreated:
    """Invite an email address to the current organization (admins only); the token is
    shown once: the invitee accepts it signed in with that address."""
    invitation, token = service.invite(
        session, platform.settings, principal, email=body.email, role=body.role
    )
    return InvitationCreated(**InvitationOut.build(invitation).model_dump(), token=token)


@router.delete(INVITATIONS + "/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_invitation(
    invitation_id: InvitationId, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Revoke a pending invitation (admins only)."""
    service.revoke_invitation(session, principal, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/invitations/accept")
def accept_invitation(
    body: InvitationAccept, session: SessionDep, principal: CurrentPrincipal
) -> OrganizationOut:
    """Join the organization of an invitation sent to your email address; 404 for a
    token that is unknown, revoked, expired, used or someone else's."""
    return OrganizationOut.build(*service.accept_invitation(session, principal, body.token))


@router.patch("/admin/organizations/{organization_id}", tags=["admin"])
def set_quotas(
    organization_id: uuid.UUID,
    body: QuotaUpdate,
    session: SessionDep,
    platform: PlatformDep,
    principal: SuperuserPrincipal,
) -> OrganizationQuotasOut:
    """Set an organization's own quotas and retention (the installation's superuser only);
    a field sent as null falls back to the installation's default."""
    changes = body.model_dump(include=body.model_fields_set)
    return OrganizationQuotasOut.build(
        *service.set_quotas(session, platform.settings, principal, organization_id, changes)
    )

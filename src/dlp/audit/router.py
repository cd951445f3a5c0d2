"""The audit log endpoint: the current organization's events, for its admins."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from dlp.audit import service
from dlp.audit.schemas import AuditEventOut
from dlp.dependencies import CurrentPrincipal, SessionDep
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/organizations/current", tags=["organizations"])


@router.get("/audit")
def list_audit_events(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[AuditEventOut]:
    """The current organization's audit log, newest first (admins only): logins and their
    failures, API keys made and revoked, members added, re-roled and removed, deletions."""
    rows, total = service.page(session, principal, limit=page.limit, offset=page.offset)
    return Page.build(rows, total, page, AuditEventOut.build)

"""Recording security-relevant acts, and reading them back for organization admins."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.orm import Session

from dlp.audit import repository
from dlp.audit.models import AuditEvent
from dlp.auth.models import Role

if TYPE_CHECKING:
    # Only for annotations: dlp.auth.service records events through this module.
    from dlp.auth.service import Principal

log = structlog.get_logger(__name__)


def record(
    session: Session,
    action: str,
    *,
    organization_id: uuid.UUID | None,
    actor_id: uuid.UUID | None = None,
    actor_name: str | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add one event (``action`` such as ``"auth.login_failed"`` or ``"dataset.deleted"``)
    to ``session``: it is saved when the caller's transaction commits, and with it only.

    ``detail`` holds small JSON-able facts (a role, a key's name); never a secret.
    """
    event = AuditEvent(
        organization_id=organization_id,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        ip=ip,
        detail=detail,
    )
    log.info("audit." + action, organization_id=str(organization_id), target_id=event.target_id)
    return repository.add_event(session, event)


def record_act(
    session: Session,
    principal: Principal,
    action: str,
    *,
    target_type: str,
    target_id: uuid.UUID | str,
    organization_id: uuid.UUID | None = None,
    **detail: Any,
) -> AuditEvent:
    """:func:`record` an act of ``principal``, in its current organization unless
    ``organization_id`` names the one acted on (a new one, or one joined)."""
    return record(
        session,
        action,
        organization_id=organization_id or principal.organization_id,
        actor_id=principal.user.id,
        actor_name=principal.user.username,
        target_type=target_type,
        target_id=target_id,
        ip=principal.ip,
        **detail,
    )


def page(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    """One page of the current organization's audit log, newest first, with the total
    (its admins only)."""
    principal.require(Role.ADMIN)
    return repository.page_events(session, principal.organization_id, limit=limit, offset=offset)

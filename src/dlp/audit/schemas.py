"""Response bodies of the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from dlp.audit.models import AuditEvent


class AuditEventOut(BaseModel):
    """One recorded act: who (``actor_*``, ``ip``) did what (``action``) to what (``target_*``)."""

    id: uuid.UUID
    created_at: datetime
    action: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    detail: dict[str, Any]

    @classmethod
    def build(cls, event: AuditEvent) -> AuditEventOut:
        """The API view of a stored event."""
        return cls(
            id=event.id,
            created_at=event.created_at,
            action=event.action,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            target_type=event.target_type,
            target_id=event.target_id,
            ip=event.ip,
            detail=event.detail,
        )

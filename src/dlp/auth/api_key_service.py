"""Business rules of API keys: made with a scope and an optional expiry, listed without
their secret, revoked. Only a key's SHA-256 is stored; the secret is shown once."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth import repository
from dlp.auth.models import ApiKey
from dlp.auth.schemas import ApiKeyScope
from dlp.auth.security import hash_secret, new_api_key
from dlp.auth.service import Principal
from dlp.db import utcnow
from dlp.errors import NotFoundError


def create_api_key(
    session: Session,
    principal: Principal,
    *,
    name: str,
    scope: ApiKeyScope,
    expires_in_days: int | None,
) -> tuple[ApiKey, str]:
    """A new key for the caller in the current organization, and its one-time secret.

    Refused to read-only and predict-only keys: a key never mints a stronger one.
    """
    principal.require_write()
    secret = new_api_key()
    expires_at = None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
    api_key = repository.add_api_key(
        session,
        ApiKey(
            organization_id=principal.organization_id,
            user_id=principal.user.id,
            name=name,
            scope=scope.value,
            prefix=secret[:12],
            key_hash=hash_secret(secret),
            expires_at=expires_at,
        ),
    )
    audit.record_act(
        session,
        principal,
        "api_key.created",
        target_type="api_key",
        target_id=api_key.id,
        name=name,
        scope=scope.value,
        expires_at=None if expires_at is None else expires_at.isoformat(),
    )
    return api_key, secret


def list_api_keys(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    """A page of the caller's keys in the current organization, newest first, revoked and
    expired ones included."""
    return repository.list_api_keys(
        session,
        user_id=principal.user.id,
        organization_id=principal.organization_id,
        limit=limit,
        offset=offset,
    )


def revoke_api_key(session: Session, principal: Principal, key_id: uuid.UUID) -> None:
    """Revoke one of the caller's keys."""
    principal.require_write()
    api_key = repository.get_api_key(
        session, key_id=key_id, user_id=principal.user.id, organization_id=principal.organization_id
    )
    if api_key is None:
        raise NotFoundError("API key", key_id)
    api_key.revoked_at = utcnow()
    audit.record_act(
        session,
        principal,
        "api_key.revoked",
        target_type="api_key",
        target_id=api_key.id,
        name=api_key.name,
        scope=api_key.scope,
    )

"""Business rules of signing in and out: logins, refresh-token rotation with reuse
detection, logout, password changes. Each is written to the audit log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth import repository
from dlp.auth.models import RefreshToken, User
from dlp.auth.schemas import TokenPair
from dlp.auth.security import (
    create_access_token,
    expiry,
    hash_password,
    hash_secret,
    new_refresh_token,
    password_needs_rehash,
    password_stamp,
    verify_password,
)
from dlp.auth.service import Principal
from dlp.config import Settings
from dlp.db import utcnow
from dlp.errors import AuthenticationError


class RefreshTokenReuseError(AuthenticationError):
    """A spent refresh token came back: the family is revoked, and that must persist."""

    keep_changes = True


class LoginFailedError(AuthenticationError):
    """Wrong credentials: the 401 must not roll back the audit event that records it."""

    keep_changes = True


def login(
    session: Session, settings: Settings, *, username: str, password: str, ip: str | None
) -> TokenPair:
    """Check credentials and start a new token family; success and failure are audited.

    An unknown user costs a password check all the same (on a dummy hash) and gets the
    same answer, so neither timing nor message tells which accounts exist. A hash made
    with outdated Argon2 parameters is redone with the current ones.
    """
    user = repository.get_user_by_login(session, username)
    valid = verify_password(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        if user is None:
            audit.record(
                session,
                "auth.login_failed",
                organization_id=None,
                actor_name=username[:254],
                ip=ip,
                reason="unknown_user",
            )
        else:
            reason = "inactive" if valid else "wrong_password"
            _record_for_user(session, user, "auth.login_failed", ip=ip, reason=reason)
        raise LoginFailedError("incorrect username or password")
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _record_for_user(session, user, "auth.login", ip=ip)
    return _issue_tokens(session, settings, user, family_id=uuid.uuid4())


def refresh(
    session: Session, settings: Settings, refresh_token: str, *, ip: str | None
) -> TokenPair:
    """Spend a refresh token for a new pair; a reused token revokes its whole family."""
    now = utcnow()
    token = repository.get_refresh_token_by_hash(session, hash_secret(refresh_token))
    if token is None:
        raise AuthenticationError("invalid refresh token")
    if token.used_at is not None or token.revoked_at is not None:
        _revoke_reused_family(session, token, ip=ip)
    if token.expires_at <= now:
        raise AuthenticationError("refresh token expired")
    if not repository.mark_refresh_token_used(session, token.id, now):
        _revoke_reused_family(session, token, ip=ip)
    user = repository.get_user(session, token.user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("invalid refresh token")
    return _issue_tokens(session, settings, user, family_id=token.family_id)


def _revoke_reused_family(session: Session, token: RefreshToken, *, ip: str | None) -> NoReturn:
    # Whoever holds the family's live token now, a thief or the user, is signed out.
    repository.revoke_refresh_family(session, token.family_id, utcnow())
    user = repository.get_user(session, token.user_id)
    if user is not None:
        family = str(token.family_id)
        _record_for_user(session, user, "auth.refresh_reuse_detected", ip=ip, family_id=family)
    raise RefreshTokenReuseError(
        "refresh token already used; every session of that login has been signed out"
    )


def logout(session: Session, refresh_token: str, *, ip: str | None) -> None:
    """Revoke every token of the login the refresh token belongs to (silently if unknown)."""
    token = repository.get_refresh_token_by_hash(session, hash_secret(refresh_token))
    if token is None:
        return
    repository.revoke_refresh_family(session, token.family_id, utcnow())
    user = repository.get_user(session, token.user_id)
    if user is not None:
        _record_for_user(session, user, "auth.logout", ip=ip)


def change_password(
    session: Session, principal: Principal, *, current_password: str, new_password: str
) -> None:
    """Replace the caller's password: every refresh token of the user is revoked, and the
    access tokens issued before stop working (their password stamp no longer matches)."""
    principal.require_write()
    user = repository.get_user(session, principal.user.id)
    if user is None or not verify_password(current_password, user.password_hash):
        raise AuthenticationError("the current password is incorrect")
    user.password_hash = hash_password(new_password)
    repository.revoke_refresh_tokens_of_user(session, user.id, utcnow())
    audit.record_act(
        session, principal, "auth.password_changed", target_type="user", target_id=user.id
    )


def _record_for_user(
    session: Session, user: User, action: str, *, ip: str | None, **detail: Any
) -> None:
    # Sign-in events belong to the user's default organization: they happen before any
    # organization is picked.
    audit.record(
        session,
        action,
        organization_id=user.default_organization_id,
        actor_id=user.id,
        actor_name=user.username,
        target_type="user",
        target_id=user.id,
        ip=ip,
        **detail,
    )


def _issue_tokens(
    session: Session, settings: Settings, user: User, *, family_id: uuid.UUID
) -> TokenPair:
    ttl = timedelta(minutes=settings.access_token_minutes)
    key = settings.signing_key()
    access = create_access_token(
        key=key,
        user_id=user.id,
        organization_id=user.default_organization_id,
        password_stamp=password_stamp(user.password_hash, key=key),
        ttl=ttl,
    )
    secret = new_refresh_token()
    repository.add_refresh_token(
        session,
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_secret(secret),
            expires_at=expiry(settings.refresh_token_days),
        ),
    )
    return TokenPair(access_token=access, refresh_token=secret, expires_in=int(ttl.total_seconds()))

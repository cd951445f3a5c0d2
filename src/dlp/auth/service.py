"""Business rules of identity: accounts, logins, token rotation, API keys, principals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dlp.auth import repository
from dlp.auth.models import ApiKey, Membership, RefreshToken, Role, User
from dlp.auth.schemas import RegisterRequest, TokenPair
from dlp.auth.security import (
    create_access_token,
    decode_access_token,
    expiry,
    hash_password,
    hash_secret,
    new_api_key,
    new_refresh_token,
    verify_password,
)
from dlp.config import Settings
from dlp.db import utcnow
from dlp.errors import AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError

API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


class RefreshTokenReuseError(AuthenticationError):
    """A spent refresh token came back: the family is revoked, and that must persist."""

    keep_changes = True


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which organization, with which role."""

    user: User
    organization_id: uuid.UUID
    role: Role

    def require(self, role: Role) -> None:
        """Raise ``PermissionDeniedError`` unless the caller's role is at least ``role``."""
        if self.role.rank < role.rank:
            raise PermissionDeniedError(
                f"your role in this organization is {self.role.value}; "
                f"this action needs {role.value}"
            )

    def require_superuser(self) -> None:
        """Raise ``PermissionDeniedError`` unless the caller administers the installation."""
        if not self.user.is_superuser:
            raise PermissionDeniedError("only the installation's superuser may do this")


def register(session: Session, request: RegisterRequest) -> Principal:
    """Create a user with a personal organization; the installation's first user is superuser."""
    taken = repository.username_or_email_taken(session, request.username, request.email)
    if taken is not None:
        raise ConflictError(f"that {taken} is already registered")
    organization = repository.add_organization(
        session, name=f"{request.username}'s organization", is_personal=True
    )
    user = User(
        username=request.username,
        email=request.email,
        password_hash=hash_password(request.password),
        is_superuser=repository.count_users(session) == 0,
        default_organization_id=organization.id,
    )
    try:
        repository.add_user(session, user)
    except IntegrityError as exc:
        raise ConflictError("that username or email is already registered") from exc
    repository.add_membership(
        session, organization_id=organization.id, user_id=user.id, role=Role.ADMIN
    )
    return Principal(user=user, organization_id=organization.id, role=Role.ADMIN)


def login(session: Session, settings: Settings, *, username: str, password: str) -> TokenPair:
    """Check credentials and start a new token family."""
    user = repository.get_user_by_login(session, username)
    valid = verify_password(password, user.password_hash if user else None)
    if user is None or not valid or not user.is_active:
        raise AuthenticationError("incorrect username or password")
    return _issue_tokens(session, settings, user, family_id=uuid.uuid4())


def refresh(session: Session, settings: Settings, refresh_token: str) -> TokenPair:
    """Spend a refresh token for a new pair; a reused token revokes its whole family."""
    now = utcnow()
    token = repository.get_refresh_token_by_hash(session, hash_secret(refresh_token))
    if token is None:
        raise AuthenticationError("invalid refresh token")
    if token.used_at is not None or token.revoked_at is not None:
        repository.revoke_refresh_family(session, token.family_id, now)
        raise RefreshTokenReuseError(
            "refresh token already used; every session of that login has been signed out"
        )
    if token.expires_at <= now:
        raise AuthenticationError("refresh token expired")
    if not repository.mark_refresh_token_used(session, token.id, now):
        repository.revoke_refresh_family(session, token.family_id, now)
        raise RefreshTokenReuseError(
            "refresh token already used; every session of that login has been signed out"
        )
    user = repository.get_user(session, token.user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("invalid refresh token")
    return _issue_tokens(session, settings, user, family_id=token.family_id)


def logout(session: Session, refresh_token: str) -> None:
    """Revoke the login the refresh token belongs to (silently if unknown)."""
    token = repository.get_refresh_token_by_hash(session, hash_secret(refresh_token))
    if token is not None:
        repository.revoke_refresh_family(session, token.family_id, utcnow())


def _issue_tokens(
    session: Session, settings: Settings, user: User, *, family_id: uuid.UUID
) -> TokenPair:
    ttl = timedelta(minutes=settings.access_token_minutes)
    access = create_access_token(
        key=settings.signing_key(),
        user_id=user.id,
        organization_id=user.default_organization_id,
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


def principal_from_access_token(
    session: Session, settings: Settings, token: str, organization_header: str | None
) -> Principal:
    """The caller behind a bearer token, in the organization they picked."""
    claims = decode_access_token(token, key=settings.signing_key())
    organization = organization_header or str(claims.organization_id)
    organization_id = _parse_organization_id(organization)
    # One query for both: this runs on every authenticated request.
    user, membership = repository.get_user_and_membership(
        session, user_id=claims.user_id, organization_id=organization_id
    )
    if user is None or not user.is_active:
        raise AuthenticationError("invalid access token")
    return _principal(user, organization_id, membership)


def principal_from_api_key(
    session: Session, key: str, organization_header: str | None
) -> Principal:
    """The caller behind an API key; a key is bound to the organization it was made in."""
    now = utcnow()
    api_key = repository.get_api_key_by_hash(session, hash_secret(key))
    if api_key is None or api_key.revoked_at is not None:
        raise AuthenticationError("invalid API key")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise AuthenticationError("API key expired")
    user = repository.get_user(session, api_key.user_id)
    if user is None or not user.is_active:
        raise AuthenticationError("invalid API key")
    if organization_header and organization_header != str(api_key.organization_id):
        raise PermissionDeniedError("this API key belongs to another organization")
    last = api_key.last_used_at
    if last is None or now - last > API_KEY_TOUCH_INTERVAL:
        repository.touch_api_key(session, api_key.id, now)
    return _principal_in(session, user, str(api_key.organization_id))


def _parse_organization_id(organization: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(organization)
    except ValueError:
        return None


def _principal(
    user: User, organization_id: uuid.UUID | None, membership: Membership | None
) -> Principal:
    if organization_id is None:
        raise PermissionDeniedError("X-DLP-Org is not an organization id")
    if membership is None:
        raise PermissionDeniedError("you are not a member of that organization")
    return Principal(user=user, organization_id=organization_id, role=membership.role)


def _principal_in(session: Session, user: User, organization: str) -> Principal:
    organization_id = _parse_organization_id(organization)
    membership = None
    if organization_id is not None:
        membership = repository.get_membership(
            session, organization_id=organization_id, user_id=user.id
        )
    return _principal(user, organization_id, membership)


def create_api_key(session: Session, principal: Principal, name: str) -> tuple[ApiKey, str]:
    """A new key for the caller in the current organization, and its one-time secret."""
    secret = new_api_key()
    api_key = repository.add_api_key(
        session,
        ApiKey(
            organization_id=principal.organization_id,
            user_id=principal.user.id,
            name=name,
            prefix=secret[:12],
            key_hash=hash_secret(secret),
        ),
    )
    return api_key, secret


def revoke_api_key(session: Session, principal: Principal, key_id: uuid.UUID) -> None:
    """Revoke one of the caller's keys."""
    api_key = repository.get_api_key(
        session, key_id=key_id, user_id=principal.user.id, organization_id=principal.organization_id
    )
    if api_key is None:
        raise NotFoundError("API key", key_id)
    api_key.revoked_at = utcnow()

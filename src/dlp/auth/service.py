"""Business rules of identity: accounts, principals (who calls, with which role and
credential), organization members. Signing in lives in ``dlp.auth.login_service``, API
keys in ``dlp.auth.api_key_service``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth import repository
from dlp.auth.models import Membership, Organization, Role, User
from dlp.auth.schemas import ApiKeyScope, RegisterRequest
from dlp.auth.security import decode_access_token, hash_password, hash_secret, stamp_matches
from dlp.config import Settings
from dlp.db import utcnow
from dlp.errors import AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError

API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which organization, with which role, through which credential."""

    user: User
    organization_id: uuid.UUID
    role: Role
    scope: ApiKeyScope | None = None
    """The API key's scope; None for a user's access token (the role alone decides)."""
    ip: str | None = None
    """The client's address, for the audit log (set by the request's dependency)."""

    def require(self, role: Role) -> None:
        """Raise ``PermissionDeniedError`` unless the caller's role is at least ``role``;
        a read-only key acts as a viewer whatever its owner's role."""
        if role.rank > Role.VIEWER.rank:
            self.require_write()
        if self.role.rank < role.rank:
            raise PermissionDeniedError(
                f"your role in this organization is {self.role.value}; "
                f"this action needs {role.value}"
            )

    def require_write(self) -> None:
        """Raise ``PermissionDeniedError`` for a key that may not change anything (a
        read-only or predict-only key)."""
        self.require_api()
        if self.scope == ApiKeyScope.READ:
            raise PermissionDeniedError("this API key is read-only; use a write key or sign in")

    def require_api(self) -> None:
        """Raise ``PermissionDeniedError`` for a predict-only key: it may call the prediction
        endpoints and nothing else."""
        if self.scope == ApiKeyScope.PREDICT:
            raise PermissionDeniedError(
                "this API key is predict-only: it may call the prediction endpoints only"
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


def principal_from_access_token(
    session: Session, settings: Settings, token: str, organization_header: str | None
) -> Principal:
    """The caller behind a bearer token, in the organization they picked."""
    key = settings.signing_key()
    claims = decode_access_token(token, key=key)
    organization = organization_header or str(claims.organization_id)
    organization_id = _parse_organization_id(organization)
    # One query for both: this runs on every authenticated request.
    user, membership = repository.get_user_and_membership(
        session, user_id=claims.user_id, organization_id=organization_id
    )
    if user is None or not user.is_active:
        raise AuthenticationError("invalid access token")
    if not stamp_matches(claims.password_stamp, user.password_hash, key=key):
        raise AuthenticationError("access token revoked by a password change; sign in again")
    return _principal(user, organization_id, membership)


def principal_from_api_key(
    session: Session, key: str, organization_header: str | None
) -> Principal:
    """The caller behind an API key; a key is bound to the organization it was made in."""
    now = utcnow()
    api_key = repository.get_api_key_by_hash(session, hash_secret(key))
    if api_key is None:
        raise AuthenticationError("invalid API key")
    if api_key.revoked_at is not None:
        raise AuthenticationError("API key revoked")
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
    principal = _principal_in(session, user, str(api_key.organization_id))
    return replace(principal, scope=ApiKeyScope(api_key.scope))


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


def list_members(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[tuple[User, Membership]], int]:
    """A page of the current organization's members; any member may read it."""
    return repository.list_members(
        session, organization_id=principal.organization_id, limit=limit, offset=offset
    )


def list_organizations(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[tuple[Organization, Membership]], int]:
    """A page of the organizations the caller belongs to, with their membership in each."""
    return repository.list_organizations_of(
        session, user_id=principal.user.id, limit=limit, offset=offset
    )


def add_member(
    session: Session, principal: Principal, *, username: str, role: Role
) -> tuple[User, Membership]:
    """Give an existing user ``role`` in the current organization (admins only)."""
    principal.require(Role.ADMIN)
    _lock_organization(session, principal.organization_id)
    user = repository.get_user_by_username(session, username)
    if user is None:
        raise NotFoundError("user", username)
    existing = repository.get_membership(
        session, organization_id=principal.organization_id, user_id=user.id
    )
    if existing is not None:
        raise ConflictError(f"{user.username} is already a member of this organization")
    membership = repository.add_membership(
        session, organization_id=principal.organization_id, user_id=user.id, role=role
    )
    audit.record_act(
        session,
        principal,
        "member.added",
        target_type="user",
        target_id=user.id,
        username=user.username,
        role=role.value,
    )
    return user, membership


def change_member_role(
    session: Session, principal: Principal, *, user_id: uuid.UUID, role: Role
) -> tuple[User, Membership]:
    """Change a member's role (admins only); the organization keeps at least one admin."""
    principal.require(Role.ADMIN)
    organization = _lock_organization(session, principal.organization_id)
    user, membership = _member_or_raise(session, principal.organization_id, user_id)
    if membership.role == role:
        return user, membership
    if role != Role.ADMIN and _owns(user, organization):
        raise ConflictError(f"{user.username} owns this personal organization and stays its admin")
    audit.record_act(
        session,
        principal,
        "member.role_changed",
        target_type="user",
        target_id=user.id,
        username=user.username,
        old_role=membership.role.value,
        role=role.value,
    )
    membership.role = role
    _keep_an_admin(session, organization.id, user)
    return user, membership


def remove_member(session: Session, principal: Principal, user_id: uuid.UUID) -> None:
    """Remove a member (admins only) or leave (anyone); never the last admin, nor the
    owner of a personal organization, whose account lives in it."""
    leaving = user_id == principal.user.id
    if not leaving:
        principal.require(Role.ADMIN)
    organization = _lock_organization(session, principal.organization_id)
    user, membership = _member_or_raise(session, principal.organization_id, user_id)
    if _owns(user, organization):
        raise ConflictError(
            f"{user.username} owns this personal organization and cannot be removed from it"
        )
    repository.delete_membership(session, membership)
    # Keys made there would work again if the user were added back later.
    repository.revoke_api_keys_of_member(
        session, organization_id=organization.id, user_id=user.id, at=utcnow()
    )
    _keep_an_admin(session, organization.id, user)
    audit.record_act(
        session,
        principal,
        "member.removed",
        target_type="user",
        target_id=user.id,
        username=user.username,
        role=membership.role.value,
        left=leaving,
    )


def _lock_organization(session: Session, organization_id: uuid.UUID) -> Organization:
    organization = repository.lock_organization(session, organization_id)
    if organization is None:
        raise NotFoundError("organization", organization_id)
    return organization


def _member_or_raise(
    session: Session, organization_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[User, Membership]:
    # Users of other organizations answer exactly like unknown ids.
    user, membership = repository.get_user_and_membership(
        session, user_id=user_id, organization_id=organization_id
    )
    if user is None or membership is None:
        raise NotFoundError("member", user_id)
    return user, membership


def _owns(user: User, organization: Organization) -> bool:
    return organization.is_personal and user.default_organization_id == organization.id


def _keep_an_admin(session: Session, organization_id: uuid.UUID, user: User) -> None:
    # Checked after the change, in the locked transaction, so two admins demoting each
    # other at the same moment cannot both succeed; the error rolls the change back.
    if repository.count_admins(session, organization_id) == 0:
        raise ConflictError(
            f"{user.username} is the organization's last admin; make another member admin first"
        )

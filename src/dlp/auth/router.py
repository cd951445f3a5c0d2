"""Auth endpoints: register, login, refresh, logout, the current user and their password,
API keys, and the members of the current organization."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from dlp.auth import api_key_service, login_service, service, throttle
from dlp.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    MemberCreate,
    MemberOut,
    MemberUpdate,
    OrganizationOut,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    UserOut,
)
from dlp.auth.service import Principal
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep, client_ip
from dlp.errors import UnsupportedMediaTypeError, ValidationError
from dlp.ratelimit import rate_limiter
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1", tags=["auth"])

_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
            "application/json": {"schema": LoginRequest.model_json_schema()},
        },
    }
}


def user_out(principal: Principal) -> UserOut:
    """The user view of a principal."""
    user = principal.user
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        role=principal.role,
        organization_id=principal.organization_id,
        is_superuser=user.is_superuser,
        created_at=user.created_at,
    )


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterRequest, request: Request, session: SessionDep) -> UserOut:
    """Create an account and its personal organization (a few per client IP an hour)."""
    principal = await throttle.throttled_registration(
        rate_limiter(request.app),
        ip=client_ip(request),
        attempt=lambda: run_in_threadpool(service.register, session, body),
    )
    return user_out(principal)


async def _login_body(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            return LoginRequest.model_validate(await request.json())
        if content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            form = await request.form()
            return LoginRequest.model_validate(
                {"username": form.get("username"), "password": form.get("password")}
            )
    except (PydanticValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError("login needs a username and a password") from exc
    raise UnsupportedMediaTypeError(
        "send the credentials as a form (OAuth2 password flow) or as JSON"
    )


@router.post("/auth/login", openapi_extra=_LOGIN_BODY)
async def login(
    body: Annotated[LoginRequest, Depends(_login_body)],
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
) -> TokenPair:
    """Exchange a username (or email) and password for tokens (access: 15 minutes); too
    many failures for the account or from the client IP answer 429 for a while."""
    ip = client_ip(request)
    return await throttle.throttled_login(
        rate_limiter(request.app),
        login=body.username,
        ip=ip,
        attempt=lambda: run_in_threadpool(
            login_service.login,
            session,
            platform.settings,
            username=body.username,
            password=body.password,
            ip=ip,
        ),
    )


@router.post("/auth/refresh")
def refresh(
    body: RefreshRequest, request: Request, session: SessionDep, platform: PlatformDep
) -> TokenPair:
    """Spend a refresh token for a new pair; replaying a spent one signs that login out."""
    return login_service.refresh(
        session, platform.settings, body.refresh_token, ip=client_ip(request)
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(body: RefreshRequest, request: Request, session: SessionDep) -> Response:
    """Sign out the login the refresh token belongs to (every token of its family)."""
    login_service.logout(session, body.refresh_token, ip=client_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/me")
def me(principal: CurrentPrincipal) -> UserOut:
    """The calling user, in the current organization."""
    return user_out(principal)


@router.post("/users/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    body: PasswordChange, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    """Change your password (401 when ``current_password`` is wrong): every login is
    signed out, refresh and access tokens alike; API keys keep working."""
    login_service.change_password(
        session,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
def create_api_key(
    body: ApiKeyCreate, session: SessionDep, principal: CurrentPrincipal
) -> ApiKeyCreated:
    """Create an API key in the current organization, scoped ``read``, ``write`` (default)
    or ``predict``, expiring after ``expires_in_days`` or never; the key is shown once."""
    api_key, secret = api_key_service.create_api_key(
        session,
        principal,
        name=body.name,
        scope=body.scope,
        expires_in_days=body.expires_in_days,
    )
    return ApiKeyCreated(
        id=api_key.id,
        name=api_key.name,
        key=secret,
        scope=body.scope,
        prefix=api_key.prefix,
        created_at=api_key.created_at,
        expires_at=api_key.expires_at,
    )


@router.get("/api-keys")
def list_api_keys(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[ApiKeyOut]:
    """Your API keys in the current organization, newest first, with when each was last
    used; never the key itself."""
    rows, total = api_key_service.list_api_keys(
        session, principal, limit=page.limit, offset=page.offset
    )
    return Page.build(rows, total, page, ApiKeyOut.build)


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Revoke one of your API keys (prediction endpoints may accept it a few seconds more:
    ``DLP_SERVING_LOOKUP_CACHE_SECONDS``)."""
    api_key_service.revoke_api_key(session, principal, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


MEMBERS = "/organizations/current/members"
MemberId = Annotated[uuid.UUID, Path(description="The member's user id.")]


@router.get("/organizations", tags=["organizations"])
def list_organizations(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[OrganizationOut]:
    """The organizations you belong to, by name, with your role in each (pick one with
    ``X-DLP-Org``)."""
    rows, total = service.list_organizations(
        session, principal, limit=page.limit, offset=page.offset
    )
    return Page.build(rows, total, page, lambda row: OrganizationOut.build(*row))


@router.get(MEMBERS, tags=["organizations"])
def list_members(
    session: SessionDep, principal: CurrentPrincipal, page: PageParams = Depends(page_params)
) -> Page[MemberOut]:
    """The current organization's members, by username, with their roles."""
    rows, total = service.list_members(session, principal, limit=page.limit, offset=page.offset)
    return Page.build(rows, total, page, lambda row: MemberOut.build(*row))


@router.post(MEMBERS, status_code=status.HTTP_201_CREATED, tags=["organizations"])
def add_member(body: MemberCreate, session: SessionDep, principal: CurrentPrincipal) -> MemberOut:
    """Add a registered user to the current organization (admins only)."""
    user, membership = service.add_member(
        session, principal, username=body.username, role=body.role
    )
    return MemberOut.build(user, membership)


@router.patch(MEMBERS + "/{user_id}", tags=["organizations"])
def change_member_role(
    user_id: MemberId, body: MemberUpdate, session: SessionDep, principal: CurrentPrincipal
) -> MemberOut:
    """Change a member's role (admins only); the last admin cannot be demoted."""
    user, membership = service.change_member_role(
        session, principal, user_id=user_id, role=body.role
    )
    return MemberOut.build(user, membership)


@router.delete(
    MEMBERS + "/{user_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["organizations"]
)
def remove_member(user_id: MemberId, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Remove a member (admins only) or leave (your own id); never the last admin, nor a
    personal organization's owner. The member's API keys there are revoked."""
    service.remove_member(session, principal, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

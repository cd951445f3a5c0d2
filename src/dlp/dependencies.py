"""FastAPI dependencies shared by every router: the platform, the session, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from dlp.auth import service as auth_service
from dlp.auth.models import Role
from dlp.auth.security import API_KEY_PREFIX
from dlp.auth.service import Principal
from dlp.db import session_scope
from dlp.errors import AuthenticationError, DLPError
from dlp.platform import Platform
from dlp.storage import FileStore

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_platform(request: Request) -> Platform:
    """The platform built at start-up."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_store(platform: PlatformDep) -> FileStore:
    """The file store."""
    return platform.store


StoreDep = Annotated[FileStore, Depends(get_store)]


def get_session(platform: PlatformDep) -> Iterator[Session]:
    """A session per request: committed when the endpoint succeeds, else rolled back."""
    session = platform.sessions()
    try:
        yield session
        session.commit()
    except DLPError as exc:
        if exc.keep_changes:
            session.commit()
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": commit before the response is sent, so a 201 means the row is saved.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def principal_from_token(
    platform: Platform, token: str, organization: str | None, *, api_key: bool | None = None
) -> Principal:
    """The caller behind an access token or an API key, checked in a short transaction of its own.

    ``api_key`` says which of the two ``token`` is; None tells them apart by the
    API-key prefix (``dlp_...``), for channels that carry either (``?token=``).
    ``organization`` picks the organization like the ``X-DLP-Org`` header.
    """
    if api_key is None:
        api_key = token.startswith(API_KEY_PREFIX)
    with session_scope(platform.sessions) as session:
        if api_key:
            return auth_service.principal_from_api_key(session, token, organization)
        return auth_service.principal_from_access_token(
            session, platform.settings, token, organization
        )


def get_principal(
    request: Request,
    platform: PlatformDep,
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The authenticated caller, from a bearer token or an API key.

    Authentication runs in its own short transaction, so a long request (an
    upload) holds no database connection while it streams.
    """
    organization = request.headers.get("X-DLP-Org")
    if bearer:
        principal = principal_from_token(platform, bearer, organization, api_key=False)
    elif api_key:
        principal = principal_from_token(platform, api_key, organization, api_key=True)
    else:
        raise AuthenticationError("credentials required: a bearer token or an X-API-Key header")
    request.state.user_id = str(principal.user.id)
    request.state.organization_id = str(principal.organization_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_member(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be allowed to create and delete (member or admin)."""
    principal.require(Role.MEMBER)
    return principal


WriterPrincipal = Annotated[Principal, Depends(require_member)]

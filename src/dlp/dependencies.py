"""FastAPI dependencies shared by every router: the platform, the session, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from dlp.auth import service as auth_service
from dlp.auth.models import Role
from dlp.auth.security import API_KEY_PREFIX
from dlp.auth.service import Principal
from dlp.cache import SingleFlightCache
from dlp.config import Settings
from dlp.db import session_scope
from dlp.errors import AuthenticationError, DLPError
from dlp.platform import Platform
from dlp.storage import FileStore

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


# Dependencies that do no I/O are async: FastAPI runs them on the event loop instead
# of handing each one to the thread pool.
async def get_platform(request: Request) -> Platform:
    """The platform built at start-up."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def get_store(platform: PlatformDep) -> FileStore:
    """The file store."""
    return platform.store


StoreDep = Annotated[FileStore, Depends(get_store)]


async def get_session(platform: PlatformDep) -> AsyncIterator[Session]:
    """A session per request: committed when the endpoint succeeds, else rolled back.

    Async so that opening and closing it cost no thread-pool hop (a session connects
    lazily, on its first query, and gives the connection back when its transaction
    ends); only the commit or rollback, which talk to the database, run in the pool.
    """
    session = platform.sessions()
    try:
        yield session
        await run_in_threadpool(session.commit)
    except DLPError as exc:
        await run_in_threadpool(session.commit if exc.keep_changes else session.rollback)
        raise
    except BaseException:
        await run_in_threadpool(session.rollback)
        raise
    finally:
        session.close()


# scope="function": commit before the response is sent, so a 201 means the row is saved.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def authenticate(
    session: Session,
    settings: Settings,
    token: str,
    organization: str | None,
    *,
    api_key: bool | None = None,
) -> Principal:
    """The caller behind an access token or an API key.

    ``api_key`` says which of the two ``token`` is; None tells them apart by the
    API-key prefix (``dlp_...``), for channels that carry either (``?token=``).
    ``organization`` picks the organization like the ``X-DLP-Org`` header.
    """
    if api_key is None:
        api_key = token.startswith(API_KEY_PREFIX)
    if api_key:
        return auth_service.principal_from_api_key(session, token, organization)
    return auth_service.principal_from_access_token(session, settings, token, organization)


def principal_from_token(
    platform: Platform, token: str, organization: str | None, *, api_key: bool | None = None
) -> Principal:
    """:func:`authenticate` in a short transaction of its own."""
    with session_scope(platform.sessions) as session:
        return authenticate(session, platform.settings, token, organization, api_key=api_key)


def _credentials(bearer: str | None, api_key: str | None) -> tuple[str, bool]:
    if bearer:
        return bearer, False
    if api_key:
        return api_key, True
    raise AuthenticationError("credentials required: a bearer token or an X-API-Key header")


def _remember(request: Request, principal: Principal) -> Principal:
    request.state.user_id = str(principal.user.id)
    request.state.organization_id = str(principal.organization_id)
    return principal


def get_principal(
    request: Request,
    platform: PlatformDep,
    session: SessionDep,
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The authenticated caller, from a bearer token or an API key, checked in the
    request's own transaction (one connection, one commit per request)."""
    token, is_key = _credentials(bearer, api_key)
    organization = request.headers.get("X-DLP-Org")
    return _remember(
        request, authenticate(session, platform.settings, token, organization, api_key=is_key)
    )


def get_streaming_principal(
    request: Request,
    platform: PlatformDep,
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The authenticated caller, checked in a short transaction of its own, so a long
    request (an upload) holds no database connection while it streams."""
    token, is_key = _credentials(bearer, api_key)
    organization = request.headers.get("X-DLP-Org")
    return _remember(request, principal_from_token(platform, token, organization, api_key=is_key))


async def get_serving_principal(request: Request) -> Principal:
    """The caller of a prediction endpoint: checked like :func:`get_streaming_principal`
    (no connection held while the prediction is awaited), then remembered for
    ``DLP_SERVING_LOOKUP_CACHE_SECONDS`` under the exact credential.

    It reads the two headers itself rather than through sub-dependencies: on the
    hottest path each dependency FastAPI solves costs more than the header lookup.
    Routes using it declare ``SERVING_SECURITY`` so the docs still show the schemes.
    """
    scheme, _, bearer = (request.headers.get("authorization") or "").partition(" ")
    token, is_key = _credentials(
        bearer if scheme.lower() == "bearer" else None, request.headers.get("x-api-key")
    )
    organization = request.headers.get("X-DLP-Org")
    cache: SingleFlightCache[tuple[str, bool, str | None], Principal] = (
        request.app.state.credential_cache
    )
    platform = request.app.state.platform
    principal = await cache.get_or_load(
        (token, is_key, organization),
        lambda: run_in_threadpool(
            principal_from_token, platform, token, organization, api_key=is_key
        ),
    )
    return _remember(request, principal)


SERVING_SECURITY: dict[str, Any] = {
    "security": [{_bearer.scheme_name: []}, {_api_key.scheme_name: []}]
}
"""``openapi_extra`` of routes that authenticate with :func:`get_serving_principal`."""

CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
ServingPrincipal = Annotated[Principal, Depends(get_serving_principal)]


async def require_member(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be allowed to create and delete (member or admin)."""
    principal.require(Role.MEMBER)
    return principal


async def require_streaming_member(
    principal: Annotated[Principal, Depends(get_streaming_principal)],
) -> Principal:
    """:func:`require_member` for streaming requests (see :func:`get_streaming_principal`)."""
    principal.require(Role.MEMBER)
    return principal


WriterPrincipal = Annotated[Principal, Depends(require_member)]

StreamingWriterPrincipal = Annotated[Principal, Depends(require_streaming_member)]

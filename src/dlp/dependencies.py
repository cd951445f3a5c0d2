"""FastAPI dependencies shared by every router: the platform, the session, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
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
from dlp.ratelimit import caller_key, rate_limiter
from dlp.storage import FileStore

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)
_READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


async def get_session(request: Request, platform: PlatformDep) -> AsyncIterator[Session]:
    """A session per request: committed when the endpoint succeeds, else rolled back.

    Async so that opening and closing it cost no thread-pool hop (a session connects
    lazily, on its first query, and gives the connection back when its transaction
    ends); only the commit or rollback, which talk to the database, run in the pool.
    Requests that only read (GET, HEAD) use the read replica when there is one; it may
    lag the primary, so a client may not see at once what it just wrote.
    """
    reading = request.method in _READING_METHODS
    session = (platform.reading_sessions() if reading else platform.sessions)()
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


def client_ip(request: Request) -> str | None:
    """The client's address, as the audit log records it: the connection's peer, or
    what ``X-Forwarded-For`` says when the peer is one of ``DLP_TRUSTED_PROXIES``
    (``dlp serve`` has uvicorn rewrite it)."""
    return request.client.host if request.client else None


def _admit(request: Request, principal: Principal, *, prediction: bool = False) -> Principal:
    """Check the credential's scope against the endpoint, tag the request's logs, and
    give the caller its address.

    A predict-only key may call the prediction endpoints only; a read-only key may
    only read (the role checks refuse it too; this also covers writes open to any role,
    such as making an API key).
    """
    if not prediction:
        if request.method in _READING_METHODS:
            principal.require_api()
        else:
            principal.require_write()
    request.state.user_id = str(principal.user.id)
    request.state.organization_id = str(principal.organization_id)
    return replace(principal, ip=client_ip(request))


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
    return _admit(
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
    return _admit(request, principal_from_token(platform, token, organization, api_key=is_key))


async def get_serving_principal(request: Request) -> Principal:
    """The caller of a prediction endpoint: checked like :func:`get_streaming_principal`
    (no connection held while the prediction is awaited), then remembered for
    ``DLP_SERVING_LOOKUP_CACHE_SECONDS`` under the exact credential: a key revoked or
    expired meanwhile still predicts until then. Every key scope may predict.

    It reads the two headers itself rather than through sub-dependencies: on the
    hottest path each dependency FastAPI solves costs more than the header lookup.
    Routes using it declare ``SERVING_SECURITY`` so the docs still show the schemes.
    The request is charged to the prediction budgets of the caller and of its IP, both in
    one round trip to Redis when the credential is cached.
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
    limiter = rate_limiter(request.app)
    ip = client_ip(request)
    credential = (token, is_key, organization)
    principal = cache.get(credential)
    if principal is None:
        # A credential not seen lately costs a database lookup: its IP pays first.
        await limiter.spend(limiter.predictions, ip=ip)
        principal = await cache.get_or_load(
            credential,
            lambda: run_in_threadpool(
                principal_from_token, platform, token, organization, api_key=is_key
            ),
        )
        ip = None
    caller = caller_key(principal.user.id, token, is_api_key=is_key)
    await limiter.spend(limiter.predictions, caller=caller, ip=ip)
    return _admit(request, principal, prediction=True)


SERVING_SECURITY: dict[str, Any] = {
    "security": [{_bearer.scheme_name: []}, {_api_key.scheme_name: []}]
}
"""``openapi_extra`` of routes that authenticate with :func:`get_serving_principal`."""


async def _charge_api_budget(
    request: Request, principal: Principal, bearer: str | None, api_key: str | None
) -> Principal:
    token, is_key = _credentials(bearer, api_key)
    limiter = rate_limiter(request.app)
    caller = caller_key(principal.user.id, token, is_api_key=is_key)
    await limiter.spend(limiter.api, caller=caller)
    return principal


async def get_charged_principal(
    request: Request,
    principal: Annotated[Principal, Depends(get_principal)],
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """:func:`get_principal`, charged to the caller's API budget (its IP paid on arrival,
    in ``dlp.ratelimit.ApiRateLimitMiddleware``)."""
    return await _charge_api_budget(request, principal, bearer, api_key)


async def get_charged_streaming_principal(
    request: Request,
    principal: Annotated[Principal, Depends(get_streaming_principal)],
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """:func:`get_streaming_principal`, charged to the caller's API budget."""
    return await _charge_api_budget(request, principal, bearer, api_key)


CurrentPrincipal = Annotated[Principal, Depends(get_charged_principal)]
ServingPrincipal = Annotated[Principal, Depends(get_serving_principal)]


async def require_member(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be allowed to create and delete (member or admin)."""
    principal.require(Role.MEMBER)
    return principal


async def require_streaming_member(
    principal: Annotated[Principal, Depends(get_charged_streaming_principal)],
) -> Principal:
    """:func:`require_member` for streaming requests (see :func:`get_streaming_principal`)."""
    principal.require(Role.MEMBER)
    return principal


WriterPrincipal = Annotated[Principal, Depends(require_member)]

StreamingWriterPrincipal = Annotated[Principal, Depends(require_streaming_member)]


async def require_superuser(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be the installation's superuser."""
    principal.require_superuser()
    return principal


SuperuserPrincipal = Annotated[Principal, Depends(require_superuser)]

"""The SDK's exception tree: one class per contract error code, all under DLPClientError."""

from __future__ import annotations

import httpx

CONNECTION_ERROR = "connection_error"


class DLPClientError(Exception):
    """A call the server refused or could not answer.

    ``error`` is the contract's machine code (``not_found``, ``validation_error``, ...),
    ``request_id`` the server's ``X-Request-ID`` for the call (quote it in bug reports).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str = "internal_error",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.request_id = request_id

    def __str__(self) -> str:
        status = f"{self.status_code} " if self.status_code is not None else ""
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{status}{self.error}: {self.message}{suffix}"


class ValidationError(DLPClientError):
    """422: the request does not fit the contract or the data."""


class AuthenticationError(DLPClientError):
    """401: missing, expired or wrong credentials."""


class PermissionDeniedError(DLPClientError):
    """403: the credentials may not do this (e.g. a viewer writing)."""


class NotFoundError(DLPClientError):
    """404: no such resource in the caller's organization."""


class ConflictError(DLPClientError):
    """409: the resource's state forbids the call (a name taken, a version still served)."""


class PayloadTooLargeError(DLPClientError):
    """413: the upload is over the server's size limit."""


class UnsupportedMediaTypeError(DLPClientError):
    """415: a file type the server does not accept."""


class RateLimitedError(DLPClientError):
    """429: too many calls; ``retry_after`` says how many seconds to wait, when known."""

    retry_after: float | None = None


class ServerError(DLPClientError):
    """5xx: the server failed (``internal_error``, ``training_error``, ``service_unavailable``)."""


class DLPConnectionError(DLPClientError):
    """The server could not be reached, or the connection broke mid-call."""


class JobWaitTimeoutError(DLPClientError, TimeoutError):
    """``wait()`` gave up before the job or study ended."""


_BY_STATUS: dict[int, tuple[type[DLPClientError], str]] = {
    401: (AuthenticationError, "authentication_error"),
    403: (PermissionDeniedError, "permission_denied"),
    404: (NotFoundError, "not_found"),
    409: (ConflictError, "conflict"),
    413: (PayloadTooLargeError, "payload_too_large"),
    415: (UnsupportedMediaTypeError, "unsupported_media_type"),
    422: (ValidationError, "validation_error"),
    429: (RateLimitedError, "rate_limited"),
}


def error_from_response(response: httpx.Response) -> DLPClientError:
    """The exception for an error answer, read from the contract's error body."""
    status = response.status_code
    if status in _BY_STATUS:
        cls, code = _BY_STATUS[status]
    elif status >= 500:
        cls, code = ServerError, "internal_error"
    else:
        cls, code = DLPClientError, "http_error"
    message = response.reason_phrase or "error"
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error") or code)
        message = str(body.get("message") or body.get("detail") or message)
        request_id = str(body.get("request_id") or request_id or "") or None
    elif response.text:
        message = response.text[:500]
    error = cls(message, status_code=status, error=code, request_id=request_id)
    if isinstance(error, RateLimitedError):
        error.retry_after = _seconds(response.headers.get("retry-after"))
    return error


def connection_error(url: str, exc: httpx.TransportError) -> DLPConnectionError:
    """A clear error for a transport failure talking to ``url``."""
    reason = str(exc) or type(exc).__name__
    return DLPConnectionError(
        f"cannot reach the dlp server at {url}: {reason}", error=CONNECTION_ERROR
    )


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

"""The one exception tree of dlp.

Every error the platform raises on purpose is a ``DLPError``. Each class carries
the HTTP status and the contract's machine code; ``dlp.main`` turns them into
JSON in one handler. This module is pure Python so that ``dlp.ml``, the worker
and the CLI can raise and catch the same classes without importing the web
stack.
"""

from __future__ import annotations


class DLPError(Exception):
    """Base class of every error dlp raises deliberately."""

    status_code: int = 500
    code: str = "internal_error"
    keep_changes: bool = False
    """True when the transaction must still commit (e.g. a revocation the error reports)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(DLPError):
    """The input is well-formed HTTP but makes no sense (bad config, bad data)."""

    status_code = 422
    code = "validation_error"


class AuthenticationError(DLPError):
    """Missing, expired, tampered or revoked credentials."""

    status_code = 401
    code = "authentication_error"


class PermissionDeniedError(DLPError):
    """Authenticated, but the role does not allow this action."""

    status_code = 403
    code = "permission_denied"


class NotFoundError(DLPError):
    """No such resource, or one that belongs to another organization."""

    status_code = 404
    code = "not_found"

    def __init__(self, resource: str, resource_id: object | None = None) -> None:
        message = (
            f"{resource} not found"
            if resource_id is None
            else (f"{resource} {resource_id} not found")
        )
        super().__init__(message)


class ConflictError(DLPError):
    """The request clashes with existing state (a taken username, say)."""

    status_code = 409
    code = "conflict"


class PayloadTooLargeError(DLPError):
    """An upload or request body over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(DLPError):
    """A file type dlp does not accept."""

    status_code = 415
    code = "unsupported_media_type"


class RateLimitedError(DLPError):
    """Too many requests; ``retry_after`` is in seconds."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TrainingError(DLPError):
    """Training could not produce a model (divergence, no usable data)."""

    status_code = 500
    code = "training_error"


class ServiceUnavailableError(DLPError):
    """A dependency (database, queue, file store) does not answer; worth retrying."""

    status_code = 503
    code = "service_unavailable"


class ReplicaLostError(Exception):
    """A data-parallel training process died mid-run (killed, out of memory, a crash).

    Not the user's doing: the job is retried from its last checkpoint, like a job whose
    worker vanished, until it runs out of attempts.
    """

"""structlog set-up: JSON lines in production, readable lines in a terminal.

Besides the time, level and logger, lines carry the context bound with structlog's
contextvars: ``request_id`` in the API (and, from the hint, in a worker running the
job a request submitted), ``job_id``, ``org_id`` and ``user_id`` in a worker running
a job; and the authenticated caller's ``user_id`` and ``org_id`` in the API.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

import structlog

# The request's ``scope["state"]``: authentication writes the caller into it later, from
# threads and tasks whose own context changes would never reach the request's.
_request_state: ContextVar[dict[str, Any] | None] = ContextVar("dlp_request_state", default=None)


def bind_request_state(state: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Let this request's log lines name its caller once authentication records it."""
    return _request_state.set(state)


def unbind_request_state(token: Token[dict[str, Any] | None]) -> None:
    """Forget the request's state (the request ended)."""
    _request_state.reset(token)


def add_request_caller(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the authenticated caller's ``user_id`` and ``org_id`` to a request's lines."""
    state = _request_state.get()
    if state:
        user_id = state.get("user_id")
        if user_id is not None:
            event_dict.setdefault("user_id", user_id)
        org_id = state.get("organization_id")
        if org_id is not None:
            event_dict.setdefault("org_id", org_id)
    return event_dict


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Route stdlib and structlog records through one renderer."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_caller,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info
            if use_json
            else structlog.processors.ExceptionPrettyPrinter(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

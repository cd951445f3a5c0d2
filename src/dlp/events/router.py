"""Live progress of a training job: Server-Sent Events and a WebSocket, with the same events."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from dlp.dependencies import CurrentPrincipal, PlatformDep, principal_from_token
from dlp.errors import AuthenticationError, DLPError
from dlp.events.delivery import (
    NO_BUFFERING_HEADERS,
    EventStreamResponse,
    send_over_websocket,
    sse_frames,
)
from dlp.events.stream import job_event_stream
from dlp.platform import Platform

router = APIRouter(prefix="/api/v1/training/jobs", tags=["training"])

INTERNAL_ERROR_CLOSE = 1011
CLOSE_REASON_BYTES = 120

_SSE_DESCRIPTION = (
    "`event: status|metric|log` and `data: <JSON>` frames: the job's status and its "
    "metrics so far, then changes as they happen, ending after the terminal status."
)

# One event of the stream, as OpenAPI 3.1 tools read a text/event-stream schema.
_SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "metric", "log"]},
        "data": {"type": "string", "description": "The event as a JSON object."},
        "id": {"type": "string"},
    },
}


@router.get(
    "/{job_id}/events",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": _SSE_DESCRIPTION,
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        }
    },
)
async def stream_job_events(
    job_id: uuid.UUID, platform: PlatformDep, principal: CurrentPrincipal
) -> EventStreamResponse:
    """Follow a job as Server-Sent Events until it ends."""
    events = job_event_stream(platform, principal, job_id)
    first = await anext(events)  # checks access: a 404 before any byte of the stream
    return EventStreamResponse(sse_frames(first, events), headers=NO_BUFFERING_HEADERS)


@router.websocket("/{job_id}/ws")
async def follow_job_over_websocket(
    websocket: WebSocket, job_id: uuid.UUID, token: str | None = None, org: str | None = None
) -> None:
    """Follow a job as JSON messages; ``?token=`` is an access token or an API key.

    Refusals close the socket before any event: 4401 bad credentials, 4403 not
    a member of ``?org=``, 4404 no such job in the organization.
    """
    # Accept first: a socket closed during the handshake reaches browsers as a
    # bare failure, without the close code that says why.
    await websocket.accept()
    platform: Platform = websocket.app.state.platform
    try:
        if not token:
            raise AuthenticationError("credentials required: ?token=<access token or API key>")
        principal = await run_in_threadpool(principal_from_token, platform, token, org)
        principal.require_api()
        events = job_event_stream(platform, principal, job_id)
        first = await anext(events)
    except DLPError as exc:
        await websocket.close(code=close_code(exc), reason=close_reason(exc.message))
        return
    await send_over_websocket(websocket, first, events)


def close_code(error: DLPError) -> int:
    """The WebSocket close code of an error: 4000 + its HTTP status (4401, 4403, 4404)."""
    if 400 <= error.status_code < 500:
        return 4000 + error.status_code
    return INTERNAL_ERROR_CLOSE


def close_reason(message: str) -> str:
    """A close frame's reason: ``message`` cut to fit."""
    # A close frame's reason holds at most 123 bytes of UTF-8.
    return message.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore")

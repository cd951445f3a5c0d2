"""A job's event stream on the wire: Server-Sent Events frames or WebSocket messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from fastapi.sse import format_sse_event
from starlette.responses import StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

KEEP_ALIVE_SECONDS = 15.0
KEEP_ALIVE_FRAME = format_sse_event(comment="keep-alive")
NORMAL_CLOSURE = 1000
NO_BUFFERING_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response (send it with ``NO_BUFFERING_HEADERS``).

    Not FastAPI's ``EventSourceResponse``: as a ``response_class`` that one
    makes FastAPI run the endpoint as a generator once the response has begun,
    too late to answer 404, and its keep-alive comment is fixed.
    """

    media_type = "text/event-stream"


def to_json(event: dict[str, Any]) -> str:
    """An event as one line of JSON."""
    return json.dumps(event, separators=(",", ":"))


def sse_frame(event: dict[str, Any]) -> bytes:
    """``event: <type>`` and ``data: <json>``, ended by a blank line."""
    return format_sse_event(data_str=to_json(event), event=str(event.get("type", "message")))


async def sse_frames(
    first: dict[str, Any],
    events: AsyncGenerator[dict[str, Any]],
    *,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
) -> AsyncIterator[bytes]:
    """SSE frames of ``first`` and then ``events``, with a keep-alive comment after each
    ``keep_alive_seconds`` of silence; closes ``events`` when done or abandoned."""
    yield sse_frame(first)
    # The next event is awaited in a task of its own that outlives each yield,
    # so waiting for it can time out without cancelling the stream (an anyio
    # task group cannot span a yield).
    pending: asyncio.Task[dict[str, Any] | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(_next_or_none(events))
            done, _ = await asyncio.wait({pending}, timeout=keep_alive_seconds)
            if not done:
                yield KEEP_ALIVE_FRAME
                continue
            event = pending.result()
            pending = None
            if event is None:
                return
            yield sse_frame(event)
    finally:
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.wait({pending})
            await events.aclose()


async def send_over_websocket(
    websocket: WebSocket, first: dict[str, Any], events: AsyncGenerator[dict[str, Any]]
) -> None:
    """Send ``first`` and then ``events`` as JSON text messages and close with 1000 at the end.

    A client that goes away stops the stream at once rather than at the next event.
    """
    try:
        async with anyio.create_task_group() as tasks:

            async def stop_when_client_leaves() -> None:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass  # clients have nothing to say; their messages are ignored
                tasks.cancel_scope.cancel()

            tasks.start_soon(stop_when_client_leaves)
            try:
                await websocket.send_text(to_json(first))
                async for event in events:
                    await websocket.send_text(to_json(event))
                await websocket.close(code=NORMAL_CLOSURE)
            except WebSocketDisconnect:
                pass
            tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await events.aclose()


async def _next_or_none(events: AsyncGenerator[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None

"""Server-Sent Events of a job's live stream, parsed into typed events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from dlp.client.schemas import JobEvent

_EVENT = TypeAdapter[JobEvent](JobEvent)


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON payloads of an SSE stream's frames; comments and keep-alives are skipped."""
    data: list[str] = []
    # A blank line ends a frame; the extra one flushes a stream cut without it.
    for line in chain(lines, ("",)):
        if not line:
            payload = json.loads("\n".join(data)) if data else None
            data = []
            if isinstance(payload, dict):
                yield payload
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))


def to_event(payload: dict[str, Any]) -> JobEvent | None:
    """A typed event, or None for an event type this SDK does not know."""
    try:
        return _EVENT.validate_python(payload)
    except PydanticValidationError:
        return None


class EventDeduplicator:
    """Drops what a reconnected stream repeats: its snapshot replays status and metrics."""

    def __init__(self) -> None:
        self.last_metric_id = 0
        self.last_status: str | None = None

    def is_new(self, event: JobEvent) -> bool:
        """True for an event not seen before on this job's stream."""
        if event.type == "metric":
            if event.id and event.id <= self.last_metric_id:
                return False
            self.last_metric_id = max(self.last_metric_id, event.id)
        elif event.type == "status":
            if event.status == self.last_status:
                return False
            self.last_status = event.status
        return True

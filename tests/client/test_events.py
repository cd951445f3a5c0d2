"""Parsing Server-Sent Events into typed job events."""

from __future__ import annotations

from dlp.client import LogEvent, MetricEvent, StatusEvent
from dlp.client.events import EventDeduplicator, parse_sse, to_event


def test_frames_comments_and_multiline_data() -> None:
    lines = [
        ": keep-alive",
        "",
        "event: status",
        'data: {"type": "status", "status": "running",',
        'data: "progress": {"epoch": 1, "total_epochs": 3}}',
        "",
        "event: log",
        'data: {"type": "log", "message": "hello"}',
    ]
    events = [to_event(payload) for payload in parse_sse(lines)]
    assert isinstance(events[0], StatusEvent) and events[0].progress.epoch == 1
    assert isinstance(events[1], LogEvent) and events[1].message == "hello"


def test_unknown_event_types_are_skipped() -> None:
    assert to_event({"type": "gossip", "what": 1}) is None


def test_a_reconnected_stream_does_not_repeat_events() -> None:
    seen = EventDeduplicator()
    running = StatusEvent(type="status", status="running")
    metric = MetricEvent(type="metric", id=7, epoch=1, step=3, name="val_loss", value=0.5)
    assert seen.is_new(running) and seen.is_new(metric)
    assert not seen.is_new(running) and not seen.is_new(metric)
    assert seen.is_new(StatusEvent(type="status", status="succeeded"))

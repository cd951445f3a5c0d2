"""Training calls: submit, list, get, metrics, cancel, follow the event stream, wait."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from typing import Any

from dlp.client.errors import DLPConnectionError
from dlp.client.events import EventDeduplicator, parse_sse, to_event
from dlp.client.resource import (
    DEFAULT_PAGE_SIZE,
    Resource,
    deadline_after,
    iter_pages,
    poll_until_finished,
)
from dlp.client.schemas import JobEvent, MetricPoint, Page, StatusEvent, TrainingJob

STREAM_READ_SECONDS = 45.0
"""Longest silence tolerated on an event stream (the server sends a keep-alive every 15 s)."""
RECONNECTS = 3
RECONNECT_DELAY_SECONDS = 1.0
POLL_SECONDS = 1.0


class TrainingJobs(Resource):
    """``client.jobs``: training jobs and their live progress."""

    def submit(
        self,
        dataset_id: str,
        *,
        task: str,
        target: str | None = None,
        name: str | None = None,
        text_column: str | None = None,
        model: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        priority: str | None = None,
        resources: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> TrainingJob:
        """Queue a training job; ``model``, ``training`` and ``resources`` are the contract's
        objects (e.g. ``training={"epochs": 5}``); unset fields take the server's defaults."""
        body = {
            "dataset_id": dataset_id,
            "task": task,
            "target": target,
            "name": name,
            "text_column": text_column,
            "model": model,
            "training": training,
            "priority": priority,
            "resources": resources,
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
        }
        response = self._transport.request(
            "POST",
            "/api/v1/training/jobs",
            json={key: value for key, value in body.items() if value is not None},
        )
        return self._bind(TrainingJob.model_validate(response.json()))

    def list(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[TrainingJob]:
        """One page of the organization's jobs, newest first (``status`` filters)."""
        response = self._transport.request(
            "GET",
            "/api/v1/training/jobs",
            params={"status": status, "limit": limit, "offset": offset},
        )
        page = Page[TrainingJob].model_validate(response.json())
        for job in page.items:
            self._bind(job)
        return page

    def iter(
        self, *, status: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[TrainingJob]:
        """Every job of the organization (``status`` filters), page after page."""
        return iter_pages(
            lambda limit, offset: self.list(status=status, limit=limit, offset=offset), page_size
        )

    def get(self, job_id: str) -> TrainingJob:
        """One job: status, progress, final metrics, the model it produced."""
        response = self._transport.request("GET", f"/api/v1/training/jobs/{job_id}")
        return self._bind(TrainingJob.model_validate(response.json()))

    def metrics(self, job_id: str) -> builtins.list[MetricPoint]:
        """Every metric the job reported, oldest first."""
        response = self._transport.request("GET", f"/api/v1/training/jobs/{job_id}/metrics")
        return [MetricPoint.model_validate(item) for item in response.json()["items"]]

    def cancel(self, job_id: str) -> TrainingJob:
        """Cancel a job: a queued one never starts, a running one stops within seconds."""
        response = self._transport.request("POST", f"/api/v1/training/jobs/{job_id}/cancel")
        return self._bind(TrainingJob.model_validate(response.json()))

    def events(
        self,
        job_id: str,
        *,
        reconnects: int = RECONNECTS,
        read_timeout: float = STREAM_READ_SECONDS,
    ) -> Iterator[JobEvent]:
        """Follow the job's Server-Sent Events until its terminal status event.

        The stream starts with the job's status and every metric so far. A broken
        connection is reopened up to ``reconnects`` times without repeating events.
        """
        seen = EventDeduplicator()
        failures = 0
        while True:
            try:
                for event in self._stream_once(job_id, read_timeout):
                    failures = 0
                    if seen.is_new(event):
                        yield event
                    if isinstance(event, StatusEvent) and event.terminal:
                        return
                return
            except DLPConnectionError:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(RECONNECT_DELAY_SECONDS * failures)

    def _stream_once(self, job_id: str, read_timeout: float) -> Iterator[JobEvent]:
        path = f"/api/v1/training/jobs/{job_id}/events"
        with self._transport.stream("GET", path, read_timeout=read_timeout) as response:
            for payload in parse_sse(response.iter_lines()):
                event = to_event(payload)
                if event is not None:
                    yield event

    def wait(
        self, job_id: str, *, timeout: float | None = None, poll_interval: float = POLL_SECONDS
    ) -> TrainingJob:
        """Block until the job ends and return it; follows the event stream and falls back
        to polling if the stream breaks. Raises ``JobWaitTimeoutError`` after ``timeout`` s."""
        deadline = deadline_after(timeout)
        read_timeout = STREAM_READ_SECONDS if timeout is None else min(STREAM_READ_SECONDS, timeout)
        try:
            # The stream itself ends at the terminal status event.
            for _event in self.events(job_id, reconnects=0, read_timeout=read_timeout):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except DLPConnectionError:
            pass  # polling below carries on where the stream stopped
        return poll_until_finished(
            lambda: self.get(job_id),
            what=f"job {job_id}",
            deadline=deadline,
            poll_interval=poll_interval,
        )

    def _bind(self, job: TrainingJob) -> TrainingJob:
        job._jobs = self
        return job

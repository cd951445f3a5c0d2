"""The Celery app and the one way domain code wakes workers.

The database is the truth about which jobs wait; a message on a queue is only a
hint that says "a job may be waiting here". A worker that takes a hint claims
the best waiting job from the database (highest priority, then oldest), so
priorities hold on every broker, a duplicate hint is harmless, and a lost one
is replaced by the housekeeping loop, which keeps as many hints on each queue
as there are jobs waiting for it.

A hint sent when a job is submitted also names that job and the API request that
submitted it (in the message's headers): a worker whose claim lands on that very job
tags the job's log lines with the request id. No column holds it, so a job claimed
through another job's hint, or re-run after a retry, logs without it (its ``job_id``
still joins the API's ``queue.hint_sent`` line, which carries the request id). When
tracing is on, the headers also carry the W3C trace context of the span that sent the
hint, so the worker's spans continue the submitting request's trace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy.orm import Session

from dlp.config import Settings
from dlp.db import run_after_commit
from dlp.ops.tracing import NO_TRACING, Tracing

log = structlog.get_logger(__name__)

TRAINING_QUEUE = "training"
TUNING_QUEUE = "tuning"
BATCH_QUEUE = "batch"
ALL_QUEUES = (TRAINING_QUEUE, TUNING_QUEUE, BATCH_QUEUE)

# A hint that cannot be sent at once is not worth a slow request: the
# housekeeping loop sends the missing ones when the broker is back.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}
JOB_HEADER = "dlp_job_id"
REQUEST_HEADER = "dlp_request_id"
# W3C Trace Context: https://www.w3.org/TR/trace-context/
TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass(frozen=True)
class JobHint:
    """What a hint says beyond "a job may be waiting": the job it was sent for and the
    request that submitted it (neither on the hints the housekeeping loop sends), and the
    trace context of the span that sent it (empty without tracing)."""

    job_id: uuid.UUID | None = None
    request_id: str | None = None
    trace_headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_task_request(cls, request: Any) -> JobHint:
        """The hint a Celery task was woken by (custom headers are request attributes)."""
        job_id = request.get(JOB_HEADER)
        request_id = request.get(REQUEST_HEADER)
        try:
            parsed = uuid.UUID(str(job_id)) if job_id else None
        except ValueError:
            parsed = None
        trace_headers = {
            name: str(request.get(name)) for name in TRACE_HEADERS if request.get(name)
        }
        return cls(parsed, str(request_id) if request_id else None, trace_headers)

    def headers(self) -> dict[str, str]:
        """The message headers that carry this hint."""
        headers = {}
        if self.job_id is not None:
            headers[JOB_HEADER] = str(self.job_id)
        if self.request_id is not None:
            headers[REQUEST_HEADER] = self.request_id
        return headers

    def request_id_for(self, job_id: uuid.UUID) -> str | None:
        """The submitting request's id, when the claimed job is the one this hint names."""
        return self.request_id if self.names(job_id) else None

    def names(self, job_id: uuid.UUID) -> bool:
        """Whether this hint was sent for ``job_id``."""
        return self.job_id == job_id


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``: acks late, prefetch 1, no result backend."""
    app = Celery("dlp", broker=settings.celery_broker_url, set_as_current=False)
    transport_options: dict[str, Any] = {}
    if settings.celery_broker_url.startswith("filesystem"):
        app.conf.broker_transport = "dlp.filesystem_queue:Transport"
        folder = settings.queue_dir
        for sub in ("messages", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        }
    elif settings.celery_broker_url.startswith(("redis", "rediss")):
        # A job may train for hours while its hint stays unacknowledged: the hint must
        # not be redelivered meanwhile (the job lease would make that harmless anyway).
        transport_options = {"visibility_timeout": 12 * 3600}
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=TRAINING_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


class JobQueue:
    """Sends hints by task name; the API never imports the task code."""

    def __init__(self, celery: Celery, tracing: Tracing = NO_TRACING) -> None:
        self.celery = celery
        self.tracing = tracing

    def wake_after_commit(
        self, session: Session, task_name: str, *, queue: str, job_id: uuid.UUID | None = None
    ) -> None:
        """Send one hint to ``queue`` once ``session`` commits, naming ``job_id`` and the
        request being served (if any).

        A broker that refuses is logged, not raised: the job is saved as waiting,
        and the housekeeping loop sends its hint once the broker answers again.
        """
        hint = JobHint(job_id, structlog.contextvars.get_contextvars().get("request_id"))

        def send_committed() -> None:
            job = None if job_id is None else str(job_id)
            try:
                self.wake(task_name, queue=queue, hint=hint)
            except Exception as exc:
                log.warning("queue.hint_not_sent", queue=queue, job_id=job, error=str(exc))
                return
            log.info("queue.hint_sent", queue=queue, job_id=job)

        run_after_commit(session, send_committed)

    def wake(
        self, task_name: str, *, queue: str, count: int = 1, hint: JobHint | None = None
    ) -> None:
        """Send ``count`` hints to ``queue`` now."""
        headers = hint.headers() if hint is not None else {}
        with (
            self.tracing.sending_hint(task_name, queue, headers),
            self.celery.producer_or_acquire() as producer,
        ):
            for _ in range(count):
                self.celery.send_task(
                    task_name, queue=queue, producer=producer, headers=headers or None
                )

    def depth(self, queue: str) -> int:
        """How many hints wait on ``queue`` (0 for a queue the broker never saw)."""
        with self.celery.connection_for_write() as connection, connection.channel() as channel:
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:
                return 0

    def check(self) -> None:
        """Raise unless the broker accepts a connection."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

"""Tracing: OpenTelemetry spans for HTTP requests, database statements, queue hints, jobs
and training epochs, exported over OTLP when ``DLP_OTEL_ENDPOINT`` is set.

Off by default, at no cost: ``setup_tracing`` then returns ``NO_TRACING``, whose hooks do
nothing, and imports nothing of OpenTelemetry's SDK (FastAPI itself imports the no-op
OpenTelemetry API, and keeps its own spans off while no tracer provider is configured).
Domain code calls the hooks of the ``Tracing`` it was given and never imports
OpenTelemetry; ``dlp.ops.otlp`` holds the implementation that does.

What is traced, and where the spans come from:

- HTTP: FastAPI's own server spans (one per request, named by method and route), given
  this process's tracer provider; the prediction lane names its route itself.
- Database: one span per statement on the platform's engines (SQLAlchemy's
  instrumentation), inside a request, a hint or a job; statements of background loops
  (the reaper, lease heartbeats) would be a root trace every few seconds and are not
  traced.
- Queue: a producer span per hint sent, whose context travels in the Celery message's
  W3C ``traceparent`` header; a consumer span per hint a worker takes, and inside it a
  span for the job it claims (the submitting request's trace when the hint names that
  job, else a trace of its own linked to the hint's).
- Training: one span per epoch with the job id, the epoch and the samples seen. Not one
  per optimizer step: thousands of spans a minute would cost more than they tell.

Not traced on their own: file-store (S3) and Redis calls, outgoing webhooks, and the model
call inside a prediction (its request's span covers them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from dlp.config import Settings

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from sqlalchemy import Engine

MISSING_EXTRA = (
    "DLP_OTEL_ENDPOINT is set but tracing's packages are not installed ({missing}): "
    "pip install 'dlp[otel]' (or unset DLP_OTEL_ENDPOINT)"
)
_NOTHING: AbstractContextManager[None] = nullcontext()


class Tracing:
    """No tracing: every hook is a no-op. ``dlp.ops.otlp.OtlpTracing`` overrides them all."""

    def fastapi_telemetry(self) -> TelemetryConfig | None:
        """FastAPI's ``telemetry`` argument (None: FastAPI's defaults, which trace nothing
        while no tracer provider is configured)."""
        return None

    def trace_engine(self, engine: Engine) -> None:
        """Trace the statements ``engine`` executes."""

    def route_selected(self, method: str, route: str) -> None:
        """Name the current request's span after ``route`` (for a middleware that answers
        requests before FastAPI's routing)."""

    def sending_hint(
        self, task_name: str, queue: str, headers: MutableMapping[str, str]
    ) -> AbstractContextManager[None]:
        """A span around sending a hint; adds its trace context to ``headers``."""
        return _NOTHING

    def taking_hint(
        self, queue: str, trace_headers: Mapping[str, str]
    ) -> AbstractContextManager[None]:
        """A span around a worker's handling of a hint sent with ``trace_headers``."""
        return _NOTHING

    def running_job(
        self, kind: str, job_id: uuid.UUID, *, sent_for_it: bool
    ) -> AbstractContextManager[None]:
        """A span around running a claimed job: in the hint's trace when the hint was
        ``sent_for_it``, else in a trace of its own linked to the hint's."""
        return _NOTHING

    def record_epoch(
        self, *, job_id: uuid.UUID, epoch: int, samples: int | None, started_ns: int
    ) -> None:
        """A span for a training epoch that began at ``started_ns`` (ns since the epoch)
        and ends now."""

    def shutdown(self) -> None:
        """Export the spans not yet sent, then stop."""


NO_TRACING = Tracing()


def require_tracing_extra(settings: Settings) -> None:
    """Raise a start-up error naming the extra to install when tracing is asked for and
    OpenTelemetry's SDK is missing."""
    if settings.otel_endpoint is None:
        return
    try:
        import dlp.ops.otlp  # noqa: F401 - only to learn whether it can be imported
    except ImportError as exc:
        raise RuntimeError(MISSING_EXTRA.format(missing=exc.name or exc)) from exc


def setup_tracing(settings: Settings, service: str) -> Tracing:
    """The tracing of a process that runs as ``service`` (unless DLP_OTEL_SERVICE_NAME
    names another): ``NO_TRACING`` without ``DLP_OTEL_ENDPOINT``."""
    if settings.otel_endpoint is None:
        return NO_TRACING
    require_tracing_extra(settings)
    from dlp.ops.otlp import OtlpTracing

    return OtlpTracing(
        settings.otel_endpoint,
        service=settings.otel_service_name or service,
        sample_ratio=settings.otel_sample_ratio,
    )

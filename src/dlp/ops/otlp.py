"""Tracing with OpenTelemetry's SDK, exported over OTLP/HTTP (the ``otel`` extra).

Imported only when ``DLP_OTEL_ENDPOINT`` is set (see ``dlp.ops.tracing``). Each process
keeps its own tracer provider and hands it to FastAPI and to the engines explicitly,
leaving OpenTelemetry's global provider alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

import dlp
from dlp.ops.tracing import Tracing

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.trace.span import TraceState
    from sqlalchemy import Engine

TRACES_PATH = "/v1/traces"
# Probes and scrapes come every few seconds and say nothing a trace would add.
UNTRACED_PATHS = frozenset({"/health", "/ready", "/metrics"})
_PROPAGATOR = TraceContextTextMapPropagator()


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` itself when it names the path already."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class _NoDetachedStatements(Sampler):
    """Drops client spans that start a trace (database statements outside any request,
    hint or job: the reaper's, lease heartbeats); samples other roots by trace id."""

    def __init__(self, ratio: float) -> None:
        self.by_trace_id = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a root client span; ask the trace-id ratio about any other root."""
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self.by_trace_id.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """The sampler's name, as OpenTelemetry's samplers describe themselves."""
        return f"NoDetachedStatements{{{self.by_trace_id.get_description()}}}"


def _untraced(scope: MutableMapping[str, object]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


class OtlpTracing(Tracing):
    """Spans batched in memory and posted to the collector in the background."""

    def __init__(self, endpoint: str, *, service: str, sample_ratio: float) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service, "service.version": dlp.__version__}),
            sampler=ParentBased(root=_NoDetachedStatements(sample_ratio)),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        self.tracer = self.provider.get_tracer("dlp", dlp.__version__)
        self._statements = self.provider.get_tracer(
            "opentelemetry.instrumentation.sqlalchemy", dlp.__version__
        )
        # The instrumentation also counts pooled connections; dlp's metrics do that.
        self._connections = NoOpMeter("dlp").create_up_down_counter("db.client.connections.usage")

    def fastapi_telemetry(self) -> TelemetryConfig:
        """FastAPI's server spans, on this provider; its metrics and logs stay off (dlp
        has its own), and so do its spans per dependency and serialisation."""
        return {
            "tracer_provider": self.provider,
            "tracing": True,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _untraced,
        }

    def trace_engine(self, engine: Engine) -> None:
        """A client span per statement ``engine`` executes."""
        # The instrumentation ships no annotations for its classes.
        EngineTracer(self._statements, engine, self._connections)  # type: ignore[no-untyped-call]

    def route_selected(self, method: str, route: str) -> None:
        """Name the current server span after ``route``, as FastAPI's routing would."""
        span = trace.get_current_span()
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)

    def sending_hint(
        self, task_name: str, queue: str, headers: MutableMapping[str, str]
    ) -> AbstractContextManager[None]:
        """A producer span; its context goes into the message's headers."""
        return self._span(
            f"send {queue}",
            kind=SpanKind.PRODUCER,
            attributes=_messaging(queue, task_name, "send"),
            inject_into=headers,
        )

    def taking_hint(
        self, queue: str, trace_headers: Mapping[str, str]
    ) -> AbstractContextManager[None]:
        """A consumer span, a child of the hint's producer span."""
        return self._span(
            f"process {queue}",
            kind=SpanKind.CONSUMER,
            context=_PROPAGATOR.extract(dict(trace_headers)),
            attributes=_messaging(queue, None, "process"),
        )

    def running_job(
        self, kind: str, job_id: uuid.UUID, *, sent_for_it: bool
    ) -> AbstractContextManager[None]:
        """The job's span: a child of the hint's span, or a root linked to it."""
        attributes = {"dlp.job_id": str(job_id), "dlp.job_kind": kind}
        if sent_for_it:
            return self._span(f"job {kind}", attributes=attributes)
        hint = trace.get_current_span().get_span_context()
        return self._span(
            f"job {kind}",
            context=Context(),
            links=[Link(hint)] if hint.is_valid else None,
            attributes=attributes,
        )

    def record_epoch(
        self, *, job_id: uuid.UUID, epoch: int, samples: int | None, started_ns: int
    ) -> None:
        """A span from the epoch's start to now, a child of the job's span."""
        attributes: dict[str, str | int] = {"dlp.job_id": str(job_id), "dlp.epoch": epoch}
        if samples is not None:
            attributes["dlp.samples"] = samples
        span = self.tracer.start_span("epoch", start_time=started_ns, attributes=attributes)
        span.end(end_time=max(started_ns, time.time_ns()))

    def shutdown(self) -> None:
        """Post the spans still batched, then stop the exporter."""
        self.provider.shutdown()

    @contextmanager
    def _span(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        context: Context | None = None,
        links: Sequence[Link] | None = None,
        attributes: Mapping[str, str] | None = None,
        inject_into: MutableMapping[str, str] | None = None,
    ) -> Iterator[None]:
        with self.tracer.start_as_current_span(
            name, context=context, kind=kind, links=links, attributes=attributes
        ):
            if inject_into is not None:
                _PROPAGATOR.inject(inject_into)
            yield


def _messaging(queue: str, task_name: str | None, operation: str) -> dict[str, str]:
    attributes = {
        "messaging.system": "celery",
        "messaging.destination.name": queue,
        "messaging.operation.type": operation,
    }
    if task_name is not None:
        attributes["dlp.task"] = task_name
    return attributes

"""Tracing: nothing of OpenTelemetry's SDK without ``DLP_OTEL_ENDPOINT``; with it, the API
and a real worker export HTTP, database, queue, job and epoch spans over OTLP/HTTP to a
collector, and the worker's spans continue the trace of the request that submitted the job.

The collector is a small OTLP/HTTP receiver started here (``POST /v1/traces``, decoded with
``opentelemetry-proto``). The installation is the embedded one: tracing adds nothing
specific to a backend (SQLAlchemy's spans are the same on both databases, and the trace
context rides in the Celery message's headers on every broker).
"""

from __future__ import annotations

import gzip
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from dlp.main import create_app
from tests.conftest import Account, fast_lease_installation, register_account
from tests.factories import ROWS, small_job_body, tiny_dataset, wait_for_job
from tests.live import start_worker, stop_process

SPAN_WAIT_SECONDS = 30.0
SDK_MODULES = (
    "dlp.ops.otlp",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
)


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector received it."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _attributes(pairs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        field = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, field) if field else None
    return values


class Collector:
    """An OTLP/HTTP trace receiver on a free port of 127.0.0.1, keeping what it receives."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.received = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                collector.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads what was received, not the access log."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        """The URL to give DLP_OTEL_ENDPOINT."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        """Keep the spans of one export."""
        spans = []
        for resource in request.resource_spans:
            service = str(_attributes(resource.resource.attributes).get("service.name"))
            for scope in resource.scope_spans:
                span: Span
                for span in scope.spans:
                    spans.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                        )
                    )
        with self.received:
            self.spans.extend(spans)
            self.received.notify_all()

    def wait_for(
        self, trace_id: str, enough: Callable[[list[ReceivedSpan]], bool]
    ) -> list[ReceivedSpan]:
        """The spans of ``trace_id``, once ``enough`` of them have arrived."""

        def of_trace() -> list[ReceivedSpan]:
            return [span for span in self.spans if span.trace_id == trace_id]

        with self.received:
            arrived = self.received.wait_for(lambda: enough(of_trace()), SPAN_WAIT_SECONDS)
            spans = of_trace()
        assert arrived, f"spans of trace {trace_id} so far: {spans}"
        return spans

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


def _named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def _has(*names: str) -> Callable[[list[ReceivedSpan]], bool]:
    return lambda spans: all(_named(spans, name) for name in names)


def _traceparent() -> tuple[str, dict[str, str]]:
    """A fresh trace id and the W3C header that makes a request continue it."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}


@dataclass
class Traced:
    """A traced installation: its API, a worker, the collector, a user and a trained job
    submitted in the trace ``submit_trace``."""

    client: TestClient
    collector: Collector
    account: Account
    job: dict[str, Any]
    submit_trace: str


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """An embedded installation with DLP_OTEL_ENDPOINT pointed at a local collector, its
    API (in this process) and a worker (a process) exporting every 50 ms."""
    collector = Collector()
    folder = tmp_path_factory.mktemp("tracing")
    tracing_env = {
        "DLP_OTEL_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        # The worker's housekeeping then tops up hints only as it starts, never between the
        # job's commit and its own hint: the job is claimed through the hint sent for it.
        "DLP_JOB_HEARTBEAT_SECONDS": "30",
        "DLP_JOB_LEASE_SECONDS": "60",
    }
    settings, env = fast_lease_installation(folder / "data", **tracing_env)
    settings = settings.model_copy(update={"otel_endpoint": collector.endpoint})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        app = create_app(settings)
    worker = start_worker(env, folder / "worker.log")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            account = register_account(client)
            dataset = tiny_dataset(client, account)
            submit_trace, headers = _traceparent()
            submitted = client.post(
                "/api/v1/training/jobs",
                headers=account.headers | headers,
                json=small_job_body(dataset, epochs=2),
            )
            assert submitted.status_code == 202, submitted.text
            job = wait_for_job(client, account, submitted.json()["id"], timeout=60)
            assert job["status"] == "succeeded", job
            yield Traced(client, collector, account, job, submit_trace)
    finally:
        stop_process(worker)
        collector.close()


def test_worker_spans_continue_the_trace_of_the_request_that_submitted_the_job(
    traced: Traced,
) -> None:
    spans = traced.collector.wait_for(
        traced.submit_trace,
        lambda spans: len(_named(spans, "epoch")) == 2 and _has("job training")(spans),
    )
    by_id = {span.span_id: span for span in spans}
    submit = _named(spans, "POST /api/v1/training/jobs")
    assert [span.service for span in submit] == ["dlp-api"]
    (send,) = _named(spans, "send training")
    assert send.service == "dlp-api" and send.parent_id == submit[0].span_id
    (process,) = _named(spans, "process training")
    assert process.service == "dlp-worker" and process.parent_id == send.span_id
    (job,) = _named(spans, "job training")
    assert job.parent_id == process.span_id
    assert job.attributes["dlp.job_id"] == traced.job["id"]
    epochs = sorted(_named(spans, "epoch"), key=lambda span: span.attributes["dlp.epoch"])
    assert [span.attributes["dlp.epoch"] for span in epochs] == [1, 2]
    for epoch in epochs:
        assert epoch.parent_id == job.span_id
        assert epoch.attributes["dlp.job_id"] == traced.job["id"]
        assert epoch.attributes["dlp.samples"] > 0
    # The statements of both (saving the job; claiming it, its progress, its model) too.
    statements = [span for span in spans if span.kind == Span.SPAN_KIND_CLIENT]
    assert {span.service for span in statements} == {"dlp-api", "dlp-worker"}
    assert all(span.parent_id in by_id for span in statements)


def test_requests_and_predictions_get_http_spans_named_by_route_with_database_spans_inside(
    traced: Traced,
) -> None:
    client, headers = traced.client, traced.account.headers
    read_trace, read_context = _traceparent()
    read = client.get(f"/api/v1/training/jobs/{traced.job['id']}", headers=headers | read_context)
    assert read.status_code == 200, read.text
    predict_trace, predict_context = _traceparent()
    predicted = client.post(
        f"/api/v1/models/{traced.job['model_id']}/predict",
        headers=headers | predict_context,
        json={"inputs": ROWS},
    )
    assert predicted.status_code == 200, predicted.text

    for trace_id, route in (
        (read_trace, "/api/v1/training/jobs/{job_id}"),
        (predict_trace, "/api/v1/models/{model_id}/predict"),
    ):
        spans = traced.collector.wait_for(
            trace_id,
            lambda spans: (
                any(span.kind == Span.SPAN_KIND_SERVER for span in spans)
                and any(span.kind == Span.SPAN_KIND_CLIENT for span in spans)
            ),
        )
        (server,) = [span for span in spans if span.kind == Span.SPAN_KIND_SERVER]
        assert server.name.endswith(f" {route}") and server.attributes["http.route"] == route
        statements = [span for span in spans if span.kind == Span.SPAN_KIND_CLIENT]
        assert all(span.service == "dlp-api" for span in spans)
        assert all(span.parent_id == server.span_id for span in statements)
        assert all(
            "db.system" in span.attributes or "db.system.name" in span.attributes
            for span in statements
        )


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_without_an_endpoint_nothing_of_the_opentelemetry_sdk_is_imported(
    tmp_path: Path,
) -> None:
    # FastAPI imports OpenTelemetry's API (a no-op without a provider) for its own spans,
    # and redis-py imports the metrics SDK whenever it is installed: neither is dlp's doing.
    code = """
import json, sys
from dlp.config import Settings
from dlp.main import create_app
from dlp.ops.tracing import NO_TRACING, setup_tracing

settings = Settings(data_dir=sys.argv[1])
app = create_app(settings)
assert app.state.tracing is NO_TRACING
assert setup_tracing(settings, "dlp-worker") is NO_TRACING
print(json.dumps(sorted(sys.modules)))
"""
    result = _run(code, str(tmp_path))
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert [name for name in loaded if name.startswith(SDK_MODULES)] == []


def test_an_endpoint_without_the_otel_extra_stops_start_up_naming_the_extra(
    tmp_path: Path,
) -> None:
    code = """
import sys
sys.modules["opentelemetry.sdk"] = None  # as if the otel extra were not installed
from dlp.config import Settings
from dlp.main import create_app

create_app(Settings(data_dir=sys.argv[1], otel_endpoint="http://127.0.0.1:4318"))
"""
    result = _run(code, str(tmp_path))
    assert result.returncode != 0
    assert "pip install 'dlp[otel]'" in result.stderr

"""Observability of the API and its jobs: the request id of a job's submission on every
log line the worker writes for that job, the API's Prometheus metrics, and /ready's
Redis check (the others are in ``test_ops_api``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from dlp.main import create_app
from dlp.ops.logging import add_request_caller
from tests.conftest import Account, Deployment, register_account
from tests.factories import ROWS, small_job_body, tiny_dataset, wait_for_job

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class SubmittedJob:
    """A training job submitted under a known request id, run to its end by the worker."""

    account: Account
    request_id: str
    job: dict[str, Any]
    api_lines: list[dict[str, Any]]


@pytest.fixture(scope="module")
def submitted(client: TestClient) -> SubmittedJob:
    account = register_account(client)
    dataset = tiny_dataset(client, account)
    request_id = f"obs-{uuid.uuid4().hex[:12]}"
    with capture_logs(processors=[merge_contextvars, add_request_caller]) as api_lines:
        response = client.post(
            "/api/v1/training/jobs",
            headers={**account.headers, "X-Request-ID": request_id},
            json=small_job_body(dataset, epochs=1),
        )
    assert response.status_code == 202, response.text
    job = wait_for_job(client, account, response.json()["id"])
    assert job["status"] == "succeeded", job
    return SubmittedJob(account, request_id, job, list(api_lines))


def worker_lines(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines that name ``job_id``."""
    lines = []
    for raw in deployment.worker_log.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("job_id") == job_id:
            lines.append(line)
    return lines


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_the_submitting_request_id_tags_the_api_and_worker_log_lines_of_a_job(
    deployment: Deployment, submitted: SubmittedJob
) -> None:
    job_id = submitted.job["id"]
    caller = {
        "request_id": submitted.request_id,
        "user_id": submitted.account.id,
        "org_id": submitted.account.organization_id,
    }
    sent = [line for line in submitted.api_lines if line["event"] == "queue.hint_sent"]
    assert len(sent) == 1, submitted.api_lines
    assert {k: sent[0].get(k) for k in [*caller, "job_id"]} == caller | {"job_id": job_id}
    lines = worker_lines(deployment, job_id)
    assert "training.started" in {line["event"] for line in lines}, lines
    for line in lines:
        assert {k: line.get(k) for k in caller} == caller, line


def test_api_metrics_report_predictions_jobs_queues_workers_and_the_process(
    client: TestClient, deployment: Deployment, submitted: SubmittedJob
) -> None:
    model_id = submitted.job["model_id"]
    predicted = client.post(
        f"/api/v1/models/{model_id}/predict",
        headers=submitted.account.headers,
        json={"inputs": ROWS},
    )
    assert predicted.status_code == 200, predicted.text
    own = samples(client.get("/metrics").text)
    route = "/api/v1/models/{model_id}/predict"
    http = value(
        own, "dlp_http_request_duration_seconds_count", method="POST", route=route, status="200"
    )
    assert http is not None and http >= 1
    assert (value(own, "dlp_prediction_duration_seconds_count") or 0) >= 1
    assert (value(own, "dlp_serving_batch_rows_count") or 0) >= 1
    assert (value(own, "dlp_serving_batch_rows_sum") or 0) >= len(ROWS)
    assert (value(own, "dlp_model_cache_total", level="l1", result="miss") or 0) >= 1
    assert (value(own, "process_resident_memory_bytes") or 0) > 0
    assert (value(own, "dlp_data_dir_free_bytes") or 0) > 0

    # A fresh API process reads jobs, queues and workers anew (the first app's reading
    # may be a few seconds old).
    with TestClient(create_app(deployment.settings)) as fresh:
        platform = samples(fresh.get("/metrics").text)
    assert value(platform, "dlp_platform_metrics_up") == 1
    succeeded = value(platform, "dlp_jobs", queue="training", status="succeeded")
    assert succeeded is not None and succeeded >= 1
    for queue in ("training", "tuning", "batch"):
        depth = value(platform, "dlp_queue_depth", queue=queue)
        assert depth is not None and depth >= 0, queue
    assert (value(platform, "dlp_workers_live") or 0) >= 1
    ages = [v for (name, _), v in platform.items() if name == "dlp_worker_heartbeat_age_seconds"]
    assert ages and min(ages) < deployment.settings.job_lease_seconds


def test_ready_is_503_naming_redis_when_the_configured_redis_does_not_answer(
    deployment: Deployment,
) -> None:
    broken = deployment.settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and "redis" in body["message"]
    assert body["checks"]["database"]["ok"] and not body["checks"]["redis"]["ok"]
    assert body["checks"]["redis"]["latency_ms"] >= 0

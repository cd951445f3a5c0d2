"""Health, readiness, metrics, request ids and the error shape."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import Deployment


def test_health_and_ready(client: TestClient, deployment: Deployment) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    checks = ready.json()["checks"]
    redis = {"redis"} if deployment.settings.redis_url else set()
    assert set(checks) == {"database", "queue", "store"} | redis
    assert all(check["ok"] and check["latency_ms"] >= 0 for check in checks.values())


def test_ready_names_the_dependency_that_is_down(deployment: Deployment) -> None:
    broken = deployment.settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "service_unavailable" and "queue" in body["message"]
    assert body["checks"]["database"]["ok"] and not body["checks"]["queue"]["ok"]


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    made = client.get("/health", headers={"X-Request-ID": "bad id; <script>"})
    assert made.headers["x-request-id"] != "bad id; <script>"
    assert len(made.headers["x-request-id"]) == 32


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here", headers={"X-Request-ID": "r1"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "Not Found", "request_id": "r1"}
    wrong_method = client.put("/health")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "not_found"
    bad_json = client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["error"] == "validation_error"


def test_metrics_expose_request_latency_by_route(client: TestClient) -> None:
    client.get("/health")
    text = client.get("/metrics").text
    assert (
        'dlp_http_request_duration_seconds_count{method="GET",route="/health",status="200"}' in text
    )


def test_openapi_documents_every_contract_path(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/me",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{key_id}",
        "/api/v1/datasets",
        "/api/v1/datasets/{dataset_id}",
        "/api/v1/datasets/{dataset_id}/download",
        "/api/v1/training/jobs",
        "/api/v1/training/jobs/{job_id}",
        "/api/v1/training/jobs/{job_id}/metrics",
        "/api/v1/training/jobs/{job_id}/cancel",
        "/api/v1/models",
        "/api/v1/models/{model_id}",
        "/api/v1/models/{model_id}/predict",
        "/api/v1/models/{model_id}/download",
        "/health",
        "/ready",
        "/metrics",
    ]:
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/v1/datasets"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200

"""API8:2023 Security misconfiguration: headers, CORS, error answers, docs without debug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Headers
from pydantic import ValidationError

from dlp.config import Settings
from dlp.main import create_app
from tests.conftest import Account, Deployment
from tests.factories import upload_ok

EVIL_ORIGIN = "https://evil.example"
GOOD_ORIGIN = "https://app.example"


def _assert_hardened(headers: Headers) -> None:
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("referrer-policy") == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_clickjacking_and_sniffing_are_refused_by_headers_on_every_answer(
    client: TestClient,
) -> None:
    """Framing, MIME sniffing and referrer leaks: every answer (errors too) forbids them."""
    for response in (
        client.get("/health"),
        client.get("/api/v1/datasets"),
        client.get("/api/v1/nothing-here"),
        client.get("/"),
    ):
        _assert_hardened(response.headers)
        assert "strict-transport-security" not in response.headers  # plain http


def test_ssl_stripping_is_countered_with_hsts_over_https(client: TestClient) -> None:
    """SSL stripping: an answer over https tells the browser to stay on https."""
    response = client.get("https://testserver/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_cached_credentials_are_not_kept_by_proxies(client: TestClient, account: Account) -> None:
    """Token theft from caches: login, refresh and new API keys are never stored."""
    login = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    refresh = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refresh.headers["cache-control"] == "no-store"
    key = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "ci"})
    assert key.status_code == 201 and key.headers["cache-control"] == "no-store"
    static = client.get("/ui/static/js/auth.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


def test_script_injection_in_the_web_ui_is_blocked_by_its_csp(client: TestClient) -> None:
    """XSS: the UI's CSP runs only its own scripts, and its pages carry no inline script."""
    page = client.get("/ui/login")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "object-src 'none'" in policy
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all("/ui/static/" in attrs and not body.strip() for attrs, body in scripts)
    assert " style=" not in page.text


def test_api_docs_are_reachable_without_debug_mode(client: TestClient) -> None:
    """Debug pages: docs and schema are served, debug is off, unknown routes say nothing more."""
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.app.debug is False  # type: ignore[attr-defined]
    missing = client.get("/api/v1/../../etc/passwd")
    assert missing.status_code == 404 and "Traceback" not in missing.text


def test_cross_origin_pages_get_no_cors_grant_by_default(client: TestClient) -> None:
    """CSRF-style reads from another site: no CORS grant without DLP_CORS_ORIGINS."""
    preflight = client.options(
        "/api/v1/datasets",
        headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_grants_only_listed_origins(deployment: Deployment) -> None:
    """Origin spoofing: only a listed origin is echoed, with credentials; others are refused."""
    settings = deployment.settings.model_copy(
        update={"cors_origins": f"{GOOD_ORIGIN}, http://localhost:3000"}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as cors_client:
        allowed = cors_client.options(
            "/api/v1/datasets",
            headers={"Origin": GOOD_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == GOOD_ORIGIN
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "x-request-id" in allowed.headers
        refused = cors_client.options(
            "/api/v1/datasets",
            headers={"Origin": EVIL_ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        read = cors_client.get("/health", headers={"Origin": EVIL_ORIGIN})
        assert "access-control-allow-origin" not in read.headers
        assert (
            cors_client.get("/health", headers={"Origin": GOOD_ORIGIN}).headers[
                "access-control-allow-origin"
            ]
            == GOOD_ORIGIN
        )


@pytest.mark.parametrize(
    "origins", ["*", "https://app.example/", "app.example", "https://*.example"]
)
def test_wildcard_cors_with_credentials_is_refused_at_start(origins: str) -> None:
    """Wildcard CORS: a '*' or malformed origin in the allow-list stops start-up."""
    with pytest.raises(ValidationError, match="DLP_CORS_ORIGINS"):
        Settings(cors_origins=origins)


def test_server_failure_answers_without_traceback_or_server_paths(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    """Information leak: a dataset whose stored file vanished fails with the contract body only."""
    dataset = upload_ok(client, account, b"a,b\n1,2\n3,4\n", "leak.csv")
    for path in Path(deployment.store_root).rglob(f"{dataset['id']}/original.csv"):
        path.unlink()
    response = client.get(f"/api/v1/datasets/{dataset['id']}/download", headers=account.headers)
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error", "message", "request_id"}
    assert body["error"] == "internal_error" and body["request_id"]
    data_dir = str(deployment.settings.resolved_data_dir)
    for text in (response.text, str(response.headers)):
        assert "Traceback" not in text and data_dir not in text and "/files/" not in text


def test_readiness_probe_leaks_no_connection_details(deployment: Deployment) -> None:
    """Information leak: /ready (unauthenticated) names a failing check but not its URL or error."""
    broken = deployment.settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken), raise_server_exceptions=False) as broken_client:
        response = broken_client.get("/ready")
    assert response.status_code == 503
    assert "127.0.0.1:9" not in response.text and "Traceback" not in response.text
    assert str(deployment.settings.resolved_data_dir) not in response.text

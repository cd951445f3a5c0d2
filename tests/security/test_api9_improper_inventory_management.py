"""OWASP API9:2023, improper inventory management: undocumented, forgotten or debug
endpoints, and documented ones that do not require what the document says."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

import dlp

# The contract's public operations (CONTRACT.md), plus the refresh-token exchanges and the
# Open Inference Protocol's server metadata and health, which its stock clients call bare.
PUBLIC = {
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
}


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method, path, op) for path, ops in paths.items() for method, op in ops.items()]


def test_only_the_contracts_public_operations_go_without_credentials(client: TestClient) -> None:
    """Read the inventory (the OpenAPI document): every operation but the contract's public
    ones declares a security requirement, and no public one was added unnoticed."""
    public = {(m, p) for m, p, op in _operations(client) if not op.get("security")}
    assert public == PUBLIC


def test_every_secured_operation_refuses_a_caller_without_credentials(client: TestClient) -> None:
    """Call every operation that declares security with no credentials, and with a forged
    token: each answers 401 before doing anything (a forgotten dependency would not)."""
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"}
    failures = []
    for method, template, op in _operations(client):
        if not op.get("security"):
            continue
        path = re.sub(r"\{\w+\}", str(uuid.uuid4()), template)
        for headers in ({}, forged):
            answer = client.request(method.upper(), path, headers=headers, json={})
            code = answer.json().get("code" if path.startswith("/v2/") else "error")
            if answer.status_code != 401 or code != "authentication_error":
                failures.append((method, template, bool(headers), answer.status_code))
    assert not failures, failures


@pytest.mark.parametrize(
    "path",
    [
        "/api/v0/datasets",
        "/api/v2/datasets",
        "/api/datasets",
        "/api/v1/debug",
        "/api/v1/internal/users",
        "/api/v1/users",
        "/admin",
        "/debug/pprint",
        "/.env",
        "/.git/config",
        "/server-status",
        "/api/v1/../../etc/passwd",
        "/ui/static/../../config.py",
    ],
)
def test_old_versions_debug_and_shadow_paths_do_not_exist(client: TestClient, path: str) -> None:
    """Probe for an older or newer API version, debug consoles, internal routes, dot-files
    and traversal out of the static folder: each is a plain 404 with the contract's body."""
    answer = client.get(path)
    assert answer.status_code == 404, (path, answer.text[:200])
    assert answer.json()["error"] == "not_found"


def test_the_document_names_this_release_and_no_internal_server(client: TestClient) -> None:
    """Read the document's metadata: it names the running release, and lists no server
    address (the internal host would otherwise be published to every reader)."""
    document = client.get("/openapi.json").json()
    assert document["info"]["version"] == dlp.__version__
    assert "servers" not in document

"""OWASP API5:2023 Broken Function Level Authorization: credentials and roles calling
functions beyond their rights (writes with a read key, anything but predictions with a
predict key, admin functions as a member or viewer). On both run shapes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer, table_csv, upload_ok

MEMBERS = "/api/v1/organizations/current/members"
AUDIT = "/api/v1/organizations/current/audit"
CSV = table_csv(["x", "y"], [[1, 0], [2, 1], [3, 0]])


def _forbidden(response: Response) -> str:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "permission_denied", body
    return str(body["message"])


def _key(client: TestClient, account: Account, scope: str) -> dict[str, str]:
    created = client.post(
        "/api/v1/api-keys", headers=account.headers, json={"name": scope, "scope": scope}
    )
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


def _upload(client: TestClient, headers: dict[str, str]) -> Response:
    return client.post(
        "/api/v1/datasets", headers=headers, files={"file": ("d.csv", CSV, "text/csv")}
    )


def _predict_unknown_model(client: TestClient, headers: dict[str, str]) -> Response:
    return client.post(
        f"/api/v1/models/{uuid.uuid4()}/predict", headers=headers, json={"inputs": [{"x": 1}]}
    )


def test_read_key_cannot_write(client: TestClient, account: Account) -> None:
    """A read-only key reads, but cannot upload, delete, mint keys or manage members."""
    dataset = upload_ok(client, account, CSV)
    read = _key(client, account, "read")
    assert client.get("/api/v1/datasets", headers=read).status_code == 200
    assert _predict_unknown_model(client, read).status_code == 404
    assert "read-only" in _forbidden(_upload(client, read))
    _forbidden(client.delete(f"/api/v1/datasets/{dataset['id']}", headers=read))
    _forbidden(client.post("/api/v1/api-keys", headers=read, json={"name": "escalate"}))
    _forbidden(client.post(MEMBERS, headers=read, json={"username": "x", "role": "admin"}))
    password = {"current_password": account.password, "new_password": "taken over now"}
    _forbidden(client.post("/api/v1/users/me/password", headers=read, json=password))
    assert (
        client.get(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).status_code == 200
    )


def test_predict_key_can_predict_but_nothing_else(client: TestClient, account: Account) -> None:
    """A predict-only key reaches the prediction endpoints and is refused everywhere else."""
    predict = _key(client, account, "predict")
    # Past authentication and scope: the unknown model is what stops these.
    assert _predict_unknown_model(client, predict).status_code == 404
    assert client.get("/v2/models/nope/ready", headers=predict).status_code == 404
    assert "predict-only" in _forbidden(client.get("/api/v1/datasets", headers=predict))
    _forbidden(client.post("/api/v1/api-keys", headers=predict, json={"name": "escalate"}))
    _forbidden(client.get("/api/v1/api-keys", headers=predict))
    _forbidden(client.get("/api/v1/users/me", headers=predict))
    _forbidden(_upload(client, predict))
    write = _key(client, account, "write")
    assert _upload(client, write).status_code == 201


def test_viewer_cannot_write(client: TestClient, deployment: Deployment, account: Account) -> None:
    """A viewer of an organization cannot upload into it nor add members to it."""
    viewer = add_viewer(deployment, account, register_account(client))
    assert client.get("/api/v1/datasets", headers=viewer).status_code == 200
    _forbidden(_upload(client, viewer))
    _forbidden(client.post(MEMBERS, headers=viewer, json={"username": "x", "role": "viewer"}))


def test_member_cannot_read_audit_log_or_change_roles(
    client: TestClient, account: Account, other_account: Account
) -> None:
    """A plain member can neither read the audit log nor promote or demote anyone."""
    added = client.post(
        MEMBERS,
        headers=account.headers,
        json={"username": other_account.username, "role": "member"},
    )
    assert added.status_code == 201, added.text
    member = {**other_account.headers, "X-DLP-Org": account.organization_id}
    _forbidden(client.get(AUDIT, headers=member))
    _forbidden(
        client.patch(f"{MEMBERS}/{other_account.id}", headers=member, json={"role": "admin"})
    )
    _forbidden(client.patch(f"{MEMBERS}/{account.id}", headers=member, json={"role": "viewer"}))
    roles = client.get(MEMBERS, headers=account.headers).json()["items"]
    assert {m["user_id"]: m["role"] for m in roles} == {
        account.id: "admin",
        other_account.id: "member",
    }


def test_non_superuser_cannot_call_admin_endpoints(client: TestClient) -> None:
    """Only the installation's superuser reaches /api/v1/admin/..., not an org admin."""
    user = register_account(client)
    if client.get("/api/v1/users/me", headers=user.headers).json()["is_superuser"]:
        user = register_account(client)
    _forbidden(client.get("/api/v1/admin/queues", headers=user.headers))

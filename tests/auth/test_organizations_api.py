"""Shared organizations: create, switch with X-DLP-Org, read, rename, and the bound on
how many one user creates, on both run shapes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from dlp.main import create_app
from tests.conftest import Account, Deployment
from tests.factories import table_csv

ORGANIZATIONS = "/api/v1/organizations"
CURRENT = ORGANIZATIONS + "/current"


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body


def _in(account: Account, organization_id: str) -> dict[str, str]:
    return {**account.headers, "X-DLP-Org": organization_id}


def create_organization(client: TestClient, account: Account, name: str = "Team") -> str:
    """Create a shared organization as ``account``; its id."""
    created = client.post(ORGANIZATIONS, headers=account.headers, json={"name": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_created_organization_is_shared_and_switched_to_with_the_header(
    client: TestClient, account: Account
) -> None:
    created = client.post(ORGANIZATIONS, headers=account.headers, json={"name": "  Vision  "})
    assert created.status_code == 201, created.text
    team = created.json()
    assert team["name"] == "Vision" and team["is_personal"] is False and team["role"] == "admin"
    assert team["usage"] == {"storage_bytes": 0, "active_jobs": 0}
    assert team["quotas"] == {
        "max_storage_bytes": None,
        "max_concurrent_jobs": None,
        "retention_days": None,
    }
    assert {"id", "created_at", "joined_at"} <= set(team)

    listed = client.get(ORGANIZATIONS, headers=account.headers).json()
    assert {o["id"]: o["is_personal"] for o in listed["items"]} == {
        account.organization_id: True,
        team["id"]: False,
    }
    as_team = _in(account, team["id"])
    assert client.get(CURRENT, headers=as_team).json()["id"] == team["id"]
    personal = client.get(CURRENT, headers=account.headers).json()
    assert personal["id"] == account.organization_id and personal["is_personal"] is True

    content = table_csv(["a", "y"], [[1, 0], [2, 1]])
    dataset = client.post(
        "/api/v1/datasets", headers=as_team, files={"file": ("t.csv", content, "text/csv")}
    )
    assert dataset.status_code == 201, dataset.text
    assert client.get("/api/v1/datasets", headers=as_team).json()["total"] == 1
    assert client.get("/api/v1/datasets", headers=account.headers).json()["total"] == 0
    assert client.get(CURRENT, headers=as_team).json()["usage"]["storage_bytes"] == len(content)


def test_only_admins_rename_and_names_are_checked(
    client: TestClient, account: Account, other_account: Account
) -> None:
    team = create_organization(client, account)
    as_admin = _in(account, team)
    added = client.post(
        CURRENT + "/members",
        headers=as_admin,
        json={"username": other_account.username, "role": "member"},
    )
    assert added.status_code == 201, added.text
    renamed = client.patch(CURRENT, headers=as_admin, json={"name": "Research"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Research" and renamed.json()["role"] == "admin"
    as_member = _in(other_account, team)
    seen = client.get(CURRENT, headers=as_member).json()
    assert seen["name"] == "Research" and seen["role"] == "member"
    _error(
        client.patch(CURRENT, headers=as_member, json={"name": "Mine"}), 403, "permission_denied"
    )
    for bad in ({"name": "   "}, {"name": "a\nb"}, {"name": "x" * 101}, {"name": "ok", "id": 1}):
        _error(client.patch(CURRENT, headers=as_admin, json=bad), 422, "validation_error")
        _error(client.post(ORGANIZATIONS, headers=as_admin, json=bad), 422, "validation_error")


def test_a_user_creates_a_bounded_number_of_organizations(
    deployment: Deployment, account: Account
) -> None:
    bounded = deployment.settings.model_copy(update={"max_organizations_per_user": 2})
    with TestClient(create_app(bounded), raise_server_exceptions=False) as client:
        first = create_organization(client, account, "one")
        create_organization(client, account, "two")
        refused = client.post(ORGANIZATIONS, headers=account.headers, json={"name": "three"})
        assert "2 shared organizations" in _error(refused, 409, "conflict")["message"]
        total = client.get(ORGANIZATIONS, headers=account.headers).json()["total"]
        assert total == 3
        assert client.get(CURRENT, headers=_in(account, first)).json()["role"] == "admin"


def test_unknown_or_foreign_organization_in_the_header_is_refused(
    client: TestClient, account: Account, other_account: Account
) -> None:
    team = create_organization(client, account)
    for headers in (_in(other_account, team), _in(other_account, "not-an-id")):
        _error(client.get(CURRENT, headers=headers), 403, "permission_denied")
        _error(client.patch(CURRENT, headers=headers, json={"name": "x"}), 403, "permission_denied")

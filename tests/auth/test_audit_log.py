"""The audit log: what is recorded, paging, who may read it, and tenant isolation. On both
run shapes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from dlp.audit.models import AuditEvent
from dlp.db import create_db_engine, create_session_factory, session_scope
from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer, table_csv, upload_ok

AUDIT = "/api/v1/organizations/current/audit"
MEMBERS = "/api/v1/organizations/current/members"


def _events(client: TestClient, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = client.get(AUDIT, headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _actions(client: TestClient, account: Account) -> list[str]:
    return [event["action"] for event in _events(client, account, limit=200)]


def test_logins_and_their_failures_are_recorded(client: TestClient, account: Account) -> None:
    failed = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "wrong password"}
    )
    assert failed.status_code == 401
    events = _events(client, account)
    assert [e["action"] for e in events] == ["auth.login_failed", "auth.login"]
    failure = events[0]
    assert set(failure) == {
        "id",
        "created_at",
        "action",
        "actor_id",
        "actor_name",
        "target_type",
        "target_id",
        "ip",
        "detail",
    }
    assert failure["actor_id"] == account.id and failure["actor_name"] == account.username
    assert failure["target_type"] == "user" and failure["target_id"] == account.id
    assert failure["ip"] and failure["detail"] == {"reason": "wrong_password"}


def test_failed_login_of_unknown_user_is_recorded_without_organization(
    client: TestClient, deployment: Deployment
) -> None:
    name = f"ghost{uuid.uuid4().hex[:8]}"
    response = client.post("/api/v1/auth/login", data={"username": name, "password": "guess1234"})
    assert response.status_code == 401
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            (event,) = session.scalars(select(AuditEvent).where(AuditEvent.actor_name == name))
            assert event.action == "auth.login_failed" and event.organization_id is None
            assert event.actor_id is None and event.detail == {"reason": "unknown_user"}
    finally:
        engine.dispose()


def test_keys_logout_and_password_change_are_recorded(client: TestClient, account: Account) -> None:
    created = client.post(
        "/api/v1/api-keys", headers=account.headers, json={"name": "ci", "scope": "predict"}
    ).json()
    client.delete(f"/api/v1/api-keys/{created['id']}", headers=account.headers)
    client.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    change = {"current_password": account.password, "new_password": "another long one"}
    assert (
        client.post("/api/v1/users/me/password", headers=account.headers, json=change).status_code
        == 204
    )
    tokens = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "another long one"}
    ).json()
    account.access_token = tokens["access_token"]
    events = _events(client, account)
    assert [e["action"] for e in events] == [
        "auth.login",
        "auth.password_changed",
        "auth.logout",
        "api_key.revoked",
        "api_key.created",
        "auth.login",
    ]
    made = events[4]
    assert made["target_type"] == "api_key" and made["target_id"] == created["id"]
    assert made["detail"] == {"name": "ci", "scope": "predict", "expires_at": None}
    assert created["key"] not in str(events)


def test_refresh_reuse_is_recorded(client: TestClient, account: Account) -> None:
    body = {"refresh_token": account.refresh_token}
    assert client.post("/api/v1/auth/refresh", json=body).status_code == 200
    assert client.post("/api/v1/auth/refresh", json=body).status_code == 401
    assert _actions(client, account)[0] == "auth.refresh_reuse_detected"


def test_member_changes_are_recorded(
    client: TestClient, account: Account, other_account: Account
) -> None:
    client.post(
        MEMBERS,
        headers=account.headers,
        json={"username": other_account.username, "role": "member"},
    )
    client.patch(f"{MEMBERS}/{other_account.id}", headers=account.headers, json={"role": "viewer"})
    client.delete(f"{MEMBERS}/{other_account.id}", headers=account.headers)
    added, changed, removed = reversed(_events(client, account)[:3])
    assert added["action"] == "member.added" and added["detail"]["role"] == "member"
    assert changed["action"] == "member.role_changed"
    assert changed["detail"] == {
        "username": other_account.username,
        "old_role": "member",
        "role": "viewer",
    }
    assert removed["action"] == "member.removed" and removed["target_id"] == other_account.id
    assert changed["actor_id"] == account.id


def test_deletion_is_recorded(client: TestClient, account: Account) -> None:
    dataset = upload_ok(client, account, table_csv(["x", "y"], [[1, 0], [2, 1]]), name="gone")
    assert (
        client.delete(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).status_code
        == 204
    )
    (event,) = _events(client, account, limit=1)
    assert event["action"] == "dataset.deleted" and event["target_type"] == "dataset"
    assert event["target_id"] == dataset["id"] and event["detail"] == {"name": "gone"}


def test_audit_log_pages_newest_first(client: TestClient, account: Account) -> None:
    for name in ("a", "b", "c"):
        client.post("/api/v1/api-keys", headers=account.headers, json={"name": name})
    page = client.get(AUDIT, headers=account.headers, params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 1
    assert [e["detail"]["name"] for e in page["items"]] == ["b", "a"]
    everything = _events(client, account)
    assert [e["created_at"] for e in everything] == sorted(
        (e["created_at"] for e in everything), reverse=True
    )


def test_audit_log_is_for_admins_only(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    viewer = add_viewer(deployment, account, register_account(client))
    assert client.get(AUDIT, headers=viewer).status_code == 403
    client.post(
        MEMBERS,
        headers=account.headers,
        json={"username": other_account.username, "role": "member"},
    )
    member = {**other_account.headers, "X-DLP-Org": account.organization_id}
    assert client.get(AUDIT, headers=member).json()["error"] == "permission_denied"


def test_audit_log_never_shows_another_organization(
    client: TestClient, account: Account, other_account: Account
) -> None:
    client.post("/api/v1/api-keys", headers=other_account.headers, json={"name": "theirs"})
    mine = _events(client, account)
    theirs = _events(client, other_account)
    assert {e["actor_id"] for e in mine} == {account.id}
    assert {e["actor_id"] for e in theirs} == {other_account.id}
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    foreign = {**account.headers, "X-DLP-Org": other_account.organization_id}
    assert client.get(AUDIT, headers=foreign).status_code == 403

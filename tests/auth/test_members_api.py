"""Members of the current organization and the caller's organizations, on both run shapes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from dlp.auth.models import Membership, Organization, Role
from dlp.db import create_db_engine, create_session_factory, session_scope
from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer

MEMBERS = "/api/v1/organizations/current/members"


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body


def _in(account: Account, organization_id: str) -> dict[str, str]:
    return {**account.headers, "X-DLP-Org": organization_id}


def _add(client: TestClient, headers: dict[str, str], username: str, role: str) -> Response:
    return client.post(MEMBERS, headers=headers, json={"username": username, "role": role})


def _team(deployment: Deployment, admin: Account) -> str:
    """A shared (not personal) organization with ``admin`` as its only member; its id."""
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            team = Organization(name=f"team-{uuid.uuid4().hex[:6]}", is_personal=False)
            session.add(team)
            session.flush()
            session.add(
                Membership(organization_id=team.id, user_id=uuid.UUID(admin.id), role=Role.ADMIN)
            )
            return str(team.id)
    finally:
        engine.dispose()


def test_members_list_the_personal_organization(client: TestClient, account: Account) -> None:
    page = client.get(MEMBERS, headers=account.headers).json()
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    (member,) = page["items"]
    assert set(member) == {"user_id", "username", "email", "role", "joined_at"}
    assert member["user_id"] == account.id
    assert member["username"] == account.username
    assert member["email"] == f"{account.username}@example.com"
    assert member["role"] == "admin"


def test_admin_adds_a_member_who_can_read_and_switch(
    client: TestClient, account: Account, other_account: Account
) -> None:
    added = _add(client, account.headers, other_account.username.upper(), "member")
    assert added.status_code == 201, added.text
    assert added.json()["user_id"] == other_account.id
    assert added.json()["role"] == "member"
    as_member = _in(other_account, account.organization_id)
    me = client.get("/api/v1/users/me", headers=as_member).json()
    assert me["organization_id"] == account.organization_id and me["role"] == "member"
    page = client.get(MEMBERS, headers=as_member, params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and page["limit"] == 1 and len(page["items"]) == 1
    everyone = client.get(MEMBERS, headers=as_member).json()["items"]
    assert {m["user_id"]: m["role"] for m in everyone} == {
        account.id: "admin",
        other_account.id: "member",
    }
    organizations = client.get("/api/v1/organizations", headers=other_account.headers).json()
    assert organizations["total"] == 2
    roles = {o["id"]: (o["role"], o["is_personal"]) for o in organizations["items"]}
    assert roles == {
        other_account.organization_id: ("admin", True),
        account.organization_id: ("member", True),
    }


def test_adding_members_is_checked(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    body = _error(
        _add(client, account.headers, "nobody-" + uuid.uuid4().hex[:8], "member"), 404, "not_found"
    )
    assert "user" in body["message"]
    _error(_add(client, account.headers, other_account.username, "owner"), 422, "validation_error")
    missing_role = client.post(MEMBERS, headers=account.headers, json={"username": "x"})
    _error(missing_role, 422, "validation_error")
    assert _add(client, account.headers, other_account.username, "member").status_code == 201
    body = _error(_add(client, account.headers, other_account.username, "admin"), 409, "conflict")
    assert "already a member" in body["message"]
    _error(_add(client, account.headers, account.username, "member"), 409, "conflict")
    third = register_account(client)
    as_member = _in(other_account, account.organization_id)
    body = _error(_add(client, as_member, third.username, "member"), 403, "permission_denied")
    assert "needs admin" in body["message"]
    as_viewer = add_viewer(deployment, account, third)
    _error(
        _add(client, as_viewer, register_account(client).username, "viewer"),
        403,
        "permission_denied",
    )
    assert client.get(MEMBERS, headers=account.headers).json()["total"] == 3


def test_admin_changes_roles(client: TestClient, account: Account, other_account: Account) -> None:
    assert _add(client, account.headers, other_account.username, "viewer").status_code == 201
    changed = client.patch(
        f"{MEMBERS}/{other_account.id}", headers=account.headers, json={"role": "member"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "member" and changed.json()["user_id"] == other_account.id
    as_member = _in(other_account, account.organization_id)
    assert client.get("/api/v1/users/me", headers=as_member).json()["role"] == "member"
    refused = client.patch(f"{MEMBERS}/{account.id}", headers=as_member, json={"role": "viewer"})
    _error(refused, 403, "permission_denied")
    bad_role = client.patch(
        f"{MEMBERS}/{other_account.id}", headers=account.headers, json={"role": "root"}
    )
    _error(bad_role, 422, "validation_error")
    owner = client.patch(
        f"{MEMBERS}/{account.id}", headers=account.headers, json={"role": "member"}
    )
    assert "owns this personal organization" in _error(owner, 409, "conflict")["message"]


def test_other_tenants_users_answer_like_unknown_ids(
    client: TestClient, account: Account, other_account: Account
) -> None:
    unknown = uuid.uuid4()
    for user_id in (unknown, uuid.UUID(other_account.id)):
        patched = client.patch(
            f"{MEMBERS}/{user_id}", headers=account.headers, json={"role": "viewer"}
        )
        deleted = client.delete(f"{MEMBERS}/{user_id}", headers=account.headers)
        for response in (patched, deleted):
            assert _error(response, 404, "not_found")["message"] == f"member {user_id} not found"
    _error(
        client.patch(f"{MEMBERS}/not-an-id", headers=account.headers, json={"role": "viewer"}),
        422,
        "validation_error",
    )
    assert client.get(MEMBERS, headers=other_account.headers).json()["total"] == 1


def test_removing_and_leaving(client: TestClient, account: Account, other_account: Account) -> None:
    third = register_account(client)
    for user in (other_account, third):
        assert _add(client, account.headers, user.username, "member").status_code == 201
    as_other = _in(other_account, account.organization_id)
    refused = client.delete(f"{MEMBERS}/{third.id}", headers=as_other)
    _error(refused, 403, "permission_denied")
    key = client.post("/api/v1/api-keys", headers=as_other, json={"name": "ci"}).json()["key"]
    assert client.get(MEMBERS, headers={"X-API-Key": key}).status_code == 200

    removed = client.delete(f"{MEMBERS}/{other_account.id}", headers=account.headers)
    assert removed.status_code == 204, removed.text
    _error(client.get(MEMBERS, headers=as_other), 403, "permission_denied")
    assert _add(client, account.headers, other_account.username, "member").status_code == 201
    # The key made before the removal stays revoked after the user is added back.
    _error(client.get(MEMBERS, headers={"X-API-Key": key}), 401, "authentication_error")

    left = client.delete(f"{MEMBERS}/{third.id}", headers=_in(third, account.organization_id))
    assert left.status_code == 204, left.text
    members = client.get(MEMBERS, headers=account.headers).json()["items"]
    assert {m["user_id"] for m in members} == {account.id, other_account.id}
    owner = client.delete(f"{MEMBERS}/{account.id}", headers=account.headers)
    assert "cannot be removed" in _error(owner, 409, "conflict")["message"]
    owner_by_admin = client.patch(
        f"{MEMBERS}/{other_account.id}", headers=account.headers, json={"role": "admin"}
    )
    assert owner_by_admin.status_code == 200
    _error(client.delete(f"{MEMBERS}/{account.id}", headers=as_other), 409, "conflict")


def test_the_last_admin_of_a_shared_organization_stays(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    team = _team(deployment, account)
    as_admin = _in(account, team)
    demoted = client.patch(f"{MEMBERS}/{account.id}", headers=as_admin, json={"role": "member"})
    assert "last admin" in _error(demoted, 409, "conflict")["message"]
    _error(client.delete(f"{MEMBERS}/{account.id}", headers=as_admin), 409, "conflict")
    assert client.get("/api/v1/users/me", headers=as_admin).json()["role"] == "admin"

    assert _add(client, as_admin, other_account.username, "admin").status_code == 201
    demoted = client.patch(f"{MEMBERS}/{account.id}", headers=as_admin, json={"role": "viewer"})
    assert demoted.status_code == 200, demoted.text
    as_other = _in(other_account, team)
    _error(client.delete(f"{MEMBERS}/{other_account.id}", headers=as_other), 409, "conflict")
    promoted = client.patch(f"{MEMBERS}/{account.id}", headers=as_other, json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    left = client.delete(f"{MEMBERS}/{other_account.id}", headers=as_other)
    assert left.status_code == 204, left.text
    members = client.get(MEMBERS, headers=as_admin).json()
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [(account.id, "admin")]


def test_openapi_documents_the_member_paths(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/organizations"]) == {"get", "post"}
    assert set(paths["/api/v1/organizations/current"]) == {"get", "patch"}
    assert set(paths[MEMBERS]) == {"get", "post"}
    assert set(paths[MEMBERS + "/{user_id}"]) == {"patch", "delete"}
    invitations = "/api/v1/organizations/current/invitations"
    assert set(paths[invitations]) == {"get", "post"}
    assert set(paths[invitations + "/{invitation_id}"]) == {"delete"}
    assert set(paths["/api/v1/invitations/accept"]) == {"post"}
    assert set(paths["/api/v1/admin/organizations/{organization_id}"]) == {"patch"}

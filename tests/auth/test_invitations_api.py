"""Invitations to an organization: create, list, revoke, accept once, on both run shapes."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from dlp.audit.models import AuditEvent
from dlp.auth.models import Invitation
from dlp.db import create_db_engine, create_session_factory, session_scope
from dlp.main import create_app
from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer

INVITATIONS = "/api/v1/organizations/current/invitations"
ACCEPT = "/api/v1/invitations/accept"


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body


def _email(account: Account) -> str:
    return f"{account.username}@example.com"


def _invite(client: TestClient, headers: dict[str, str], email: str, role: str) -> Response:
    response: Response = client.post(
        INVITATIONS, headers=headers, json={"email": email, "role": role}
    )
    return response


def _invited(client: TestClient, admin: Account, invitee: Account, role: str) -> dict[str, Any]:
    response = _invite(client, admin.headers, _email(invitee).upper(), role)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _stored(deployment: Deployment, invitation_id: str) -> tuple[Invitation, list[str]]:
    """The invitation's row and the audit actions recorded about it."""
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            row = session.get(Invitation, uuid.UUID(invitation_id))
            assert row is not None
            actions = session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_id == invitation_id)
                .order_by(AuditEvent.created_at)
            )
            return row, list(actions)
    finally:
        engine.dispose()


def test_invitation_is_accepted_once_by_its_addressee(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    invitation = _invited(client, account, other_account, "member")
    assert invitation["email"] == _email(other_account) and invitation["role"] == "member"
    assert invitation["invited_by"] == account.id and invitation["expires_at"]
    token = invitation["token"]
    listed = client.get(INVITATIONS, headers=account.headers).json()
    assert listed["total"] == 1 and listed["limit"] == 50 and listed["offset"] == 0
    (pending,) = listed["items"]
    assert pending["id"] == invitation["id"] and "token" not in pending

    accepted = client.post(ACCEPT, headers=other_account.headers, json={"token": token})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["id"] == account.organization_id
    assert accepted.json()["role"] == "member"
    as_member = {**other_account.headers, "X-DLP-Org": account.organization_id}
    assert client.get("/api/v1/users/me", headers=as_member).json()["role"] == "member"
    assert client.get(INVITATIONS, headers=account.headers).json()["total"] == 0

    replayed = client.post(ACCEPT, headers=other_account.headers, json={"token": token})
    assert _error(replayed, 404, "not_found")["message"] == "invitation not found"
    row, actions = _stored(deployment, invitation["id"])
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.accepted_at is not None
    assert actions == ["invitation.created", "invitation.accepted"]


def test_someone_elses_revoked_or_unknown_token_answers_the_same_404(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    invitation = _invited(client, account, other_account, "viewer")
    stranger = register_account(client)
    answers = [
        client.post(ACCEPT, headers=stranger.headers, json={"token": invitation["token"]}),
        client.post(ACCEPT, headers=other_account.headers, json={"token": "x" * 43}),
    ]
    revoked = client.delete(f"{INVITATIONS}/{invitation['id']}", headers=account.headers)
    assert revoked.status_code == 204, revoked.text
    answers.append(
        client.post(ACCEPT, headers=other_account.headers, json={"token": invitation["token"]})
    )
    assert {_error(a, 404, "not_found")["message"] for a in answers} == {"invitation not found"}
    again = client.delete(f"{INVITATIONS}/{invitation['id']}", headers=account.headers)
    _error(again, 404, "not_found")
    assert client.get(INVITATIONS, headers=account.headers).json()["total"] == 0
    assert _stored(deployment, invitation["id"])[1] == ["invitation.created", "invitation.revoked"]
    _error(client.post(ACCEPT, headers=other_account.headers, json={}), 422, "validation_error")
    _error(client.post(ACCEPT, json={"token": invitation["token"]}), 401, "authentication_error")


def test_members_are_not_invited_twice(
    client: TestClient, account: Account, other_account: Account
) -> None:
    invitation = _invited(client, account, other_account, "member")
    twice = _invite(client, account.headers, _email(other_account), "admin")
    assert "pending invitation" in _error(twice, 409, "conflict")["message"]
    added = client.post(
        "/api/v1/organizations/current/members",
        headers=account.headers,
        json={"username": other_account.username, "role": "viewer"},
    )
    assert added.status_code == 201, added.text
    accepted = client.post(
        ACCEPT, headers=other_account.headers, json={"token": invitation["token"]}
    )
    assert "already a member" in _error(accepted, 409, "conflict")["message"]
    self_invite = _invite(client, account.headers, _email(account), "member")
    assert "already a member" in _error(self_invite, 409, "conflict")["message"]
    bad = [
        _invite(client, account.headers, "not-an-email", "member"),
        _invite(client, account.headers, "a@example.com", "owner"),
    ]
    for response in bad:
        _error(response, 422, "validation_error")


def test_only_admins_invite_and_other_tenants_see_404(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    invitation = _invited(client, account, other_account, "member")
    as_viewer = add_viewer(deployment, account, register_account(client))
    member = register_account(client)
    added = client.post(
        "/api/v1/organizations/current/members",
        headers=account.headers,
        json={"username": member.username, "role": "member"},
    )
    assert added.status_code == 201, added.text
    as_member = {**member.headers, "X-DLP-Org": account.organization_id}
    for headers in (as_viewer, as_member):
        _error(_invite(client, headers, "new@example.com", "viewer"), 403, "permission_denied")
        _error(client.get(INVITATIONS, headers=headers), 403, "permission_denied")
        revoke = client.delete(f"{INVITATIONS}/{invitation['id']}", headers=headers)
        _error(revoke, 403, "permission_denied")
    foreign = client.delete(f"{INVITATIONS}/{invitation['id']}", headers=other_account.headers)
    _error(foreign, 404, "not_found")
    assert client.get(INVITATIONS, headers=other_account.headers).json()["total"] == 0
    assert client.get(INVITATIONS, headers=account.headers).json()["total"] == 1


def test_expired_invitation_answers_404(deployment: Deployment, account: Account) -> None:
    short = deployment.settings.model_copy(update={"invitation_ttl_hours": 1e-9})
    with TestClient(create_app(short), raise_server_exceptions=False) as client:
        invitee = register_account(client)
        invitation = _invited(client, account, invitee, "member")
        expired = client.post(ACCEPT, headers=invitee.headers, json={"token": invitation["token"]})
        _error(expired, 404, "not_found")
        assert client.get(INVITATIONS, headers=account.headers).json()["total"] == 0
        # An expired invitation no longer blocks a new one.
        assert _invite(client, account.headers, _email(invitee), "member").status_code == 201

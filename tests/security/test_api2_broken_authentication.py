"""OWASP API2:2023 Broken Authentication: stolen, replayed, expired and revoked credentials,
and what a login answer or a stored hash gives away. On both run shapes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import argon2
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from dlp.auth import security
from dlp.auth.models import ApiKey, User
from dlp.db import create_db_engine, create_session_factory, session_scope, utcnow
from tests.conftest import Account, Deployment

T = TypeVar("T")
ME = "/api/v1/users/me"


def _in_database(deployment: Deployment, work: Callable[[Session], T]) -> T:
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            return work(session)
    finally:
        engine.dispose()


def _refused(response: Response, status: int = 401) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == ("authentication_error" if status == 401 else "permission_denied")
    return body


def _refresh(client: TestClient, token: str) -> Response:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def _login(client: TestClient, username: str, password: str) -> Response:
    return client.post("/api/v1/auth/login", data={"username": username, "password": password})


def _new_key(client: TestClient, account: Account, **body: Any) -> dict[str, Any]:
    created = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "k", **body})
    assert created.status_code == 201, created.text
    key: dict[str, Any] = created.json()
    return key


def test_refresh_token_replay_revokes_family(client: TestClient, account: Account) -> None:
    """A stolen refresh token replayed after its owner rotated it signs out the whole login."""
    rotated = _refresh(client, account.refresh_token)
    assert rotated.status_code == 200, rotated.text
    live = rotated.json()["refresh_token"]
    body = _refused(_refresh(client, account.refresh_token))
    assert "already used" in body["message"]
    _refused(_refresh(client, live))


def test_logout_revokes_every_token_of_the_login(client: TestClient, account: Account) -> None:
    """Logging out with an old token of a login also kills the newest one of that login."""
    live = _refresh(client, account.refresh_token).json()["refresh_token"]
    logout = client.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert logout.status_code == 204, logout.text
    _refused(_refresh(client, live))


def test_password_change_revokes_refresh_and_access_tokens(
    client: TestClient, account: Account
) -> None:
    """After a password change, tokens stolen before it (refresh and access) are worthless."""
    second = _login(client, account.username, account.password).json()
    path = "/api/v1/users/me/password"
    wrong = {"current_password": "not it at all", "new_password": "a brand new password"}
    _refused(client.post(path, headers=account.headers, json=wrong))
    short = {"current_password": account.password, "new_password": "short"}
    assert client.post(path, headers=account.headers, json=short).status_code == 422
    change = {"current_password": account.password, "new_password": "a brand new password"}
    assert client.post(path, headers=account.headers, json=change).status_code == 204
    _refused(_refresh(client, account.refresh_token))
    _refused(_refresh(client, second["refresh_token"]))
    body = _refused(client.get(ME, headers=account.headers))
    assert "password" in body["message"]
    _refused(_login(client, account.username, account.password))
    fresh = _login(client, account.username, "a brand new password")
    assert fresh.status_code == 200, fresh.text
    headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert client.get(ME, headers=headers).status_code == 200


def test_expired_api_key_is_refused(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    """An API key past its expiry no longer authenticates."""
    key = _new_key(client, account, expires_in_days=1)
    assert client.get(ME, headers={"X-API-Key": key["key"]}).status_code == 200

    def expire(session: Session) -> None:
        api_key = session.get(ApiKey, uuid.UUID(key["id"]))
        assert api_key is not None
        api_key.expires_at = utcnow() - timedelta(seconds=1)

    _in_database(deployment, expire)
    body = _refused(client.get("/api/v1/datasets", headers={"X-API-Key": key["key"]}))
    assert "expired" in body["message"]
    too_long = {"name": "k", "expires_in_days": 100_000}
    assert (
        client.post("/api/v1/api-keys", headers=account.headers, json=too_long).status_code == 422
    )


def test_revoked_api_key_is_refused(client: TestClient, account: Account) -> None:
    """A revoked API key no longer authenticates, on reads and on writes."""
    key = _new_key(client, account)
    revoked = client.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers)
    assert revoked.status_code == 204
    _refused(client.get(ME, headers={"X-API-Key": key["key"]}))
    _refused(client.post("/api/v1/api-keys", headers={"X-API-Key": key["key"]}, json={"name": "x"}))


def test_api_keys_never_appear_in_any_listing(client: TestClient, account: Account) -> None:
    """No listing (keys, audit log, the user) gives a key or its hash back."""
    key = _new_key(client, account, scope="read", expires_in_days=30)
    assert set(key) >= {"id", "name", "key", "scope", "prefix", "created_at", "expires_at"}
    assert key["key"].startswith(key["prefix"]) and key["scope"] == "read"
    used = client.get(ME, headers={"X-API-Key": key["key"]})
    assert used.status_code == 200
    listed = client.get("/api/v1/api-keys", headers=account.headers, params={"limit": 10})
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 1 and page["limit"] == 10 and page["offset"] == 0
    (item,) = page["items"]
    assert set(item) == {
        "id",
        "name",
        "scope",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    }
    assert item["last_used_at"] is not None and item["revoked_at"] is None
    key_hash = security.hash_secret(key["key"])
    for path in ("/api/v1/api-keys", "/api/v1/organizations/current/audit", ME):
        text = client.get(path, headers=account.headers).text
        assert key["key"] not in text and key_hash not in text


def test_wrong_password_and_unknown_user_answer_alike(client: TestClient, account: Account) -> None:
    """Login answers do not reveal whether an account exists."""
    wrong = _login(client, account.username, "not the password")
    unknown = _login(client, f"nobody{uuid.uuid4().hex[:8]}", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]
    assert wrong.json()["error"] == unknown.json()["error"] == "authentication_error"


def test_stored_password_hash_is_argon2id_with_sane_parameters(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    """Stored hashes are Argon2id, and production parameters meet OWASP's minimum."""
    stored = _in_database(
        deployment, lambda session: session.get(User, uuid.UUID(account.id)).password_hash
    )
    assert stored.startswith("$argon2id$")
    assert account.password not in stored
    production = security.PASSWORD_PARAMETERS
    assert production.type is argon2.Type.ID
    assert production.memory_cost >= 19 * 1024 and production.time_cost >= 2
    assert production.parallelism >= 1


def test_login_rehashes_outdated_argon2_parameters(
    client: TestClient, deployment: Deployment, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash made with parameters since raised is redone at the next login."""

    def stored(session: Session) -> str:
        user = session.get(User, uuid.UUID(account.id))
        assert user is not None
        return user.password_hash

    before = argon2.extract_parameters(_in_database(deployment, stored))
    stronger = PasswordHasher(
        time_cost=before.time_cost + 1, memory_cost=before.memory_cost, parallelism=1
    )
    monkeypatch.setattr(security, "_hasher", stronger)
    assert _login(client, account.username, account.password).status_code == 200
    after = argon2.extract_parameters(_in_database(deployment, stored))
    assert after.time_cost == before.time_cost + 1
    assert _login(client, account.username, account.password).status_code == 200

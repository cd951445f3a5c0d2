"""Auth endpoints per CONTRACT.md, on both run shapes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi.testclient import TestClient

from dlp.auth.security import create_access_token
from dlp.config import Settings
from dlp.main import create_app
from dlp.migrate import upgrade_database
from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer, table_csv, upload


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in body["message"]
    return body


def test_register_returns_user_in_personal_organization(client: TestClient) -> None:
    name = f"reg{uuid.uuid4().hex[:8]}"
    response = client.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@Example.com", "password": "longenough"},
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) >= {
        "id",
        "username",
        "email",
        "role",
        "organization_id",
        "is_superuser",
        "created_at",
    }
    assert user["username"] == name
    assert user["email"] == f"{name}@example.com"
    assert user["role"] == "admin"
    assert "password" not in response.text and "hash" not in response.text


def test_register_conflicts_and_bad_input(client: TestClient, account: Account) -> None:
    same_name = {"username": account.username, "email": "new@example.com", "password": "longenough"}
    _error(client.post("/api/v1/auth/register", json=same_name), 409, "conflict")
    same_email = {
        "username": f"x{uuid.uuid4().hex[:8]}",
        "email": f"{account.username}@example.com",
        "password": "longenough",
    }
    _error(client.post("/api/v1/auth/register", json=same_email), 409, "conflict")
    short = {"username": f"s{uuid.uuid4().hex[:8]}", "email": "s@example.com", "password": "abc"}
    body = _error(client.post("/api/v1/auth/register", json=short), 422, "validation_error")
    assert "password" in body["message"]
    bad_email = {"username": f"e{uuid.uuid4().hex[:8]}", "email": "nope", "password": "longenough"}
    _error(client.post("/api/v1/auth/register", json=bad_email), 422, "validation_error")
    # Nothing of the refused registrations was kept: the name is still free.
    register_account(client, short["username"])


def test_login_with_form_and_json(client: TestClient, account: Account) -> None:
    form = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    )
    as_json = client.post(
        "/api/v1/auth/login", json={"username": account.username, "password": account.password}
    )
    for response in (form, as_json):
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 15 * 60
        me = client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.json()["id"] == account.id


def test_login_refuses_bad_credentials(client: TestClient, account: Account) -> None:
    wrong = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": "wrong-password"}
    )
    unknown = client.post(
        "/api/v1/auth/login", data={"username": "nobody-here", "password": "whatever1"}
    )
    for response in (wrong, unknown):
        body = _error(response, 401, "authentication_error")
        assert body["message"] == "incorrect username or password"
    _error(
        client.post("/api/v1/auth/login", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    _error(
        client.post("/api/v1/auth/login", json={"username": account.username}),
        422,
        "validation_error",
    )


def test_me_needs_valid_credentials(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    _error(client.get("/api/v1/users/me"), 401, "authentication_error")
    tampered = account.access_token[:-3] + (
        "aaa" if not account.access_token.endswith("aaa") else "bbb"
    )
    _error(
        client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tampered}"}),
        401,
        "authentication_error",
    )
    expired = create_access_token(
        key=deployment.settings.signing_key(),
        user_id=uuid.UUID(account.id),
        organization_id=uuid.UUID(account.organization_id),
        password_stamp="",
        ttl=timedelta(seconds=-1),
    )
    body = _error(
        client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "authentication_error",
    )
    assert "expired" in body["message"]
    forged = create_access_token(
        key="another-installation-" + "k" * 40,
        user_id=uuid.UUID(account.id),
        organization_id=uuid.UUID(account.organization_id),
        password_stamp="",
        ttl=timedelta(minutes=5),
    )
    _error(
        client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "authentication_error",
    )


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient, account: Account) -> None:
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
        ).status_code
        == 200
    )
    # The spent token comes back: refused, and the whole family is signed out.
    body = _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}),
        401,
        "authentication_error",
    )
    assert "already used" in body["message"]
    _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}),
        401,
        "authentication_error",
    )
    _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"}),
        401,
        "authentication_error",
    )


def test_logout_revokes_refresh_token(client: TestClient, account: Account) -> None:
    response = client.post("/api/v1/auth/logout", json={"refresh_token": account.refresh_token})
    assert response.status_code == 204
    _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}),
        401,
        "authentication_error",
    )
    assert client.post("/api/v1/auth/logout", json={"refresh_token": "unknown"}).status_code == 204


def test_api_keys_authenticate_until_revoked(client: TestClient, account: Account) -> None:
    created = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "ci"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("dlp_") and key["name"] == "ci"
    me = client.get("/api/v1/users/me", headers={"X-API-Key": key["key"]})
    assert me.status_code == 200 and me.json()["id"] == account.id
    _error(
        client.get("/api/v1/users/me", headers={"X-API-Key": key["key"] + "x"}),
        401,
        "authentication_error",
    )
    assert (
        client.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers).status_code == 204
    )
    _error(
        client.get("/api/v1/users/me", headers={"X-API-Key": key["key"]}),
        401,
        "authentication_error",
    )
    _error(
        client.delete(f"/api/v1/api-keys/{key['id']}", headers=account.headers), 404, "not_found"
    )
    _error(
        client.post("/api/v1/api-keys", headers=account.headers, json={"name": ""}),
        422,
        "validation_error",
    )


def test_api_key_of_another_user_cannot_be_revoked(
    client: TestClient, account: Account, other_account: Account
) -> None:
    key = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "mine"}).json()
    _error(
        client.delete(f"/api/v1/api-keys/{key['id']}", headers=other_account.headers),
        404,
        "not_found",
    )
    assert client.get("/api/v1/users/me", headers={"X-API-Key": key["key"]}).status_code == 200


def test_viewer_reads_but_cannot_create(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    as_viewer = add_viewer(deployment, account, other_account)
    me = client.get("/api/v1/users/me", headers=as_viewer).json()
    assert me["role"] == "viewer" and me["organization_id"] == account.organization_id
    assert client.get("/api/v1/datasets", headers=as_viewer).status_code == 200
    response = client.post(
        "/api/v1/datasets",
        headers=as_viewer,
        files={"file": ("d.csv", table_csv(["a", "b"], [[1, 2]]), "text/csv")},
    )
    _error(response, 403, "permission_denied")
    assert client.get("/api/v1/datasets", headers=account.headers).json()["total"] == 0


def test_organization_header_must_name_a_membership(
    client: TestClient, account: Account, other_account: Account
) -> None:
    foreign = {**account.headers, "X-DLP-Org": other_account.organization_id}
    _error(client.get("/api/v1/datasets", headers=foreign), 403, "permission_denied")
    _error(
        client.get("/api/v1/datasets", headers={**account.headers, "X-DLP-Org": "nope"}),
        403,
        "permission_denied",
    )
    assert upload(client, account, table_csv(["a", "b"], [[1, 2]]), "ok.csv").status_code == 201


def test_first_user_of_an_installation_is_superuser(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    upgrade_database(settings.sqlalchemy_url)
    with TestClient(create_app(settings)) as fresh:
        first = register_account(fresh, "founder")
        second = register_account(fresh, "joiner")
        me = [fresh.get("/api/v1/users/me", headers=a.headers).json() for a in (first, second)]
    assert [user["is_superuser"] for user in me] == [True, False]
    assert me[0]["organization_id"] != me[1]["organization_id"]
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text().strip()) >= 32

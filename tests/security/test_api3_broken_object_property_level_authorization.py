"""API3:2023 Broken object property level authorization: mass assignment and
over-exposed properties."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import small_job_body, submit_job, upload

SECRET_FIELDS = ("password_hash", "key_hash", "token_hash", "hashed_password")


def _assert_no_secret_hashes(text: str) -> None:
    for field in SECRET_FIELDS:
        assert field not in text, text


def test_register_mass_assignment_of_superuser_and_role_is_refused(client: TestClient) -> None:
    """Mass assignment: extra is_superuser / role / organization_id fields at sign-up answer 422."""
    username = f"mass{uuid.uuid4().hex[:8]}"
    response = client.post(
        "/api/v1/auth/register",
        json={
            "username": username,
            "email": f"{username}@example.com",
            "password": "correct horse battery",
            "is_superuser": True,
            "role": "admin",
            "organization_id": str(uuid.uuid4()),
        },
    )
    assert response.status_code == 422 and "is_superuser" in response.json()["message"]
    login = client.post(
        "/api/v1/auth/login", data={"username": username, "password": "correct horse battery"}
    )
    assert login.status_code == 401


def test_answers_never_expose_password_key_or_token_hashes(
    client: TestClient, account: Account
) -> None:
    """Excessive data exposure: no answer about users, keys or tokens carries a stored hash."""
    answers = [
        client.get("/api/v1/users/me", headers=account.headers),
        client.post("/api/v1/api-keys", headers=account.headers, json={"name": "exposed"}),
        client.get("/api/v1/organizations", headers=account.headers),
        client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}),
    ]
    for answer in answers:
        assert answer.status_code < 300, answer.text
        _assert_no_secret_hashes(answer.text)


def test_resources_cannot_be_planted_in_another_organization(
    client: TestClient, account: Account, other_account: Account
) -> None:
    """Mass assignment: an organization_id sent with a resource never moves it to that tenant."""
    job = submit_job(
        client,
        account,
        **small_job_body(str(uuid.uuid4())),
        organization_id=other_account.organization_id,
    )
    assert job.status_code == 422 and "organization_id" in job.json()["message"]
    uploaded = upload(
        client,
        account,
        b"a,b\n1,2\n3,4\n",
        "planted.csv",
        organization_id=other_account.organization_id,
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json().get("organization_id", account.organization_id) == (
        account.organization_id
    )
    theirs = client.get("/api/v1/datasets", headers=other_account.headers).json()
    assert theirs["total"] == 0
    assert client.get("/api/v1/datasets", headers=account.headers).json()["total"] == 1

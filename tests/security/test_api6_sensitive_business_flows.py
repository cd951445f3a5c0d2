"""OWASP API6:2023, unrestricted access to sensitive business flows: sign-up floods and
credential stuffing, automated from one client IP."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import Deployment, register_account
from tests.security.limited import LOGIN, limited_api, login

REGISTER = "/api/v1/auth/register"


def _new_user() -> dict[str, str]:
    name = f"bot{uuid.uuid4().hex[:10]}"
    return {"username": name, "email": f"{name}@example.com", "password": "correct horse battery"}


def test_registration_flood_from_one_ip_is_throttled(deployment: Deployment) -> None:
    """A script creating accounts from one address is stopped after a few."""
    with limited_api(deployment, registrations_per_ip="3/hour") as api:
        for _ in range(3):
            assert api.post(REGISTER, json=_new_user()).status_code == 201
        refused = api.post(REGISTER, json=_new_user())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"] == "rate_limited"


def test_credential_stuffing_across_many_accounts_from_one_ip_is_throttled(
    deployment: Deployment, client: TestClient
) -> None:
    """Leaked passwords tried once per account, across many accounts from one address,
    are stopped by the IP's failure count: the next pair is refused even when it works."""
    victims = [register_account(client) for _ in range(4)]
    with limited_api(deployment, login_failures_per_ip="3/15 minutes") as api:
        for victim in victims[:3]:
            assert login(api, victim.username, "leaked elsewhere") == 401
        stuffed = api.post(
            LOGIN, data={"username": victims[3].username, "password": victims[3].password}
        )
        assert stuffed.status_code == 429
        assert stuffed.json()["error"] == "rate_limited"
    with limited_api(deployment, login_failures_per_ip="3/15 minutes") as elsewhere:
        assert login(elsewhere, victims[3].username, victims[3].password) == 200

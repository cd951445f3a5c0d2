"""OWASP API4:2023, unrestricted resource consumption: floods of requests and password
guessing, bounded per caller and per client IP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import Account, Deployment, register_account
from tests.factories import ROWS, Served
from tests.security.limited import LOGIN, fresh_address, limited_api, login

ME = "/api/v1/users/me"

# --- Rate limits -------------------------------------------------------------------------


def _assert_rate_limited(answer: Response) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    body = answer.json()
    assert body["error"] == "rate_limited"
    assert body["message"]
    assert body["request_id"] == answer.headers["X-Request-ID"]


def test_flooding_the_api_as_one_user_is_answered_429_with_retry_after(
    deployment: Deployment, account: Account
) -> None:
    """A caller over its API budget gets the contract's 429, with Retry-After."""
    with limited_api(deployment, rate_limit_api="3/minute") as api:
        for _ in range(3):
            assert api.get(ME, headers=account.headers).status_code == 200
        _assert_rate_limited(api.get(ME, headers=account.headers))


def test_one_callers_flood_does_not_spend_another_callers_budget(
    deployment: Deployment, client: TestClient, account: Account, other_account: Account
) -> None:
    """Budgets are per caller: a user and an API key each have their own."""
    made = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "script"})
    key = {"X-API-Key": made.json()["key"]}
    with limited_api(deployment, rate_limit_api="2/minute") as api:
        for _ in range(2):
            assert api.get(ME, headers=account.headers).status_code == 200
        _assert_rate_limited(api.get(ME, headers=account.headers))
        assert api.get(ME, headers=other_account.headers).status_code == 200
        assert api.get(ME, headers=key).status_code == 200


def test_many_accounts_from_one_ip_share_the_ip_budget(
    deployment: Deployment, client: TestClient
) -> None:
    """Rotating accounts (or sending no credentials) does not escape the per-IP budget."""
    accounts = [register_account(client) for _ in range(3)]
    with limited_api(deployment, rate_limit_api_per_ip="4/minute") as api:
        for each in accounts:
            assert api.get(ME, headers=each.headers).status_code == 200
        assert api.get(ME).status_code == 401
        _assert_rate_limited(api.get(ME, headers=accounts[0].headers))
        _assert_rate_limited(api.get(ME))


def test_spending_the_api_budget_leaves_predictions_open_and_back(
    deployment: Deployment, client: TestClient, account: Account, served: Served
) -> None:
    """Predictions and the rest of the API have separate budgets: a script polling the
    API does not stop serving, and a prediction flood does not lock the API."""
    made = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "serving"})
    key = {"X-API-Key": made.json()["key"]}
    predict = f"/api/v1/registry/{served.name}/predict"
    with limited_api(
        deployment, rate_limit_api="2/minute", rate_limit_predictions="3/minute"
    ) as api:
        for _ in range(2):
            assert api.get(ME, headers=account.headers).status_code == 200
        _assert_rate_limited(api.get(ME, headers=account.headers))
        answer = api.post(predict, headers=account.headers, json={"inputs": ROWS})
        assert answer.status_code == 200, answer.text

        assert api.post(predict, headers=key, json={"inputs": ROWS}).status_code == 200
        assert api.get(f"/v2/models/{served.name}/ready", headers=key).status_code == 200
        assert api.post(predict, headers=key, json={"inputs": ROWS}).status_code == 200
        _assert_rate_limited(api.post(predict, headers=key, json={"inputs": ROWS}))
        assert api.get(f"/v2/models/{served.name}/ready", headers=key).status_code == 429
        assert api.get(ME, headers=key).status_code == 200


def test_health_metrics_docs_and_static_files_are_never_rate_limited(
    deployment: Deployment,
) -> None:
    """Probes and static assets stay open to an address whose API budget is spent."""
    with limited_api(deployment, rate_limit_api_per_ip="1/minute") as api:
        assert api.get(ME).status_code == 401
        _assert_rate_limited(api.get(ME))
        for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/v2/health/live"):
            assert api.get(path).status_code == 200, path
        assert api.get("/ui/static/css/dlp.css").status_code == 200


def test_two_api_processes_on_one_redis_share_one_budget(
    deployment: Deployment, account: Account
) -> None:
    """Scale-out: spreading a flood over the API processes does not multiply the budget."""
    if deployment.settings.redis_url is None:
        pytest.skip("the embedded shape runs one API process, with its budgets in memory")
    address = fresh_address()
    limits = {"rate_limit_api": "3/minute"}
    with (
        limited_api(deployment, address=address, **limits) as first,
        limited_api(deployment, address=address, **limits) as second,
    ):
        assert first.get(ME, headers=account.headers).status_code == 200
        assert second.get(ME, headers=account.headers).status_code == 200
        assert first.get(ME, headers=account.headers).status_code == 200
        _assert_rate_limited(second.get(ME, headers=account.headers))
        _assert_rate_limited(first.get(ME, headers=account.headers))


# --- Login brute force -------------------------------------------------------------------


def test_guessing_one_accounts_password_locks_it_even_for_the_right_password(
    deployment: Deployment, account: Account
) -> None:
    """After too many failures the account's sign-ins are refused, right password or not,
    and changing the name's case does not open a fresh count."""
    with limited_api(deployment, login_failures_per_account="3/15 minutes") as api:
        for _ in range(3):
            assert login(api, account.username, "wrong guess") == 401
        right = api.post(LOGIN, data={"username": account.username, "password": account.password})
        _assert_rate_limited(right)
        assert login(api, account.username.upper(), account.password) == 429


def test_one_locked_account_leaves_other_accounts_open(
    deployment: Deployment, client: TestClient
) -> None:
    """The account throttle is per account; a success gives the account its budget back."""
    target, bystander = register_account(client), register_account(client)
    with limited_api(deployment, login_failures_per_account="2/15 minutes") as api:
        assert login(api, target.username, "typo") == 401
        assert login(api, target.username, target.password) == 200
        assert login(api, target.username, "typo") == 401
        assert login(api, target.username, "typo again") == 401
        assert login(api, target.username, target.password) == 429
        assert login(api, bystander.username, bystander.password) == 200


def test_a_successful_login_does_not_reset_the_ip_failure_count(
    deployment: Deployment, client: TestClient
) -> None:
    """A guesser who owns one account cannot sign into it to wipe the IP's failures."""
    own, guessed = register_account(client), register_account(client)
    with limited_api(deployment, login_failures_per_ip="3/15 minutes") as api:
        assert login(api, guessed.username, "guess 1") == 401
        assert login(api, guessed.username, "guess 2") == 401
        assert login(api, own.username, own.password) == 200
        assert login(api, f"{guessed.username}x", "guess 3") == 401
        assert login(api, own.username, own.password) == 429

"""``?fields=a,b`` on GET answers: only the named top-level fields, ``id`` always."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.conftest import Account


def _make_api_keys(client: TestClient, account: Account, count: int) -> None:
    for n in range(count):
        created = client.post("/api/v1/api-keys", headers=account.headers, json={"name": f"k{n}"})
        assert created.status_code == 201, created.text


def test_fields_keeps_only_the_named_fields_and_the_id_of_a_resource(
    client: TestClient, account: Account
) -> None:
    full = client.get("/api/v1/users/me", headers=account.headers).json()
    assert {"id", "username", "email", "created_at"} <= set(full)

    answer = client.get("/api/v1/users/me?fields=username,email", headers=account.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": full["id"], "username": full["username"], "email": full["email"]}
    assert int(answer.headers["content-length"]) == len(answer.content)


def test_fields_trims_each_item_of_a_list_and_keeps_the_envelope(
    client: TestClient, account: Account
) -> None:
    _make_api_keys(client, account, 2)
    page = client.get("/api/v1/api-keys?fields=name&limit=10", headers=account.headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert {key: body[key] for key in ("total", "limit", "offset")} == {
        "total": 2,
        "limit": 10,
        "offset": 0,
    }
    assert [set(item) for item in body["items"]] == [{"id", "name"}] * 2
    assert sorted(item["name"] for item in body["items"]) == ["k0", "k1"]
    # Several `fields` parameters add up.
    both = client.get("/api/v1/api-keys?fields=name&fields=scope", headers=account.headers)
    assert [set(item) for item in both.json()["items"]] == [{"id", "name", "scope"}] * 2


def test_fields_with_an_unknown_name_answers_422_naming_it_even_for_an_empty_list(
    client: TestClient, account: Account
) -> None:
    answer = client.get("/api/v1/users/me?fields=username,nope,secret", headers=account.headers)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "validation_error"
    assert "nope, secret" in body["message"] and "username" not in body["message"].split(";")[0]
    assert body["request_id"] == answer.headers["x-request-id"]

    empty = client.get("/api/v1/datasets?fields=total", headers=account.headers)
    assert empty.status_code == 422, empty.text
    assert "total" in empty.json()["message"]


def test_fields_leaves_errors_and_unselected_answers_alone(
    client: TestClient, account: Account
) -> None:
    missing = client.get(f"/api/v1/datasets/{uuid.uuid4()}?fields=nope", headers=account.headers)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    anonymous = client.get("/api/v1/users/me?fields=nope")
    assert anonymous.status_code == 401
    full = client.get("/api/v1/users/me", headers=account.headers).json()
    assert client.get("/api/v1/users/me?fields=", headers=account.headers).json() == full
    assert client.get("/health?fields=status").json() == {"status": "ok"}


def test_openapi_declares_fields_on_the_get_operations_that_take_it(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def takes_fields(path: str, method: str) -> bool:
        parameters = paths[path][method].get("parameters", [])
        return any(p["name"] == "fields" and p["in"] == "query" for p in parameters)

    for path in ("/api/v1/users/me", "/api/v1/api-keys", "/api/v1/datasets/{dataset_id}"):
        assert takes_fields(path, "get"), path
    assert not takes_fields("/api/v1/api-keys", "post")
    assert not takes_fields("/health", "get")
    assert not takes_fields("/api/v1/datasets/{dataset_id}/download", "get")
    assert not takes_fields("/v2/models/{name}", "get")

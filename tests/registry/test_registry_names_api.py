"""The registry by name: versions, aliases, traffic splits, and predictions served by them."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment
from tests.factories import add_viewer, small_job_body, submit_ok, tiny_dataset, wait_for_job


@pytest.fixture
def two_versions(client: TestClient, account: Account) -> tuple[str, list[dict[str, Any]]]:
    """A model name with versions 1 and 2 (the same data, different seeds)."""
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    dataset = tiny_dataset(client, account)
    ids = []
    for seed in (1, 2):
        body = small_job_body(dataset, epochs=2, name=name)
        body["training"]["seed"] = seed
        ids.append(submit_ok(client, account, body))
    jobs = [wait_for_job(client, account, job_id) for job_id in ids]
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    models = [
        client.get(f"/api/v1/models/{j['model_id']}", headers=account.headers).json() for j in jobs
    ]
    return name, sorted(models, key=lambda m: m["version"])


ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


def _registry(client: TestClient, account: Account, name: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/registry/{name}/versions", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_versions_aliases_and_production_predictions(
    client: TestClient, account: Account, two_versions: tuple[str, list[dict[str, Any]]]
) -> None:
    name, (v1, v2) = two_versions
    assert (v1["version"], v2["version"]) == (1, 2)
    described = _registry(client, account, name)
    assert [v["version"] for v in described["versions"]] == [2, 1]
    assert described["aliases"] == {} and described["traffic"] is None

    unserved = client.post(
        f"/api/v1/registry/{name}/predict", headers=account.headers, json={"inputs": [ROW]}
    )
    assert unserved.status_code == 409 and "production" in unserved.json()["message"]

    url = f"/api/v1/registry/{name}/aliases"
    moved = client.put(f"{url}/production", headers=account.headers, json={"version": 1})
    assert moved.status_code == 200 and moved.json()["version"] == 1
    client.put(f"{url}/staging", headers=account.headers, json={"version": 2})
    assert _registry(client, account, name)["aliases"] == {"production": 1, "staging": 2}

    served = client.post(
        f"/api/v1/registry/{name}/predict", headers=account.headers, json={"inputs": [ROW]}
    )
    assert served.status_code == 200, served.text
    assert served.json()["model_version"] == 1 and served.json()["model_id"] == v1["id"]

    client.put(f"{url}/production", headers=account.headers, json={"version": 2})
    served = client.post(
        f"/api/v1/registry/{name}/predict", headers=account.headers, json={"inputs": [ROW]}
    )
    assert served.json()["model_version"] == 2

    # A version still served by an alias cannot be deleted from under it.
    refused = client.delete(f"/api/v1/models/{v2['id']}", headers=account.headers)
    assert refused.status_code == 409 and "production" in refused.json()["message"]
    assert client.delete(f"{url}/staging", headers=account.headers).status_code == 204
    assert client.delete(f"{url}/staging", headers=account.headers).status_code == 404


def test_traffic_split_shares_predictions_by_weight(
    client: TestClient, account: Account, two_versions: tuple[str, list[dict[str, Any]]]
) -> None:
    name, _ = two_versions
    url = f"/api/v1/registry/{name}/traffic"
    split = client.put(url, headers=account.headers, json={"1": 70, "2": 30})
    assert split.status_code == 200 and split.json()["weights"] == {"1": 70.0, "2": 30.0}
    served = Counter(
        client.post(
            f"/api/v1/registry/{name}/predict", headers=account.headers, json={"inputs": [ROW]}
        ).json()["model_version"]
        for _ in range(200)
    )
    assert set(served) == {1, 2}
    assert 100 <= served[1] <= 180, served  # 140 expected; far outside means no weighting

    only_two = client.put(url, headers=account.headers, json={"1": 0, "2": 1})
    assert only_two.status_code == 200
    versions = {
        client.post(
            f"/api/v1/registry/{name}/predict", headers=account.headers, json={"inputs": [ROW]}
        ).json()["model_version"]
        for _ in range(20)
    }
    assert versions == {2}
    assert client.delete(url, headers=account.headers).status_code == 204
    assert client.get(url, headers=account.headers).status_code == 404


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "versions with weights"),
        ({"one": 1}, "not a version number"),
        ({"1": -1}, ">= 0"),
        ({"1": 0, "2": 0}, "above 0"),
        ({"9": 1}, "version 9"),
    ],
)
def test_bad_traffic_splits_are_refused(
    client: TestClient,
    account: Account,
    two_versions: tuple[str, list[dict[str, Any]]],
    weights: dict[str, float],
    message: str,
) -> None:
    name, _ = two_versions
    response = client.put(f"/api/v1/registry/{name}/traffic", headers=account.headers, json=weights)
    assert response.status_code in {404, 422}, response.text
    assert message in response.json()["message"]


def test_aliases_are_checked_and_tenant_scoped(
    client: TestClient,
    deployment: Deployment,
    account: Account,
    other_account: Account,
    two_versions: tuple[str, list[dict[str, Any]]],
) -> None:
    name, _ = two_versions
    url = f"/api/v1/registry/{name}/aliases"
    assert (
        client.put(f"{url}/production", headers=account.headers, json={"version": 7}).status_code
        == 404
    )
    bad = client.put(f"{url}/-nope", headers=account.headers, json={"version": 1})
    assert bad.status_code == 422
    # Another tenant sees nothing of the name and cannot move its aliases.
    assert (
        client.get(f"/api/v1/registry/{name}/versions", headers=other_account.headers).status_code
        == 404
    )
    stolen = client.put(f"{url}/production", headers=other_account.headers, json={"version": 1})
    assert stolen.status_code == 404

    as_viewer = add_viewer(deployment, account, other_account)
    assert client.get(f"/api/v1/registry/{name}/versions", headers=as_viewer).status_code == 200
    assert (
        client.put(f"{url}/production", headers=as_viewer, json={"version": 1}).status_code == 403
    )
    assert (
        client.put(f"/api/v1/registry/{name}/traffic", headers=as_viewer, json={"1": 1}).status_code
        == 403
    )

"""POST /api/v1/models/{id}/predict under concurrency: batched, yet per request."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dlp.ml.artifact import load_predictor
from dlp.ml.inference import Prediction, Predictor
from tests.conftest import Account, Deployment
from tests.factories import submit_job, table_csv, upload_ok, wait_for_job

COLUMNS = ["size", "colour", "label"]
ROWS = [
    [float(i % 17), "red" if i % 3 else "blue", "big" if i % 17 > 8 else "small"]
    for i in range(120)
]
REQUESTS = 48
THREADS = 16


@pytest.fixture
def model(client: TestClient, account: Account) -> dict[str, Any]:
    dataset = upload_ok(client, account, table_csv(COLUMNS, ROWS), "shapes.csv")
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        training={"epochs": 5},
    ).json()
    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "succeeded", job
    answer: dict[str, Any] = client.get(
        f"/api/v1/models/{job['model_id']}", headers=account.headers
    ).json()
    return answer


@pytest.fixture
def slow_model_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each model call takes 20 ms, so requests pile up behind a running batch."""
    predict = Predictor.predict

    def slow(self: Predictor, inputs: Sequence[Any]) -> Prediction:
        time.sleep(0.02)
        return predict(self, inputs)

    monkeypatch.setattr(Predictor, "predict", slow)


def reference_predictor(deployment: Deployment, model: dict[str, Any]) -> Predictor:
    """The model loaded straight from its files, called without any batching."""
    folder = next(Path(deployment.store_root).rglob(f"models/{model['id']}"))
    return load_predictor({path.name: path.read_bytes() for path in folder.iterdir()})


def inputs_for(i: int) -> list[dict[str, Any]]:
    return [
        {"size": float((i * 7 + j) % 19) - 1.5, "colour": ["red", "blue", None][(i + j) % 3]}
        for j in range(1 + i % 3)
    ]


def batch_requests_observed(client: TestClient) -> dict[float, float]:
    """The batch-size histogram's cumulative buckets from /metrics."""
    metrics = client.get("/metrics").text
    buckets = {}
    for line in metrics.splitlines():
        if line.startswith("dlp_serving_batch_requests_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def test_concurrent_predictions_match_the_unbatched_model(
    client: TestClient,
    deployment: Deployment,
    account: Account,
    model: dict[str, Any],
    slow_model_calls: None,
) -> None:
    url = f"/api/v1/models/{model['id']}/predict"
    before = batch_requests_observed(client)

    def call(i: int) -> Any:
        return client.post(url, headers=account.headers, json={"inputs": inputs_for(i)})

    with ThreadPoolExecutor(THREADS) as pool:
        responses = list(pool.map(call, range(REQUESTS)))

    reference = reference_predictor(deployment, model)
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        expected = reference.predict(inputs_for(i))
        assert body["model_id"] == model["id"] and body["model_version"] == model["version"]
        assert body["classes"] == ["big", "small"]
        assert body["predictions"] == expected.predictions
        assert expected.probabilities is not None
        for got, want in zip(body["probabilities"], expected.probabilities, strict=True):
            assert got == pytest.approx(want, abs=1e-6)
    after = batch_requests_observed(client)
    batches = after[float("inf")] - before.get(float("inf"), 0.0)
    alone = after[1.0] - before.get(1.0, 0.0)
    assert batches < REQUESTS, "no two requests shared a model call"
    assert alone < batches, "every batch held a single request"


def test_a_bad_request_in_a_burst_gets_its_own_422(
    client: TestClient, account: Account, model: dict[str, Any], slow_model_calls: None
) -> None:
    url = f"/api/v1/models/{model['id']}/predict"
    bad_index = 7
    bad_inputs = [{"size": 1.0, "colour": "red"}, {"colour": "blue"}]

    def call(i: int) -> Any:
        inputs = bad_inputs if i == bad_index else inputs_for(i)
        return client.post(url, headers=account.headers, json={"inputs": inputs})

    with ThreadPoolExecutor(THREADS) as pool:
        responses = list(pool.map(call, range(24)))

    for i, response in enumerate(responses):
        if i == bad_index:
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["error"] == "validation_error"
            assert "row 1 is missing column 'size'" in body["message"], body
        else:
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"]) == len(inputs_for(i))


def test_another_tenant_and_unknown_models_are_404(
    client: TestClient, account: Account, other_account: Account, model: dict[str, Any]
) -> None:
    row = {"inputs": [{"size": 1, "colour": "red"}]}
    url = f"/api/v1/models/{model['id']}/predict"
    assert client.post(url, headers=other_account.headers, json=row).status_code == 404
    missing = "/api/v1/models/00000000-0000-0000-0000-000000000000/predict"
    assert client.post(missing, headers=account.headers, json=row).status_code == 404
    assert client.post(url, json=row).status_code == 401
    assert client.post(url, headers=account.headers, json=row).status_code == 200

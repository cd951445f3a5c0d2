"""The Open Inference Protocol v2 on registry names: metadata, readiness, inference, errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import ROWS, Served


def _tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": column,
            "shape": [len(rows), 1],
            "datatype": "FP32",
            "data": [r[column] for r in rows],
        }
        for column in ("a", "b", "c")
    ]


def test_health_needs_no_credentials(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "dlp"


def test_metadata_describes_inputs_and_outputs(
    client: TestClient, account: Account, served: Served
) -> None:
    metadata = client.get(f"/v2/models/{served.name}", headers=account.headers).json()
    assert metadata["name"] == served.name and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [
        {"name": column, "datatype": "FP32", "shape": [-1, 1]} for column in ("a", "b", "c")
    ]
    assert metadata["outputs"] == [
        {"name": "predictions", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert (
        client.get(f"/v2/models/{served.name}/versions/1", headers=account.headers).status_code
        == 200
    )
    ready = client.get(f"/v2/models/{served.name}/ready", headers=account.headers)
    assert ready.json() == {"name": served.name, "ready": True, "version": "1"}


@pytest.mark.parametrize("path", ["infer", "versions/1/infer"])
def test_infer_matches_predict(
    client: TestClient, account: Account, served: Served, path: str
) -> None:
    response = client.post(
        f"/v2/models/{served.name}/{path}",
        headers=account.headers,
        json={"id": "r1", "inputs": _tensors(ROWS)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (served.name, "1", "r1")
    predictions, probabilities = body["outputs"]
    assert predictions == {
        "name": "predictions",
        "shape": [3],
        "datatype": "BYTES",
        "data": [str(label) for label in served.expected["predictions"]],
    }
    assert probabilities["shape"] == [3, 2] and probabilities["datatype"] == "FP32"
    flat = [value for row in served.expected["probabilities"] for value in row]
    assert probabilities["data"] == pytest.approx(flat, abs=1e-6)


def test_infer_returns_only_the_outputs_asked_for(
    client: TestClient, account: Account, served: Served
) -> None:
    body = {"inputs": _tensors(ROWS[:1]), "outputs": [{"name": "probabilities"}]}
    answer = client.post(f"/v2/models/{served.name}/infer", headers=account.headers, json=body)
    assert [o["name"] for o in answer.json()["outputs"]] == ["probabilities"]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda t: t[:2], 422, "input 'c' is missing"),
        (lambda t: [*t, {**t[0], "name": "d"}], 422, "no input named 'd'"),
        (lambda t: [{**t[0], "shape": [5, 1]}, *t[1:]], 422, "holds 5 values"),
        (lambda t: [{**t[0], "datatype": "BYTES", "data": ["x"]}, *t[1:]], 422, "a"),
        (lambda t: [{**t[0], "shape": [1, 1], "data": [1.0]}, *t[1:]], 422, "same number of rows"),
    ],
)
def test_bad_inference_requests_get_a_clear_message(
    client: TestClient, account: Account, served: Served, change: Any, status: int, words: str
) -> None:
    tensors = change(_tensors(ROWS[:2]))
    response = client.post(
        f"/v2/models/{served.name}/infer", headers=account.headers, json={"inputs": tensors}
    )
    assert response.status_code == status, response.text
    # The protocol's own error shape: "error" is the message.
    assert words in response.json()["error"]


def test_unknown_names_and_strangers_are_refused(
    client: TestClient, account: Account, other_account: Account, served: Served
) -> None:
    body = {"inputs": _tensors(ROWS[:1])}
    assert (
        client.post("/v2/models/nope/infer", headers=account.headers, json=body).status_code == 404
    )
    assert client.post(f"/v2/models/{served.name}/infer", json=body).status_code == 401
    stranger = client.post(
        f"/v2/models/{served.name}/infer", headers=other_account.headers, json=body
    )
    assert stranger.status_code == 404
    missing = client.post(
        f"/v2/models/{served.name}/versions/9/infer", headers=account.headers, json=body
    )
    assert missing.status_code == 404

"""Model endpoints: read, list, download, delete, predict, and integrity checks on load."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import load as load_safetensors

from dlp.main import create_app
from tests.conftest import Account, Deployment
from tests.factories import submit_job, table_csv, upload_ok, wait_for_job

COLUMNS = ["size", "colour", "label"]
ROWS = [
    [float(i % 17), "red" if i % 3 else "blue", "big" if i % 17 > 8 else "small"]
    for i in range(120)
]


@pytest.fixture
def model(client: TestClient, account: Account) -> dict:
    dataset = upload_ok(client, account, table_csv(COLUMNS, ROWS), "shapes.csv")
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        training={"epochs": 20},
    ).json()
    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "succeeded", job
    return client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()


def test_model_describes_its_inputs_and_classes(model: dict) -> None:
    assert model["classes"] == ["big", "small"]
    assert [c["name"] for c in model["input_schema"]] == ["size", "colour"]
    assert model["type"] == "mlp" and model["dlp_version"]
    assert {"val_accuracy", "val_f1", "val_loss"} <= set(model["metrics"])


def test_predict_returns_labels_and_probabilities(
    client: TestClient, account: Account, model: dict
) -> None:
    response = client.post(
        f"/api/v1/models/{model['id']}/predict",
        headers=account.headers,
        json={"inputs": [{"size": 16, "colour": "red"}, {"size": 1, "colour": None, "extra": 5}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == ["big", "small"]
    assert len(body["probabilities"]) == 2 and all(len(p) == 2 for p in body["probabilities"])
    assert body["classes"] == ["big", "small"]


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ([{"colour": "red"}], "row 0 is missing column 'size'"),
        ([{"size": 1, "colour": "red"}, {"size": "huge", "colour": "red"}], "row 1"),
        (["just text"], "inputs[0]"),
        ([], "inputs"),
        ([{"size": 1, "colour": "red"}] * 1001, "1000"),
    ],
)
def test_predict_refuses_bad_rows(
    client: TestClient, account: Account, model: dict, inputs: list, words: str
) -> None:
    response = client.post(
        f"/api/v1/models/{model['id']}/predict", headers=account.headers, json={"inputs": inputs}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert words in response.json()["message"], response.json()


def test_download_is_safetensors(client: TestClient, account: Account, model: dict) -> None:
    response = client.get(f"/api/v1/models/{model['id']}/download", headers=account.headers)
    assert response.status_code == 200
    tensors = load_safetensors(response.content)
    assert tensors and all(t.size for t in tensors.values())
    url = f"/api/v1/models/{model['id']}/download"
    onnx_file = client.get(url, headers=account.headers, params={"format": "onnx"})
    assert onnx_file.status_code == 200, onnx_file.text
    assert onnx.load_from_string(onnx_file.content).graph.input[0].name == "inputs"
    assert onnx_file.headers["content-disposition"].endswith('.onnx"')
    script = client.get(url, headers=account.headers, params={"format": "torchscript"})
    assert script.status_code == 200 and script.content[:2] == b"PK"
    assert (
        client.get(
            f"/api/v1/models/{model['id']}/download",
            headers=account.headers,
            params={"format": "pickle"},
        ).status_code
        == 422
    )


def test_tampered_weights_are_refused(
    client: TestClient, deployment: Deployment, account: Account, model: dict
) -> None:
    weights = next(Path(deployment.store_root).rglob(f"{model['id']}/model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as fresh:
        response = fresh.post(
            f"/api/v1/models/{model['id']}/predict",
            headers=account.headers,
            json={"inputs": [{"size": 1, "colour": "red"}]},
        )
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and "sha256" in body["message"]


def test_delete_model_removes_files_and_cache(
    client: TestClient,
    deployment: Deployment,
    account: Account,
    other_account: Account,
    model: dict,
) -> None:
    path = f"/api/v1/models/{model['id']}"
    row = {"inputs": [{"size": 1, "colour": "red"}]}
    assert client.post(f"{path}/predict", headers=account.headers, json=row).status_code == 200
    assert client.delete(path, headers=other_account.headers).status_code == 404
    assert client.get(f"{path}/download", headers=other_account.headers).status_code == 404
    assert client.delete(path, headers=account.headers).status_code == 204
    assert client.get(path, headers=account.headers).status_code == 404
    assert client.post(f"{path}/predict", headers=account.headers, json=row).status_code == 404
    assert not list(Path(deployment.store_root).rglob(f"{model['id']}/*"))
    job = client.get(f"/api/v1/training/jobs/{model['job_id']}", headers=account.headers).json()
    assert job["model_id"] == model["id"]

"""Per-version int8 quantization: its report, its file's digest, and serving it."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dlp.db import create_db_engine, create_session_factory, session_scope
from dlp.registry.models import Model
from tests.conftest import Account, Deployment, register_account
from tests.factories import (
    add_viewer,
    breast_cancer,
    rows_as_inputs,
    small_job_body,
    submit_ok,
    table_csv,
    tiny_dataset,
    upload_ok,
    wait_for_job,
)
from tests.images import as_base64, digits_archive

INT8_FILE = "model.int8.onnx"


def train(client: TestClient, account: Account, dataset_id: str, **body: Any) -> dict[str, Any]:
    """Train a model on ``dataset_id`` and return its JSON."""
    job = wait_for_job(
        client, account, submit_ok(client, account, {"dataset_id": dataset_id, **body})
    )
    assert job["status"] == "succeeded", job
    return client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()


def train_tiny(client: TestClient, account: Account) -> dict[str, Any]:
    """A one-layer MLP on ``tiny_dataset``."""
    return train(client, account, **small_job_body(tiny_dataset(client, account)))


def quantize(client: TestClient, account: Account, model_id: str) -> Any:
    return client.post(f"/api/v1/models/{model_id}/quantize", headers=account.headers)


def serve(client: TestClient, headers: dict[str, str], model_id: str, variant: str) -> Any:
    return client.put(
        f"/api/v1/models/{model_id}/serving", headers=headers, json={"variant": variant}
    )


def predict(client: TestClient, account: Account, model_id: str, inputs: list[Any]) -> Any:
    response = client.post(
        f"/api/v1/models/{model_id}/predict", headers=account.headers, json={"inputs": inputs}
    )
    assert response.status_code == 200, response.text
    return response.json()


def stored_row(deployment: Deployment, model_id: str) -> tuple[dict[str, Any], str]:
    """The model's recorded files and store folder, read from the database."""
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            model = session.get(Model, uuid.UUID(model_id))
            assert model is not None
            return dict(model.files), model.file_prefix
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def owner(client: TestClient) -> Account:
    return register_account(client)


@pytest.fixture(scope="module")
def cancer(client: TestClient, owner: Account) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A breast-cancer classifier and held-out inputs."""
    columns, train_rows, test_rows = breast_cancer()
    dataset = upload_ok(client, owner, table_csv(columns, train_rows), "cancer.csv")
    model = train(
        client,
        owner,
        dataset["id"],
        task="classification",
        target="target",
        model={"type": "mlp", "hidden_sizes": [64, 32]},
        training={"epochs": 8, "early_stopping_patience": 0},
    )
    return model, rows_as_inputs(columns, test_rows)


def test_quantize_reports_the_accuracy_change_and_records_the_int8_file(
    client: TestClient,
    deployment: Deployment,
    owner: Account,
    cancer: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    model, _ = cancer
    response = quantize(client, owner, model["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    report = body["quantization"]
    assert report["mode"] == "int8" and report["metric"] == "val_accuracy"
    # "before" re-scores the trained network on its own validation split.
    assert report["before"] == pytest.approx(model["metrics"]["val_accuracy"], abs=1e-9)
    assert 0.0 <= report["after"] <= 1.0
    assert report["change"] == pytest.approx(report["after"] - report["before"])
    assert abs(report["change"]) <= 0.1
    assert report["validation_rows"] == round(455 * 0.2)
    assert 0 < report["size_bytes_int8"] < report["size_bytes_fp32"]
    assert body["serving_variant"] == "fp32"
    assert client.get(f"/api/v1/models/{model['id']}", headers=owner.headers).json() == body

    files, prefix = stored_row(deployment, model["id"])
    data = (deployment.store_root / prefix / INT8_FILE).read_bytes()
    assert files[INT8_FILE] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert len(data) == report["size_bytes_int8"]

    again = quantize(client, owner, model["id"]).json()["quantization"]
    assert again["created_at"] >= report["created_at"]
    assert stored_row(deployment, model["id"])[0].keys() == files.keys()


def test_serving_switches_to_int8_and_back(
    client: TestClient, owner: Account, cancer: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    model, inputs = cancer
    fp32 = predict(client, owner, model["id"], inputs)
    assert quantize(client, owner, model["id"]).status_code == 200

    switched = serve(client, owner.headers, model["id"], "int8")
    assert switched.status_code == 200, switched.text
    assert switched.json()["serving_variant"] == "int8"
    int8 = predict(client, owner, model["id"], inputs)
    assert int8["model_id"] == model["id"] and int8["model_version"] == model["version"]
    same = sum(a == b for a, b in zip(int8["predictions"], fp32["predictions"], strict=True))
    assert same >= 0.95 * len(inputs)
    assert int8["probabilities"] != fp32["probabilities"]

    assert serve(client, owner.headers, model["id"], "fp32").json()["serving_variant"] == "fp32"
    assert predict(client, owner, model["id"], inputs) == fp32


def test_int8_cannot_be_served_before_quantizing(client: TestClient, account: Account) -> None:
    model = train_tiny(client, account)
    assert model["quantization"] is None and model["serving_variant"] == "fp32"
    response = serve(client, account.headers, model["id"], "int8")
    assert response.status_code == 409
    assert "quantize" in response.json()["message"]
    assert serve(client, account.headers, model["id"], "fp16").status_code == 422


def test_viewers_other_organizations_and_unknown_ids_are_refused(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    model = train_tiny(client, account)
    viewer = add_viewer(deployment, account, register_account(client))
    assert client.post(f"/api/v1/models/{model['id']}/quantize", headers=viewer).status_code == 403
    assert serve(client, viewer, model["id"], "fp32").status_code == 403
    assert quantize(client, other_account, model["id"]).status_code == 404
    assert serve(client, other_account.headers, model["id"], "fp32").status_code == 404
    assert quantize(client, account, str(uuid.uuid4())).status_code == 404


def test_a_deleted_dataset_leaves_nothing_to_measure_on(
    client: TestClient, account: Account
) -> None:
    model = train_tiny(client, account)
    deleted = client.delete(f"/api/v1/datasets/{model['dataset_id']}", headers=account.headers)
    assert deleted.status_code == 204, deleted.text
    response = quantize(client, account, model["id"])
    assert response.status_code == 409
    assert "dataset" in response.json()["message"]


def test_a_tampered_int8_file_is_refused_on_load(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    model = train_tiny(client, account)
    assert quantize(client, account, model["id"]).status_code == 200
    _, prefix = stored_row(deployment, model["id"])
    graph = Path(deployment.store_root / prefix / INT8_FILE)
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    assert serve(client, account.headers, model["id"], "int8").status_code == 200
    response = client.post(
        f"/api/v1/models/{model['id']}/predict",
        headers=account.headers,
        json={"inputs": [{"a": 0.5, "b": -1.0, "c": 2.0}]},
    )
    assert response.status_code == 500
    assert INT8_FILE in response.json()["message"] and "sha256" in response.json()["message"]


def test_image_models_quantize_on_their_archive_and_serve_int8(
    client: TestClient, owner: Account
) -> None:
    digits = digits_archive()
    dataset = upload_ok(client, owner, digits.train_zip, "digits.zip")
    model = train(
        client,
        owner,
        dataset["id"],
        task="classification",
        model={"type": "cnn", "input_size": 8, "channels": [8]},
        training={"epochs": 3, "early_stopping_patience": 0},
    )
    response = quantize(client, owner, model["id"])
    assert response.status_code == 200, response.text
    report = response.json()["quantization"]
    assert report["metric"] == "val_accuracy"
    assert report["before"] == pytest.approx(model["metrics"]["val_accuracy"], abs=1e-9)
    assert abs(report["change"]) <= 0.05
    images = [as_base64(png) for png in digits.test_pngs[:50]]
    fp32 = predict(client, owner, model["id"], images)
    assert serve(client, owner.headers, model["id"], "int8").status_code == 200
    int8 = predict(client, owner, model["id"], images)
    same = sum(a == b for a, b in zip(int8["predictions"], fp32["predictions"], strict=True))
    assert same >= 0.9 * len(images)

"""Training jobs through HTTP with a real worker process: real data, real models, real errors."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment
from tests.factories import (
    breast_cancer,
    diabetes,
    rows_as_inputs,
    submit_job,
    table_csv,
    upload_ok,
    wait_for_job,
)

FAST = {"epochs": 3, "batch_size": 32}


def _small_dataset(client: TestClient, account: Account) -> dict:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    rows = [
        [*map(float, row), int(label), "red" if label else "blue"]
        for row, label in zip(x, y, strict=True)
    ]
    return upload_ok(
        client, account, table_csv(["a", "b", "c", "label", "colour"], rows), "small.csv"
    )


def test_breast_cancer_classifier_end_to_end(client: TestClient, account: Account) -> None:
    columns, train, test = breast_cancer()
    dataset = upload_ok(client, account, table_csv(columns, train), "breast_cancer.csv")
    response = submit_job(
        client, account, dataset_id=dataset["id"], task="classification", target="target"
    )
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued" and queued["dataset_id"] == dataset["id"]
    assert queued["config"]["training"]["epochs"] == 100

    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "succeeded", job
    assert job["started_at"] and job["completed_at"] and job["error_message"] is None
    assert job["progress"]["epoch"] >= 1
    assert {"val_loss", "val_accuracy", "val_f1"} <= set(job["metrics"])

    metrics = client.get(
        f"/api/v1/training/jobs/{job['id']}/metrics", headers=account.headers
    ).json()["items"]
    names = {m["name"] for m in metrics}
    assert {"train_loss", "val_loss", "val_accuracy", "val_f1"} <= names
    assert len([m for m in metrics if m["name"] == "train_loss"]) == job["progress"]["epoch"]

    model = client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()
    assert model["name"] == "breast_cancer-target" and model["version"] == 1
    assert model["task"] == "classification" and model["classes"] == [0, 1]
    assert model["job_id"] == job["id"] and model["dataset_id"] == dataset["id"]

    answer = client.post(
        f"/api/v1/models/{model['id']}/predict",
        headers=account.headers,
        json={"inputs": rows_as_inputs(columns, test)},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_id"] == model["id"] and body["model_version"] == 1
    truth = [row[-1] for row in test]
    accuracy = float(np.mean(np.array(body["predictions"]) == np.array(truth)))
    print(f"breast cancer held-out accuracy: {accuracy:.4f} on {len(test)} rows")
    assert accuracy >= 0.95
    probabilities = np.array(body["probabilities"])
    assert probabilities.shape == (len(test), 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_diabetes_regression_end_to_end(client: TestClient, account: Account) -> None:
    columns, train, test = diabetes()
    dataset = upload_ok(client, account, table_csv(columns, train), "diabetes.csv")
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="regression",
        target="target",
        name="diabetes",
    ).json()
    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "succeeded", job
    assert {"val_rmse", "val_mae", "val_r2"} <= set(job["metrics"])
    body = client.post(
        f"/api/v1/models/{job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": rows_as_inputs(columns, test)},
    ).json()
    predicted = np.array(body["predictions"], dtype=float)
    truth = np.array([row[-1] for row in test], dtype=float)
    r2 = 1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2)
    print(f"diabetes held-out R^2: {r2:.4f} on {len(test)} rows")
    assert r2 >= 0.35
    assert "probabilities" not in body or body["probabilities"] is None


def test_second_job_of_a_name_is_version_two(client: TestClient, account: Account) -> None:
    dataset = _small_dataset(client, account)
    ids = []
    for _ in range(2):
        queued = submit_job(
            client,
            account,
            dataset_id=dataset["id"],
            task="classification",
            target="label",
            name="small",
            training=FAST,
        ).json()
        ids.append(wait_for_job(client, account, queued["id"])["model_id"])
    versions = [
        client.get(f"/api/v1/models/{i}", headers=account.headers).json()["version"] for i in ids
    ]
    assert versions == [1, 2]
    listing = client.get("/api/v1/models", headers=account.headers).json()
    assert listing["total"] == 2


def test_bad_job_requests_are_refused(
    client: TestClient, account: Account, other_account: Account
) -> None:
    dataset = _small_dataset(client, account)
    cases = [
        ({"target": "nope", "task": "classification"}, 422, "'nope'"),
        ({"target": "colour", "task": "regression"}, 422, "numeric"),
        ({"target": "label", "task": "clustering"}, 422, "task"),
        (
            {
                "target": "label",
                "task": "classification",
                "model": {"type": "mlp", "hidden_sizes": []},
            },
            422,
            "hidden_sizes",
        ),
        ({"target": "label", "task": "classification", "training": {"epochs": 0}}, 422, "epochs"),
        (
            {"target": "label", "task": "classification", "training": {"learning_rate": -1}},
            422,
            "learning_rate",
        ),
        (
            {"target": "label", "task": "classification", "training": {"optimizer": "lion"}},
            422,
            "optimizer",
        ),
        ({"target": "label", "task": "classification", "unknown_field": 1}, 422, "unknown_field"),
        (
            {"target": "label", "task": "classification", "resources": {"devices": 65}},
            422,
            "devices",
        ),
        # The session's live worker reports its devices: none has 64 GPUs for one job.
        (
            {
                "target": "label",
                "task": "classification",
                "resources": {"devices": 64, "device_type": "cuda"},
            },
            422,
            "resources.devices=64 (cuda): no live worker has 64 cuda devices; the largest has",
        ),
    ]
    for extra, status, words in cases:
        response = submit_job(client, account, dataset_id=dataset["id"], **extra)
        assert response.status_code == status, (extra, response.text)
        assert words in response.json()["message"], (extra, response.json())
    foreign = submit_job(
        client, other_account, dataset_id=dataset["id"], task="classification", target="label"
    )
    assert foreign.status_code == 404 and foreign.json()["error"] == "not_found"
    assert client.get("/api/v1/training/jobs", headers=account.headers).json()["total"] == 0
    assert client.get("/api/v1/training/jobs", headers=other_account.headers).json()["total"] == 0


def test_job_tenancy_listing_and_filters(
    client: TestClient, account: Account, other_account: Account
) -> None:
    dataset = _small_dataset(client, account)
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        training=FAST,
    ).json()
    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "succeeded"
    for path in (
        f"/api/v1/training/jobs/{job['id']}",
        f"/api/v1/training/jobs/{job['id']}/metrics",
        f"/api/v1/models/{job['model_id']}",
    ):
        assert client.get(path, headers=other_account.headers).status_code == 404, path
    assert (
        client.post(
            f"/api/v1/training/jobs/{job['id']}/cancel", headers=other_account.headers
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/models/{job['model_id']}/predict",
            headers=other_account.headers,
            json={"inputs": [{}]},
        ).status_code
        == 404
    )
    succeeded = client.get(
        "/api/v1/training/jobs", headers=account.headers, params={"status": "succeeded"}
    ).json()
    assert [item["id"] for item in succeeded["items"]] == [job["id"]]
    failed = client.get(
        "/api/v1/training/jobs", headers=account.headers, params={"status": "failed"}
    ).json()
    assert failed["total"] == 0
    assert (
        client.get(
            "/api/v1/training/jobs", headers=account.headers, params={"status": "bogus"}
        ).status_code
        == 422
    )
    # A finished job cannot be cancelled, and a dataset in use by no job can be deleted.
    assert (
        client.post(
            f"/api/v1/training/jobs/{job['id']}/cancel", headers=account.headers
        ).status_code
        == 409
    )
    assert (
        client.delete(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).status_code
        == 204
    )
    assert (
        client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()[
            "dataset_id"
        ]
        is None
    )


def test_cancel_running_job_keeps_its_metrics(client: TestClient, account: Account) -> None:
    dataset = _small_dataset(client, account)
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        training={"epochs": 5000, "batch_size": 8, "early_stopping_patience": 0},
    ).json()
    deadline_job = wait_for_job(
        client, account, queued["id"], until={"running", "succeeded", "failed"}
    )
    assert deadline_job["status"] == "running", deadline_job
    # Let it report at least one epoch, then cancel.
    for _ in range(100):
        if client.get(
            f"/api/v1/training/jobs/{queued['id']}/metrics", headers=account.headers
        ).json()["items"]:
            break
        import time

        time.sleep(0.1)
    assert (
        client.delete(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).status_code
        == 409
    )
    response = client.post(f"/api/v1/training/jobs/{queued['id']}/cancel", headers=account.headers)
    assert response.status_code == 202
    job = wait_for_job(client, account, queued["id"], timeout=60)
    assert job["status"] == "cancelled", job
    assert job["model_id"] is None
    assert client.get(
        f"/api/v1/training/jobs/{queued['id']}/metrics", headers=account.headers
    ).json()["items"]


def test_training_failure_is_reported_in_one_line(client: TestClient, account: Account) -> None:
    rows = [[float(i), 1 if i % 2 else 0] for i in range(5)]
    dataset = upload_ok(client, account, table_csv(["x", "y"], rows), "tiny.csv")
    queued = submit_job(
        client, account, dataset_id=dataset["id"], task="classification", target="y"
    ).json()
    job = wait_for_job(client, account, queued["id"])
    assert job["status"] == "failed"
    assert job["error_message"] and "\n" not in job["error_message"]
    assert "Traceback" not in job["error_message"]
    assert "rows" in job["error_message"]
    failed = client.get(
        "/api/v1/training/jobs", headers=account.headers, params={"status": "failed"}
    ).json()
    assert [item["id"] for item in failed["items"]] == [job["id"]]
    assert client.get("/api/v1/models", headers=account.headers).json()["total"] == 0


def test_worker_log_has_no_errors(deployment: Deployment) -> None:
    log = deployment.worker_log.read_text()
    assert "Traceback" not in log, log[-3000:]

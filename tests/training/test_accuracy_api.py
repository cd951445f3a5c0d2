"""Accuracy floors end to end through HTTP, with a real worker (issue: training engine)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits, load_wine
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tests.conftest import Account
from tests.factories import (
    rows_as_inputs,
    split_sklearn,
    submit_job,
    table_csv,
    upload,
    upload_ok,
    wait_for_job,
)
from tests.images import as_base64, digits_archive, encode_image, zip_bytes

REVIEWS = Path(__file__).parents[1] / "data" / "rotten_tomatoes_snippets.csv.gz"
TEXT_TRAINING = {
    "epochs": 40,
    "batch_size": 256,
    "learning_rate": 0.01,
    "early_stopping_patience": 3,
    "validation_fraction": 0.1,
}


def _held_out_accuracy(
    client: TestClient, account: Account, loader, model: dict, name: str
) -> float:
    columns, train, test = split_sklearn(loader)
    dataset = upload_ok(client, account, table_csv(columns, train), f"{name}.csv")
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="target",
        model=model,
    )
    assert queued.status_code == 202, queued.text
    job = wait_for_job(client, account, queued.json()["id"])
    assert job["status"] == "succeeded", job
    answer = client.post(
        f"/api/v1/models/{job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": rows_as_inputs(columns, test)},
    )
    assert answer.status_code == 200, answer.text
    truth = np.array([row[-1] for row in test])
    accuracy = float(np.mean(np.array(answer.json()["predictions"]) == truth))
    print(f"{name} held-out accuracy: {accuracy:.4f} on {len(test)} rows")
    return accuracy


def test_digits_csv_with_mlp(client: TestClient, account: Account) -> None:
    assert _held_out_accuracy(client, account, load_digits, {"type": "mlp"}, "digits") >= 0.96


def test_wine_with_auto(client: TestClient, account: Account) -> None:
    assert _held_out_accuracy(client, account, load_wine, {"type": "auto"}, "wine") >= 0.94


def test_digits_zip_with_cnn(client: TestClient, account: Account) -> None:
    digits = digits_archive()
    response = upload(client, account, digits.train_zip, "digits.zip")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["kind"] == "image" and dataset["format"] == "zip"
    assert dataset["schema"]["classes"] == [str(d) for d in range(10)]
    assert dataset["n_rows"] == dataset["schema"]["n_images"] == 1437
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        model={"type": "cnn", "input_size": 8},
        training={"epochs": 12, "batch_size": 32, "learning_rate": 0.003},
    )
    assert queued.status_code == 202, queued.text
    job = wait_for_job(client, account, queued.json()["id"])
    assert job["status"] == "succeeded", job
    model = client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()
    assert model["data_kind"] == "image" and model["type"] == "cnn"
    assert len(model["evaluation"]["confusion_matrix"]) == 10
    answer = client.post(
        f"/api/v1/models/{job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": [as_base64(png) for png in digits.test_pngs]},
    )
    assert answer.status_code == 200, answer.text
    accuracy = float(
        np.mean(np.array(answer.json()["predictions"]) == np.array(digits.test_labels))
    )
    print(f"digits zip (cnn) held-out accuracy: {accuracy:.4f} on {len(digits.test_labels)} images")
    assert accuracy >= 0.97
    bad = client.post(
        f"/api/v1/models/{job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": [as_base64(digits.test_pngs[0]), "not an image"]},
    )
    assert bad.status_code == 422 and "inputs[1]" in bad.json()["message"]


def test_image_jobs_are_validated(client: TestClient, account: Account) -> None:
    dataset = upload_ok(client, account, digits_archive().train_zip, "digits.zip")
    for extra, words in [
        ({"task": "regression"}, "classification"),
        ({"task": "classification", "target": "label"}, "folders"),
        ({"task": "classification", "model": {"type": "mlp"}}, "does not fit"),
    ]:
        response = submit_job(client, account, dataset_id=dataset["id"], **extra)
        assert response.status_code == 422, (extra, response.text)
        assert words in response.json()["message"], response.json()


def test_hostile_archive_is_refused_and_leaves_nothing(
    client: TestClient, account: Account
) -> None:
    evil = zip_bytes({"cats/a.png": encode_image(np.zeros((4, 4), np.uint8)), "../evil.png": b"x"})
    response = upload(client, account, evil, "evil.zip")
    assert response.status_code == 422, response.text
    assert client.get("/api/v1/datasets", headers=account.headers).json()["total"] == 0


def test_text_reviews_beat_tfidf_logistic_regression(client: TestClient, account: Account) -> None:
    table = pa_csv.read_csv(REVIEWS)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    train, test = train_test_split(
        np.arange(table.num_rows), test_size=0.2, random_state=0, stratify=labels
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(table.take(pa.array(train)), buffer)
    response = upload(client, account, buffer.getvalue(), "reviews.csv", kind="text")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["kind"] == "text"
    queued = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        text_column="text",
        model={"type": "text"},
        training=TEXT_TRAINING,
    )
    assert queued.status_code == 202, queued.text
    job = wait_for_job(client, account, queued.json()["id"])
    assert job["status"] == "succeeded", job
    texts = table.column("text").to_pylist()
    test_texts = [texts[i] for i in test]
    predicted: list[object] = []
    for start in range(0, len(test_texts), 1000):  # the contract's limit per call
        answer = client.post(
            f"/api/v1/models/{job['model_id']}/predict",
            headers=account.headers,
            json={"inputs": test_texts[start : start + 1000]},
        )
        assert answer.status_code == 200, answer.text
        predicted += answer.json()["predictions"]
    accuracy = float(np.mean(np.array(predicted, dtype=object) == labels[test]))
    vectorizer = TfidfVectorizer()
    baseline = LogisticRegression(max_iter=1000).fit(
        vectorizer.fit_transform([texts[i] for i in train]), labels[train]
    )
    expected = baseline.predict(vectorizer.transform(test_texts))
    baseline_accuracy = float(np.mean(expected == labels[test]))
    print(f"reviews held-out accuracy: dlp {accuracy:.4f}, tf-idf {baseline_accuracy:.4f}")
    assert accuracy >= baseline_accuracy
    assert (
        submit_job(
            client, account, dataset_id=dataset["id"], task="classification", target="label"
        ).status_code
        == 422
    )

"""Batch predictions through HTTP with the session's real worker process: a whole
dataset through a model in chunks, as CSV or Parquet, equal to online predictions."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment
from tests.factories import (
    add_viewer,
    submit_ok,
    table_csv,
    upload_ok,
    wait_for_job,
)
from tests.images import as_base64, digit_pixels, encode_image, zip_bytes

ROWS_MANY = 25_000  # three chunks of the default 10,000 rows


def submit_batch(client: TestClient, headers: dict[str, str], model_id: str, **body: Any) -> Any:
    """POST a batch prediction of ``model_id`` and return the response."""
    return client.post(f"/api/v1/models/{model_id}/batch-predictions", headers=headers, json=body)


def wait_for_batch(client: TestClient, account: Account, job_id: str) -> dict[str, Any]:
    """Poll a batch prediction until it ends."""
    return wait_for_job(client, account, job_id, collection="/api/v1/batch-predictions")


def download(client: TestClient, account: Account, job: dict[str, Any]) -> pa.Table:
    """The job's output file, parsed."""
    response = client.get(job["output"]["download_url"], headers=account.headers)
    assert response.status_code == 200, response.text
    assert len(response.content) == job["output"]["size_bytes"]
    if job["format"] == "csv":
        assert response.headers["content-type"].startswith("text/csv")
        return pa_csv.read_csv(io.BytesIO(response.content))
    return pq.read_table(io.BytesIO(response.content))


def _features(n_rows: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_rows, 3))


def _online(client: TestClient, account: Account, model_id: str, x: np.ndarray) -> dict[str, Any]:
    predictions: list[Any] = []
    probabilities: list[list[float]] = []
    for start in range(0, len(x), 1000):
        rows = [{"a": a, "b": b, "c": c} for a, b, c in x[start : start + 1000].tolist()]
        answer = client.post(
            f"/api/v1/models/{model_id}/predict", headers=account.headers, json={"inputs": rows}
        )
        assert answer.status_code == 200, answer.text
        predictions += answer.json()["predictions"]
        probabilities += answer.json()["probabilities"]
    return {"predictions": predictions, "probabilities": np.array(probabilities)}


def test_csv_batch_equals_online_predictions(client: TestClient, account: Account, served) -> None:
    x = _features(ROWS_MANY)
    rows = [[*row, f"id-{i}"] for i, row in enumerate(x.tolist())]
    dataset = upload_ok(client, account, table_csv(["a", "b", "c", "key"], rows), "many.csv")
    model_id = served.model["id"]

    response = submit_batch(client, account.headers, model_id, dataset_id=dataset["id"])
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued" and queued["output"] is None
    assert queued["model_name"] == served.name and queued["model_version"] == 1
    assert queued["progress"] == {"rows_done": 0, "rows_total": ROWS_MANY}

    job = wait_for_batch(client, account, queued["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"rows_done": ROWS_MANY, "rows_total": ROWS_MANY}
    assert job["output"]["rows"] == ROWS_MANY and job["attempts"] == 1
    table = download(client, account, job)
    assert table.column_names == ["row", "prediction", "probability_0", "probability_1"]
    assert table.column("row").to_pylist() == list(range(ROWS_MANY))

    online = _online(client, account, model_id, x)
    assert table.column("prediction").to_pylist() == online["predictions"]
    batch_probabilities = np.stack(
        [table.column("probability_0").to_numpy(), table.column("probability_1").to_numpy()],
        axis=1,
    )
    assert np.allclose(batch_probabilities, online["probabilities"], atol=1e-5)

    listed = client.get(
        f"/api/v1/batch-predictions?model_id={model_id}&status=succeeded", headers=account.headers
    ).json()
    assert [item["id"] for item in listed["items"]] == [job["id"]]


def test_parquet_batch_keeps_inputs_and_csv_defuses_formulas(
    client: TestClient, account: Account, served
) -> None:
    x = _features(300, seed=3)
    notes = ['=HYPERLINK("http://evil")', "+1+1", "@SUM(A1)", "-2", "plain", "", "x=1"]
    rows = [[*row, notes[i % len(notes)], i % 2] for i, row in enumerate(x.tolist())]
    # An input column named like an output column keeps its name; the output moves aside.
    content = table_csv(["a", "b", "c", "note", "prediction"], rows)
    dataset = upload_ok(client, account, content, "notes.csv")
    model_id = served.model["id"]

    parquet_id = submit_batch(
        client,
        account.headers,
        model_id,
        dataset_id=dataset["id"],
        format="parquet",
        include_inputs=True,
    ).json()["id"]
    csv_id = submit_batch(
        client, account.headers, model_id, dataset_id=dataset["id"], include_inputs=True
    ).json()["id"]

    parquet_job = wait_for_batch(client, account, parquet_id)
    assert parquet_job["status"] == "succeeded", parquet_job
    table = download(client, account, parquet_job)
    assert table.column_names == [
        "row",
        "a",
        "b",
        "c",
        "note",
        "prediction",
        "prediction_",
        "probability_0",
        "probability_1",
    ]
    assert np.allclose(table.column("a").to_numpy(), x[:, 0])
    assert table.column("note").to_pylist()[: len(notes)] == notes
    online = _online(client, account, model_id, x)
    assert table.column("prediction_").to_pylist() == online["predictions"]

    csv_job = wait_for_batch(client, account, csv_id)
    text = client.get(csv_job["output"]["download_url"], headers=account.headers).text
    lines = text.splitlines()
    assert (
        lines[0] == '"row","a","b","c","note","prediction","prediction_",'
        '"probability_0","probability_1"'
    )
    cells = [line.split(",")[4] for line in lines[1 : 1 + 5]]
    assert cells == [
        '"\'=HYPERLINK(""http://evil"")"',
        '"\'+1+1"',
        '"\'@SUM(A1)"',
        '"\'-2"',
        '"plain"',
    ]


def test_text_and_image_models_predict_whole_datasets(client: TestClient, account: Account) -> None:
    rng = np.random.default_rng(0)
    good, bad = ["great", "fun", "lovely", "superb"], ["awful", "boring", "dull", "bad"]
    texts, labels = [], []
    for i in range(240):
        positive = i % 2 == 0
        words = [*rng.choice(good if positive else bad, size=3).tolist(), "film"]
        texts.append(" ".join(words))
        labels.append("pos" if positive else "neg")
    reviews = upload_ok(
        client,
        account,
        table_csv(["review", "label"], [list(r) for r in zip(texts, labels, strict=True)]),
        "reviews.csv",
        kind="text",
    )
    text_job = wait_for_job(
        client,
        account,
        submit_ok(
            client,
            account,
            {
                "dataset_id": reviews["id"],
                "task": "classification",
                "target": "label",
                "text_column": "review",
                "model": {"type": "text"},
                "training": {"epochs": 3, "batch_size": 32, "early_stopping_patience": 0},
            },
        ),
    )
    assert text_job["status"] == "succeeded", text_job

    pixels, digits = digit_pixels()
    chosen = np.flatnonzero(digits < 2)[:60]
    archive = zip_bytes({f"{digits[i]}/{i:04d}.png": encode_image(pixels[i]) for i in chosen})
    images = upload_ok(client, account, archive, "digits.zip")
    image_job = wait_for_job(
        client,
        account,
        submit_ok(
            client,
            account,
            {
                "dataset_id": images["id"],
                "task": "classification",
                "model": {"type": "cnn"},
                "training": {"epochs": 2, "batch_size": 16, "early_stopping_patience": 0},
            },
        ),
    )
    assert image_job["status"] == "succeeded", image_job

    text_batch = submit_batch(
        client, account.headers, text_job["model_id"], dataset_id=reviews["id"]
    ).json()
    image_batch = submit_batch(
        client,
        account.headers,
        image_job["model_id"],
        dataset_id=images["id"],
        include_inputs=True,
        format="parquet",
    ).json()

    finished = wait_for_batch(client, account, text_batch["id"])
    assert finished["status"] == "succeeded", finished
    table = download(client, account, finished)
    online = client.post(
        f"/api/v1/models/{text_job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": texts},
    ).json()
    assert table.column("prediction").to_pylist() == online["predictions"]
    assert table.column_names == ["row", "prediction", "probability_neg", "probability_pos"]

    finished = wait_for_batch(client, account, image_batch["id"])
    assert finished["status"] == "succeeded", finished
    table = download(client, account, finished)
    assert table.column_names[:3] == ["row", "path", "folder"]
    assert table.num_rows == len(chosen)
    assert table.column("path").to_pylist() == [f"{digits[i]}/{i:04d}.png" for i in chosen]
    online = client.post(
        f"/api/v1/models/{image_job['model_id']}/predict",
        headers=account.headers,
        json={"inputs": [as_base64(encode_image(pixels[i])) for i in chosen]},
    ).json()
    assert table.column("prediction").to_pylist() == online["predictions"]
    assert np.allclose(
        np.stack([table.column(f"probability_{d}").to_numpy() for d in (0, 1)], axis=1),
        online["probabilities"],
        atol=1e-5,
    )


def test_bad_batch_requests_are_refused_with_the_contract_errors(
    client: TestClient,
    account: Account,
    other_account: Account,
    deployment: Deployment,
    served,
) -> None:
    model_id = served.model["id"]
    x = _features(50)
    good = upload_ok(client, account, table_csv(["a", "b", "c"], x.tolist()), "good.csv")
    lacking = upload_ok(client, account, table_csv(["a", "b"], x[:, :2].tolist()), "ab.csv")
    theirs = upload_ok(client, other_account, table_csv(["a", "b", "c"], x.tolist()), "t.csv")
    headers = account.headers

    def refused(status: int, model: str, fragment: str, **body: Any) -> None:
        response = submit_batch(client, headers, model, **body)
        assert response.status_code == status, response.text
        assert fragment in response.json()["message"], response.text

    refused(404, "00000000-0000-0000-0000-000000000000", "model", dataset_id=good["id"])
    refused(404, model_id, "dataset", dataset_id=theirs["id"])
    refused(422, model_id, "lacks column 'c'", dataset_id=lacking["id"])
    refused(422, model_id, "text models only", dataset_id=good["id"], text_column="a")
    refused(422, model_id, "format", dataset_id=good["id"], format="xlsx")
    refused(422, model_id, "shards", dataset_id=good["id"], shards=4)
    response = submit_batch(client, other_account.headers, model_id, dataset_id=good["id"])
    assert response.status_code == 404, response.text

    viewer = add_viewer(deployment, account, other_account)
    response = submit_batch(client, viewer, model_id, dataset_id=good["id"])
    assert response.status_code == 403, response.text

    done = wait_for_batch(
        client, account, submit_batch(client, headers, model_id, dataset_id=good["id"]).json()["id"]
    )
    path = f"/api/v1/batch-predictions/{done['id']}"
    assert client.get(path, headers=viewer).status_code == 200
    assert client.get(path + "/download", headers=viewer).status_code == 200
    assert client.get(path, headers=other_account.headers).status_code == 404
    assert client.get(path + "/download", headers=other_account.headers).status_code == 404
    assert client.delete(path, headers=viewer).status_code == 403
    assert client.post(path + "/cancel", headers=headers).status_code == 409
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404

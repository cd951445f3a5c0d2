"""The flows that touch files, end to end on the third deployment shape, "s3": PostgreSQL,
Redis and an S3 file store (moto's server, SSE-S3 asked for on every write), through the
real API and a real worker process.

The rest of the suite runs on the embedded and scale-out shapes with the local store; this
module runs once on S3 every flow that reads or writes files: dataset uploads (CSV,
Parquet, image zip) and downloads, training (checkpoints, model files), predictions,
model downloads (safetensors, ONNX), a batch prediction and its download, and deletions.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import REDIS_URL, Account, Deployment, installation, register_account
from tests.factories import (
    ROWS,
    small_job_body,
    submit_ok,
    table_csv,
    upload_ok,
    wait_for_job,
)
from tests.images import digit_pixels, encode_image, zip_bytes
from tests.live import start_worker, stop_process
from tests.s3 import AWS_TEST_ENV, new_bucket, s3_client

# A Redis database of its own: the session's worker listens on the test Redis's database
# and fresh installations use 14, so neither takes this module's messages.
S3_SHAPE_REDIS_DB = 13
STORE_PREFIX = "dlp"
DELETION_SECONDS = 10.0


@dataclasses.dataclass
class S3Installation:
    """The "s3" shape: its deployment, bucket, API client and one account."""

    deployment: Deployment
    bucket: str
    client: TestClient
    account: Account

    def object_key(self, key: str) -> str:
        """The bucket key of a store key."""
        return f"{STORE_PREFIX}/{key}"

    def keys_under(self, key: str) -> list[str]:
        """The bucket's current keys below a store folder, store-relative."""
        prefix = f"{self.object_key(key)}/"
        listed = s3_client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"][len(STORE_PREFIX) + 1 :] for item in listed.get("Contents", []))

    def object_bytes(self, key: str) -> bytes:
        """The bytes of a store key, read straight from the bucket."""
        answer = s3_client().get_object(Bucket=self.bucket, Key=self.object_key(key))
        return bytes(answer["Body"].read())

    def encryption_of(self, key: str) -> str:
        """The server-side encryption S3 recorded for a store key."""
        head = s3_client().head_object(Bucket=self.bucket, Key=self.object_key(key))
        return str(head.get("ServerSideEncryption"))


@pytest.fixture(scope="module")
def on_s3(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Installation]:
    """A scale-out installation whose file store is a versioned bucket, with a worker."""
    bucket = new_bucket(versioned=True)
    redis_url = f"{REDIS_URL.rsplit('/', 1)[0]}/{S3_SHAPE_REDIS_DB}"
    with installation(
        "scaleout",
        tmp_path_factory.mktemp("dlp-s3"),
        redis_url=redis_url,
        storage_url=f"s3://{bucket}/{STORE_PREFIX}",
        s3_sse="AES256",
    ) as scaleout:
        aws_env = {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": s3_endpoint}
        deployed = dataclasses.replace(scaleout, name="s3", env=scaleout.env | aws_env)
        worker = start_worker(deployed.env, deployed.worker_log)
        try:
            with TestClient(create_app(deployed.settings), raise_server_exceptions=False) as client:
                yield S3Installation(deployed, bucket, client, register_account(client))
        finally:
            stop_process(worker)


def _rows(n: int = 200) -> tuple[list[str], list[list[Any]]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return ["a", "b", "c", "y"], [[*map(float, r), int(t)] for r, t in zip(x, y, strict=True)]


def _parquet(columns: list[str], rows: list[list[Any]]) -> bytes:
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=64)
    return buffer.getvalue()


def _digits_zip(per_class: int = 4) -> bytes:
    pixels, labels = digit_pixels()
    chosen = [i for digit in range(3) for i in np.flatnonzero(labels == digit)[:per_class]]
    return zip_bytes({f"{labels[i]}/{i:04d}.png": encode_image(pixels[i]) for i in chosen})


@pytest.fixture(scope="module")
def datasets(on_s3: S3Installation) -> dict[str, tuple[dict[str, Any], bytes]]:
    """A CSV, a Parquet and an image dataset uploaded to the S3 shape, with their bytes."""
    columns, rows = _rows()
    files = {
        "tiny.csv": table_csv(columns, rows),
        "tiny.parquet": _parquet(columns, rows),
        "digits.zip": _digits_zip(),
    }
    return {
        name: (upload_ok(on_s3.client, on_s3.account, content, name), content)
        for name, content in files.items()
    }


@pytest.fixture(scope="module")
def trained(on_s3: S3Installation, datasets: dict[str, Any]) -> dict[str, Any]:
    """A tiny model trained by the worker from the Parquet dataset (its finished job)."""
    dataset = datasets["tiny.parquet"][0]
    job_id = submit_ok(on_s3.client, on_s3.account, small_job_body(dataset["id"]))
    job = wait_for_job(on_s3.client, on_s3.account, job_id, timeout=60)
    assert job["status"] == "succeeded", job
    return job


def test_uploads_are_stored_encrypted_in_s3_and_download_byte_identical(
    on_s3: S3Installation, datasets: dict[str, tuple[dict[str, Any], bytes]]
) -> None:
    org = on_s3.account.organization_id
    for name, (dataset, content) in datasets.items():
        key = f"orgs/{org}/datasets/{dataset['id']}/original.{name.rsplit('.', 1)[1]}"
        assert on_s3.keys_under(f"orgs/{org}/datasets/{dataset['id']}") == [key]
        assert on_s3.object_bytes(key) == content
        assert on_s3.encryption_of(key) == "AES256"
        downloaded = on_s3.client.get(
            f"/api/v1/datasets/{dataset['id']}/download", headers=on_s3.account.headers
        )
        assert downloaded.status_code == 200, downloaded.text
        assert downloaded.content == content
    assert datasets["tiny.parquet"][0]["n_rows"] == 200
    assert datasets["digits.zip"][0]["kind"] == "image"
    assert datasets["digits.zip"][0]["n_rows"] == 12
    ready = on_s3.client.get("/ready").json()
    assert ready["checks"]["store"]["ok"], ready


def test_training_keeps_checkpoints_and_model_files_in_s3_and_serves_them(
    on_s3: S3Installation, trained: dict[str, Any]
) -> None:
    org, headers = on_s3.account.organization_id, on_s3.account.headers
    checkpoints = f"orgs/{org}/jobs/{trained['id']}/checkpoints"
    versions = s3_client().list_object_versions(
        Bucket=on_s3.bucket, Prefix=on_s3.object_key(checkpoints)
    )
    written = {item["Key"].rsplit("/", 1)[1] for item in versions.get("Versions", [])}
    assert written == {"epoch-00001.safetensors", "epoch-00002.safetensors"}
    assert on_s3.keys_under(checkpoints) == []  # dropped once the model was registered

    model_id = trained["model_id"]
    model_files = on_s3.keys_under(f"orgs/{org}/models/{model_id}")
    assert f"orgs/{org}/models/{model_id}/model.safetensors" in model_files
    assert all(on_s3.encryption_of(key) == "AES256" for key in model_files)

    predicted = on_s3.client.post(
        f"/api/v1/models/{model_id}/predict", headers=headers, json={"inputs": ROWS}
    )
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == len(ROWS)
    weights = on_s3.client.get(f"/api/v1/models/{model_id}/download", headers=headers)
    assert weights.status_code == 200, weights.text
    assert weights.content == on_s3.object_bytes(f"orgs/{org}/models/{model_id}/model.safetensors")
    exported = on_s3.client.get(
        f"/api/v1/models/{model_id}/download", headers=headers, params={"format": "onnx"}
    )
    assert exported.status_code == 200, exported.text
    onnx.checker.check_model(onnx.load_from_string(exported.content))


def test_a_batch_prediction_streams_its_dataset_from_s3_and_writes_its_output_there(
    on_s3: S3Installation, datasets: dict[str, Any], trained: dict[str, Any]
) -> None:
    org, headers = on_s3.account.organization_id, on_s3.account.headers
    submitted = on_s3.client.post(
        f"/api/v1/models/{trained['model_id']}/batch-predictions",
        headers=headers,
        json={"dataset_id": datasets["tiny.csv"][0]["id"], "format": "parquet"},
    )
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(
        on_s3.client,
        on_s3.account,
        submitted.json()["id"],
        timeout=60,
        collection="/api/v1/batch-predictions",
    )
    assert job["status"] == "succeeded", job

    [output_key] = on_s3.keys_under(f"orgs/{org}/batch-predictions/{job['id']}")
    downloaded = on_s3.client.get(job["output"]["download_url"], headers=headers)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == on_s3.object_bytes(output_key)
    assert on_s3.encryption_of(output_key) == "AES256"
    assert pq.read_table(io.BytesIO(downloaded.content)).num_rows == 200


def test_deleting_a_dataset_and_a_model_removes_their_objects_from_s3(
    on_s3: S3Installation, datasets: dict[str, Any]
) -> None:
    org, headers = on_s3.account.organization_id, on_s3.account.headers
    columns, rows = _rows(100)
    dataset = upload_ok(on_s3.client, on_s3.account, table_csv(columns, rows), "doomed.csv")
    job = wait_for_job(
        on_s3.client,
        on_s3.account,
        submit_ok(on_s3.client, on_s3.account, small_job_body(dataset["id"], epochs=1)),
        timeout=60,
    )
    assert job["status"] == "succeeded", job
    dataset_folder = f"orgs/{org}/datasets/{dataset['id']}"
    model_folder = f"orgs/{org}/models/{job['model_id']}"
    assert on_s3.keys_under(dataset_folder) and on_s3.keys_under(model_folder)

    model_deleted = on_s3.client.delete(f"/api/v1/models/{job['model_id']}", headers=headers)
    dataset_deleted = on_s3.client.delete(f"/api/v1/datasets/{dataset['id']}", headers=headers)

    assert (model_deleted.status_code, dataset_deleted.status_code) == (204, 204)
    _wait_until_gone(on_s3, dataset_folder, model_folder)
    kept = datasets["tiny.csv"][0]
    assert on_s3.keys_under(f"orgs/{org}/datasets/{kept['id']}")  # a neighbour untouched
    gone = on_s3.client.get(f"/api/v1/datasets/{dataset['id']}", headers=headers)
    assert gone.status_code == 404


def _wait_until_gone(on_s3: S3Installation, *folders: str) -> None:
    # The files go after the deletion commits, which may finish after the 204 is sent.
    deadline = time.monotonic() + DELETION_SECONDS
    while any(on_s3.keys_under(folder) for folder in folders):
        assert time.monotonic() < deadline, {f: on_s3.keys_under(f) for f in folders}
        time.sleep(0.1)

"""A batch prediction's life outside the happy path, on an installation of its own whose
"worker" is this test process calling the real runners: queued and cancelled, cancelled
mid-run, and taken back from a worker that stopped renewing its lease."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from dlp.batch.kind import BATCH_PREDICTIONS
from dlp.batch.runner import run_next_batch_prediction
from dlp.db import session_scope, utcnow
from dlp.jobs import repository as jobs_repository
from dlp.platform import Platform, build_platform
from dlp.training.runner import run_next_training_job
from dlp.workers.service import take_back_stale_jobs
from tests.batch.test_batch_predictions_api import submit_batch
from tests.conftest import Account
from tests.factories import fresh_installation, small_job_body, submit_ok, table_csv, upload_ok


@contextmanager
def _installation(
    shape: str, tmp_path: Path, **overrides: Any
) -> Iterator[tuple[Platform, TestClient, Account, str]]:
    """A fresh installation with one trained model: platform, API, account, model id."""
    with fresh_installation(shape, tmp_path, **overrides) as (deployed, client, account):
        platform = build_platform(deployed.settings)
        try:
            rows = np.random.default_rng(0).normal(size=(200, 3))
            labelled = [[*row, int(row[0] + row[1] > 0)] for row in rows.tolist()]
            dataset = upload_ok(client, account, table_csv(["a", "b", "c", "y"], labelled))
            job_id = submit_ok(client, account, small_job_body(dataset["id"]))
            assert str(run_next_training_job(platform, worker="test")) == job_id
            job = client.get(f"/api/v1/training/jobs/{job_id}", headers=account.headers).json()
            assert job["status"] == "succeeded", job
            yield platform, client, account, job["model_id"]
        finally:
            platform.close()


def _dataset(client: TestClient, account: Account, n_rows: int) -> str:
    rows = np.random.default_rng(1).normal(size=(n_rows, 3)).round(4).tolist()
    return str(upload_ok(client, account, table_csv(["a", "b", "c"], rows), "big.csv")["id"])


def _get(client: TestClient, account: Account, job_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/batch-predictions/{job_id}", headers=account.headers).json()


def test_queued_job_can_be_cancelled_never_runs_and_is_deleted(shape: str, tmp_path: Path) -> None:
    with _installation(shape, tmp_path) as (platform, client, account, model_id):
        dataset = _dataset(client, account, 100)
        job_id = submit_batch(client, account.headers, model_id, dataset_id=dataset).json()["id"]
        path = f"/api/v1/batch-predictions/{job_id}"

        queues = client.get("/api/v1/admin/queues", headers=account.headers).json()
        waiting = {queue["name"]: queue["waiting_jobs"] for queue in queues["queues"]}
        assert waiting["batch"] == 1

        assert client.get(path + "/download", headers=account.headers).status_code == 409
        assert client.delete(path, headers=account.headers).status_code == 409
        deleted = client.delete(f"/api/v1/datasets/{dataset}", headers=account.headers)
        assert deleted.status_code == 409 and "batch" in deleted.json()["message"]

        cancelled = client.post(path + "/cancel", headers=account.headers)
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        assert run_next_batch_prediction(platform, worker="test") is None
        assert client.post(path + "/cancel", headers=account.headers).status_code == 409
        assert client.delete(path, headers=account.headers).status_code == 204
        assert client.get(path, headers=account.headers).status_code == 404


def test_running_job_stops_between_chunks_when_cancelled(tmp_path: Path) -> None:
    with _installation("embedded", tmp_path, batch_chunk_rows=10) as (
        platform,
        client,
        account,
        model_id,
    ):
        n_rows = 200_000
        dataset = _dataset(client, account, n_rows)
        job_id = submit_batch(client, account.headers, model_id, dataset_id=dataset).json()["id"]
        runner = threading.Thread(
            target=run_next_batch_prediction, args=(platform,), kwargs={"worker": "test"}
        )
        runner.start()
        deadline = time.monotonic() + 60
        while _get(client, account, job_id)["progress"]["rows_done"] == 0:
            assert time.monotonic() < deadline and runner.is_alive()
            time.sleep(0.05)
        response = client.post(
            f"/api/v1/batch-predictions/{job_id}/cancel", headers=account.headers
        )
        assert response.status_code == 202 and response.json()["status"] == "running"
        runner.join(60)
        job = _get(client, account, job_id)
        assert job["status"] == "cancelled", job
        assert 0 < job["progress"]["rows_done"] < n_rows and job["output"] is None
        outputs = platform.settings.resolved_data_dir / "files" / "orgs"
        assert not [p for p in outputs.rglob("batch-predictions/*/*") if p.is_file()]


def test_job_of_a_vanished_worker_is_taken_back_and_finishes(shape: str, tmp_path: Path) -> None:
    with _installation(shape, tmp_path) as (platform, client, account, model_id):
        dataset = _dataset(client, account, 500)
        job_id = submit_batch(client, account.headers, model_id, dataset_id=dataset).json()["id"]
        # A worker claims the job and dies before writing anything.
        with session_scope(platform.sessions) as session:
            claimed = jobs_repository.claim_next(
                session,
                BATCH_PREDICTIONS.table,
                BATCH_PREDICTIONS.scope,
                worker="dead-worker",
                lease_token=uuid.uuid4(),
                now=utcnow(),
            )
        assert str(claimed) == job_id
        assert _get(client, account, job_id)["status"] == "running"

        later = utcnow() + timedelta(seconds=platform.settings.job_lease_seconds + 1)
        assert take_back_stale_jobs(platform, later) == 1
        job = _get(client, account, job_id)
        assert job["status"] == "queued" and job["attempts"] == 1 and job["worker"] is None

        assert str(run_next_batch_prediction(platform, worker="test")) == job_id
        job = _get(client, account, job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert job["output"]["rows"] == 500

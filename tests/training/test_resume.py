"""A job whose worker is SIGKILLed mid-run is taken back by the reaper of the restarted
worker once its lease expires, resumes from its last checkpoint, and ends with the
metrics of a run never interrupted."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import fast_lease_installation, register_account, start_worker
from tests.factories import submit_job, table_csv, upload_ok, wait_for_job

EPOCHS = 15


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    """An embedded installation of its own, so killing its worker disturbs no other test."""
    settings, env = fast_lease_installation(tmp_path / "data")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, env, tmp_path


def _dataset_csv() -> bytes:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 6))
    y = (x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=2000) > 0).astype(int)
    return table_csv(
        [*"abcdef", "y"], [[*map(float, row), int(t)] for row, t in zip(x, y, strict=True)]
    )


def test_killed_job_resumes_from_its_checkpoint(isolated) -> None:
    client, env, tmp_path = isolated
    account = register_account(client)
    dataset = upload_ok(client, account, _dataset_csv(), "resume.csv")
    body = {
        "dataset_id": dataset["id"],
        "task": "classification",
        "target": "y",
        "model": {"type": "mlp", "hidden_sizes": [256, 256], "dropout": 0.2},
        "training": {"epochs": EPOCHS, "batch_size": 16, "early_stopping_patience": 0, "seed": 7},
    }
    worker = start_worker(env, tmp_path / "worker1.log")
    try:
        reference = wait_for_job(client, account, submit_job(client, account, **body).json()["id"])
        assert reference["status"] == "succeeded", reference
        interrupted = submit_job(client, account, **body).json()
        deadline = time.monotonic() + 120
        while True:
            job = client.get(
                f"/api/v1/training/jobs/{interrupted['id']}", headers=account.headers
            ).json()
            if job["progress"]["epoch"] >= 2:
                break
            assert job["status"] in {"queued", "running"} and time.monotonic() < deadline, job
            time.sleep(0.02)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    job = client.get(f"/api/v1/training/jobs/{interrupted['id']}", headers=account.headers).json()
    assert job["status"] == "running" and job["progress"]["epoch"] < EPOCHS, job

    # Nobody re-queues it by hand: the restarted worker's reaper finds the stale lease.
    worker = start_worker(env, tmp_path / "worker2.log")
    try:
        resumed = wait_for_job(client, account, job["id"])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()
    assert resumed["status"] == "succeeded", resumed
    assert resumed["attempts"] == 2
    log = (tmp_path / "worker2.log").read_text()
    assert '"resume_after_epoch": null' not in log and "resume_after_epoch" in log
    for name, value in reference["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=1e-6), name
    rows = client.get(f"/api/v1/training/jobs/{job['id']}/metrics", headers=account.headers).json()[
        "items"
    ]
    epochs = [row["epoch"] for row in rows if row["name"] == "train_loss"]
    assert epochs == list(range(1, EPOCHS + 1))
    assert not list((tmp_path / "data" / "files").rglob("checkpoints/*"))

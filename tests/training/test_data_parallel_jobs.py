"""Jobs that ask for ``resources.devices: 2`` run as two gloo processes on a real worker:
they succeed, survive the loss of either rank by resuming from their checkpoint, and
never leave a process behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import (
    Account,
    fast_lease_installation,
    register_account,
    start_worker,
    stop_process,
)
from tests.factories import submit_job, table_csv, upload_ok, wait_for_job

EPOCHS = 6
HELPER_MODULE = "dlp.ml.distributed"


@pytest.fixture(scope="module")
def installation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Account, dict[str, Any], psutil.Process, Path]]:
    """An embedded installation with one worker of its own (its processes get killed)."""
    tmp_path = tmp_path_factory.mktemp("data-parallel")
    settings, env = fast_lease_installation(tmp_path / "data", DLP_JOB_RETRY_BACKOFF_SECONDS="0.5")
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            account = register_account(client)
            dataset = upload_ok(client, account, _dataset_csv(), "ranks.csv")
            body = {
                "dataset_id": dataset["id"],
                "task": "classification",
                "target": "y",
                "model": {"type": "mlp", "hidden_sizes": [64, 64], "dropout": 0.1},
                "training": {
                    "epochs": EPOCHS,
                    "batch_size": 16,
                    "early_stopping_patience": 0,
                    "seed": 3,
                },
                "resources": {"devices": 2, "device_type": "cpu"},
            }
            yield client, account, body, psutil.Process(worker.pid), log
    finally:
        stop_process(worker)


def _dataset_csv() -> bytes:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + 0.3 * rng.normal(size=1500) > 0).astype(int)
    return table_csv(
        [*"abcdef", "y"], [[*map(float, row), int(t)] for row, t in zip(x, y, strict=True)]
    )


def _ranks(worker: psutil.Process) -> list[psutil.Process]:
    """The helper ranks alive under ``worker`` (zombies are gone already)."""
    ranks = []
    for process in worker.children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and HELPER_MODULE in process.cmdline():
                ranks.append(process)
        except psutil.NoSuchProcess:
            continue
    return ranks


def _no_rank_left(worker: psutil.Process) -> bool:
    deadline = time.monotonic() + 10
    while _ranks(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _ranks(worker)


def _run_until_epoch(client: TestClient, account: Account, body: dict[str, Any], epoch: int):
    job = submit_job(client, account, **body).json()
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"/api/v1/training/jobs/{job['id']}", headers=account.headers).json()
        if job["progress"]["epoch"] >= epoch:
            return job
        assert job["status"] in {"queued", "running"} and time.monotonic() < deadline, job
        time.sleep(0.02)


def _epochs_recorded(client: TestClient, account: Account, job_id: str) -> list[int]:
    rows = client.get(f"/api/v1/training/jobs/{job_id}/metrics", headers=account.headers).json()
    return [row["epoch"] for row in rows["items"] if row["name"] == "train_loss"]


@pytest.fixture(scope="module")
def reference(installation) -> dict[str, Any]:
    """The two-process job run without interruption."""
    client, account, body, worker, _log = installation
    job = wait_for_job(client, account, submit_job(client, account, **body).json()["id"])
    assert job["status"] == "succeeded", job
    assert _no_rank_left(worker)
    return job


def test_a_two_process_job_trains_and_registers_its_model(installation, reference) -> None:
    client, account, _body, _worker, log = installation
    assert reference["attempts"] == 1 and reference["metrics"]["val_accuracy"] > 0.8
    assert _epochs_recorded(client, account, reference["id"]) == list(range(1, EPOCHS + 1))
    model = client.get(f"/api/v1/models/{reference['model_id']}", headers=account.headers)
    assert model.status_code == 200 and model.json()["config"]["resources"]["devices"] == 2
    assert '"devices": 2, "device_type": "cpu"' in log.read_text()


def test_rank_zero_killed_resumes_from_the_checkpoint(installation, reference) -> None:
    client, account, body, worker, _log = installation
    job = _run_until_epoch(client, account, body, 2)
    (pool_child,) = [child for child in worker.children() if _ranks(child)]
    pool_child.kill()  # rank 0 is the worker's pool process running the job
    assert _no_rank_left(worker)  # its helper noticed and left

    resumed = wait_for_job(client, account, job["id"])
    assert resumed["status"] == "succeeded", resumed
    assert resumed["attempts"] == 2
    assert _epochs_recorded(client, account, job["id"]) == list(range(1, EPOCHS + 1))
    for name, value in reference["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=1e-5), name
    assert _no_rank_left(worker)


def test_a_killed_helper_rank_is_retried_cleanly(installation, reference) -> None:
    client, account, body, worker, log = installation
    job = _run_until_epoch(client, account, body, 2)
    (helper,) = _ranks(worker)
    helper.send_signal(signal.SIGKILL)

    retried = wait_for_job(client, account, job["id"])
    assert retried["status"] == "succeeded", retried
    assert retried["attempts"] == 2
    assert "ReplicaLostError: data-parallel rank 1 of 2 was killed by signal 9" in log.read_text()
    assert _epochs_recorded(client, account, job["id"]) == list(range(1, EPOCHS + 1))
    for name, value in reference["metrics"].items():
        assert retried["metrics"][name] == pytest.approx(value, abs=1e-5), name
    assert _no_rank_left(worker)
    assert worker.is_running() and os.getpgid(worker.pid) == worker.pid

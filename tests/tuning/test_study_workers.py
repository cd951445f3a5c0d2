"""Studies across real worker processes, on both run shapes: twelve trials shared by two
workers with Hyperband pruning, and a study that loses a worker to SIGKILL mid-trial.

Each test builds an installation of its own, so its workers are the only ones taking
its trials (and killing one disturbs no other test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment, scaleout_only, start_worker, stop_process
from tests.factories import (
    breast_cancer,
    fresh_installation,
    table_csv,
    tiny_dataset,
    upload_ok,
    wait_for_job,
)
from tests.tuning.test_study_api import STUDIES, create_ok, wait_for_study

FAST_LEASES = {"job_heartbeat_seconds": 0.5, "job_lease_seconds": 3.0}


def _workers(deployed: Deployment, tmp_path: Path, n: int) -> list[subprocess.Popen[bytes]]:
    return [
        start_worker(deployed.env, tmp_path / f"worker-{i}.log", "--queues", "training,tuning")
        for i in range(n)
    ]


def _breast_cancer(client: TestClient, account: Account) -> str:
    columns, train, _test = breast_cancer()
    return str(upload_ok(client, account, table_csv(columns, train), "cancer.csv")["id"])


@scaleout_only
def test_twelve_trials_on_two_workers_beat_the_default_config(shape: str, tmp_path: Path) -> None:
    with fresh_installation(shape, tmp_path) as (deployed, client, account):
        dataset = _breast_cancer(client, account)
        workers = _workers(deployed, tmp_path, 2)
        try:
            default = client.post(
                "/api/v1/training/jobs",
                headers=account.headers,
                json={"dataset_id": dataset, "task": "classification", "target": "target"},
            )
            assert default.status_code == 202, default.text
            default_job = wait_for_job(client, account, default.json()["id"])
            assert default_job["status"] == "succeeded", default_job

            study = create_ok(
                client,
                account,
                {
                    "dataset_id": dataset,
                    "task": "classification",
                    "target": "target",
                    "model": {"type": "auto"},
                    "n_trials": 12,
                    "parallelism": 2,
                    "pruner": "hyperband",
                    "training": {"epochs": 30, "early_stopping_patience": 10},
                },
            )
            final = wait_for_study(client, account, study["id"], timeout=400)
        finally:
            for worker in workers:
                stop_process(worker)

    assert final["status"] == "succeeded", final
    trials = final["trials"]
    assert sorted(trial["number"] for trial in trials) == list(range(12))
    assert {trial["state"] for trial in trials} <= {"complete", "pruned"}, trials
    assert final["trial_counts"]["pruned"] >= 1, "Hyperband stops at least one weak trial"
    pruned = [trial for trial in trials if trial["state"] == "pruned"]
    assert all(trial["epochs"] < 30 and "hyperband" in trial["error_message"] for trial in pruned)
    assert len({trial["worker"] for trial in trials}) == 2, "trials ran on both workers"
    assert final["best"]["value"] >= default_job["metrics"]["val_accuracy"]
    assert final["model_id"] == final["best"]["model_id"] is not None


def _trial_running_past_epoch(
    client: TestClient, account: Account, study_id: str, epoch: int
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        study = client.get(f"{STUDIES}/{study_id}", headers=account.headers).json()
        for trial in study["trials"]:
            if trial["state"] == "running" and trial["epochs"] >= epoch:
                return dict(trial)
        time.sleep(0.1)
    raise AssertionError(f"no trial reached epoch {epoch}: {study}")


@scaleout_only
def test_study_survives_a_worker_killed_mid_trial(shape: str, tmp_path: Path) -> None:
    with fresh_installation(shape, tmp_path, **FAST_LEASES) as (deployed, client, account):
        dataset = tiny_dataset(client, account)
        workers = _workers(deployed, tmp_path, 2)
        try:
            study = create_ok(
                client,
                account,
                {
                    "dataset_id": dataset,
                    "task": "classification",
                    "target": "y",
                    "model": {"type": "mlp"},
                    "n_trials": 4,
                    "parallelism": 2,
                    "pruner": "none",
                    "search_space": {
                        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}
                    },
                    "training": {"epochs": 25, "batch_size": 8, "early_stopping_patience": 0},
                },
            )
            victim = _trial_running_past_epoch(client, account, study["id"], 3)
            pid = int(victim["worker"].split("@")[0].removeprefix("dlp-"))
            killed = next(worker for worker in workers if worker.pid == pid)
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
            final = wait_for_study(client, account, study["id"], timeout=240)
            victim_job = wait_for_job(client, account, str(victim["job_id"]))
            metrics = client.get(
                f"/api/v1/training/jobs/{victim['job_id']}/metrics", headers=account.headers
            ).json()["items"]
            attempts = {
                trial["job_id"]: wait_for_job(client, account, str(trial["job_id"]))["attempts"]
                for trial in final["trials"]
            }
        finally:
            for worker in workers:
                stop_process(worker)

    assert final["status"] == "succeeded", final
    numbers = sorted(trial["number"] for trial in final["trials"])
    assert numbers == [0, 1, 2, 3], "the study carried on; it never started again from zero"
    assert final["trial_counts"]["complete"] == 4
    # The killed trial kept its number and parameters and resumed on the other worker.
    resumed = next(trial for trial in final["trials"] if trial["job_id"] == victim["job_id"])
    assert resumed["number"] == victim["number"] and resumed["params"] == victim["params"]
    assert victim_job["attempts"] == 2 and victim_job["worker"] != victim["worker"]
    epochs = [row["epoch"] for row in metrics if row["name"] == "val_accuracy"]
    assert epochs == list(range(1, 26)), "each epoch recorded once across both attempts"
    assert sorted(attempts.values()) == [1, 1, 1, 2], "no other trial ran twice"

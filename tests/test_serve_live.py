"""The README walkthrough against a real ``dlp serve`` process, over real HTTP."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tests.live import LiveServer, live_server, server_env

TRAINING_SECONDS = 180.0
PASSWORD = "correct horse battery"


def write_breast_cancer_csv(
    path: Path, *, seed: int = 0
) -> tuple[list[dict[str, float]], list[int]]:
    """Write 80% of breast cancer (features, then ``target``) as CSV; return the other 20%."""
    data = load_breast_cancer()
    features, labels = data.data, data.target
    order = np.random.default_rng(seed).permutation(len(labels))
    n_held_out = len(labels) // 5
    held_out, kept = order[:n_held_out], order[n_held_out:]
    names = [str(name) for name in data.feature_names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "target"])
        for i in kept:
            writer.writerow([*(repr(float(v)) for v in features[i]), int(labels[i])])
    rows = [dict(zip(names, map(float, features[i]), strict=True)) for i in held_out]
    return rows, [int(labels[i]) for i in held_out]


def register_and_login(client: httpx.Client, username: str = "alice") -> str:
    """Register a user and return an access token."""
    created = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    login = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])


def wait_for_job(client: httpx.Client, job_id: str, server: LiveServer | None = None) -> dict:
    """Poll a training job until it ends; fail on any end but ``succeeded``."""
    deadline = time.monotonic() + TRAINING_SECONDS
    job: dict = {}
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/training/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            break
        time.sleep(0.5)
    assert job.get("status") == "succeeded", (
        f"job ended as {job}\n{server.log_tail() if server else ''}"
    )
    return job


def test_readme_walkthrough_on_a_live_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    csv_path = tmp_path / "breast_cancer.csv"
    held_out_rows, held_out_labels = write_breast_cancer_csv(csv_path)

    with live_server(data_dir) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        token = register_and_login(client)
        client.headers["Authorization"] = f"Bearer {token}"

        with csv_path.open("rb") as handle:
            uploaded = client.post(
                "/api/v1/datasets", files={"file": ("breast_cancer.csv", handle, "text/csv")}
            )
        assert uploaded.status_code == 201, uploaded.text
        dataset = uploaded.json()
        assert dataset["n_rows"] == 569 - len(held_out_rows)
        assert dataset["size_bytes"] == csv_path.stat().st_size
        assert [c["name"] for c in dataset["schema"]["columns"]][-1] == "target"

        started = client.post(
            "/api/v1/training/jobs",
            json={"dataset_id": dataset["id"], "task": "classification", "target": "target"},
        )
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "queued"
        job = wait_for_job(client, started.json()["id"], server)
        assert job["model_id"]

        answer = client.post(
            f"/api/v1/models/{job['model_id']}/predict", json={"inputs": held_out_rows}
        )
        assert answer.status_code == 200, answer.text
        prediction = answer.json()
        assert prediction["model_id"] == job["model_id"]
        assert len(prediction["probabilities"]) == len(held_out_rows)
        predicted = [int(float(p)) for p in prediction["predictions"]]
        accuracy = float(np.mean(np.array(predicted) == np.array(held_out_labels)))
        assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f}"

    assert (data_dir / "dlp.db").is_file()
    assert (data_dir / "files").is_dir()
    assert (data_dir / "queue").is_dir()
    key_file = data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()

    # A restart on the same data dir keeps the key, so tokens stay valid.
    with live_server(data_dir, "--no-worker") as server:
        me = httpx.get(
            f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "alice"
    assert key_file.read_text() == key


def test_a_user_can_log_in_as_soon_as_registration_answers(tmp_path: Path) -> None:
    # The 201 must mean the account is committed, not that it will be shortly.
    failed = []
    with (
        live_server(tmp_path / "data", "--no-worker") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for i in range(10):
            username = f"user{i}"
            created = client.post(
                "/api/v1/auth/register",
                json={
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": PASSWORD,
                },
            )
            assert created.status_code == 201, created.text
            login = client.post(
                "/api/v1/auth/login", data={"username": username, "password": PASSWORD}
            )
            if login.status_code != 200:
                failed.append(username)
    assert not failed, f"login right after a 201 registration failed for {failed}"


@pytest.mark.parametrize("nested", [False, True])
def test_db_upgrade_creates_the_database(tmp_path: Path, nested: bool) -> None:
    data_dir = tmp_path / "new" / "data" if nested else tmp_path
    result = subprocess.run(
        [sys.executable, "-m", "dlp", "db", "upgrade"],
        env=server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (data_dir / "dlp.db").is_file()
    assert os.path.getsize(data_dir / "dlp.db") > 0

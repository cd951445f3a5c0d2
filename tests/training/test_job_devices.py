"""Jobs and the devices they ask for, on an installation of its own whose workers are rows
this test writes and whose "worker" process is this test calling the real runner: a job
no live worker can run is refused, or waits with its reason shown, and is never claimed
by a process without the devices."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dlp.db import utcnow
from dlp.jobs import repository as jobs_repository
from dlp.jobs.capacity import Capacity
from dlp.platform import Platform, build_platform
from dlp.training.kind import TRAINING_JOBS
from dlp.training.models import TrainingJob
from dlp.training.runner import run_next_training_job
from dlp.workers.service import WorkerIdentity, record_heartbeat
from tests.conftest import Account
from tests.factories import fresh_installation, small_job_body, submit_job, submit_ok, tiny_dataset

TWO_GPUS = {"devices": 2, "device_type": "cuda"}


def _heartbeat(
    platform: Platform, name: str, hardware: dict[str, Any] | None, *, ago: timedelta = timedelta()
) -> None:
    identity = WorkerIdentity(
        name=name,
        hostname=name.split("@")[-1],
        pid=1,
        queues=("training",),
        concurrency=1,
        started_at=utcnow(),
        hardware=hardware,
    )
    record_heartbeat(platform, identity, utcnow() - ago)


def _get(client: TestClient, account: Account, job_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/training/jobs/{job_id}", headers=account.headers).json()


def test_jobs_without_a_fitting_worker_are_refused_or_wait_and_are_never_claimed(
    shape: str, tmp_path: Path
) -> None:
    with fresh_installation(shape, tmp_path) as (deployed, client, account):
        platform = build_platform(deployed.settings)
        try:
            dataset = tiny_dataset(client, account)
            # No worker known yet: any job is accepted and waits for one.
            first = submit_ok(client, account, small_job_body(dataset, resources=TWO_GPUS))
            assert _get(client, account, first)["waiting_reason"] is None
            # A live worker of an older release does not say what it has: no refusal.
            _heartbeat(platform, "dlp-1@old-host", None)
            second = submit_ok(client, account, small_job_body(dataset, resources=TWO_GPUS))

            _heartbeat(platform, "dlp-1@old-host", None, ago=timedelta(days=1))
            cpu_only = {"cpu_cores": 4, "gpus": [], "job_devices": {"cuda": 0, "cpu": 4}}
            _heartbeat(platform, "dlp-2@cpu-host", cpu_only)
            reason = "no live worker has 2 cuda devices; the largest has 0 (worker dlp-2@cpu-host)"
            assert _get(client, account, first)["waiting_reason"] == reason
            listed = client.get("/api/v1/training/jobs", headers=account.headers).json()
            assert {job["waiting_reason"] for job in listed["items"]} == {reason}

            refused = submit_job(client, account, **small_job_body(dataset, resources=TWO_GPUS))
            assert refused.status_code == 422, refused.text
            assert refused.json()["message"] == f"resources.devices=2 (cuda): {reason}"
            too_many = submit_job(
                client, account, **small_job_body(dataset, resources={"devices": 5})
            )
            assert too_many.status_code == 422
            assert (
                "5 devices (GPUs, else CPU cores); the largest has 4" in too_many.json()["message"]
            )
            on_cores = submit_ok(
                client,
                account,
                small_job_body(dataset, resources={"devices": 4, "device_type": "cpu"}),
            )
            assert _get(client, account, on_cores)["waiting_reason"] is None
            cancelled = client.post(
                f"/api/v1/training/jobs/{on_cores}/cancel", headers=account.headers
            )
            assert cancelled.json()["status"] == "cancelled"
            normal = submit_ok(client, account, small_job_body(dataset, epochs=1))

            # This GPU-less process claims the job that fits it, past the older ones that don't.
            assert str(run_next_training_job(platform, worker="test")) == normal
            assert run_next_training_job(platform, worker="test") is None
            for job_id in (first, second):
                job = _get(client, account, job_id)
                assert job["status"] == "queued" and job["attempts"] == 0, job
            # A process that owns two GPUs would take the oldest of them.
            with platform.sessions() as session:
                claimed = jobs_repository.claim_next(
                    session,
                    TrainingJob,
                    TRAINING_JOBS.scope,
                    worker="gpu-host",
                    lease_token=uuid.uuid4(),
                    now=utcnow(),
                    eligible=TRAINING_JOBS.fits(Capacity(cuda=2, cpu=4)),
                )
                session.rollback()
            assert str(claimed) == first
            assert _get(client, account, normal)["status"] == "succeeded"
        finally:
            platform.close()

"""Jobs at scale, with real worker processes: priorities, two workers sharing a burst,
a worker SIGKILLed mid-epoch, and a broker that restarts empty.

Each test builds an installation of its own (a fresh database, and on the scale-out
shape a Redis database or server of its own), so killing its workers or its broker
disturbs no other test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from tests.conftest import (
    Account,
    Deployment,
    register_account,
    scaleout_only,
    start_worker,
    stop_process,
)
from tests.factories import (
    TERMINAL,
    fresh_installation,
    small_job_body,
    submit_ok,
    tiny_dataset,
    wait_for_job,
)
from tests.live import free_port
from tests.tcp_proxy import TcpProxy

# Workers started here renew leases twice a second and lose them after 3 s.
FAST_LEASES = {"job_heartbeat_seconds": 0.5, "job_lease_seconds": 3.0}


def _models_by_job(client: TestClient, account: Account) -> dict[str, int]:
    models = client.get("/api/v1/models?limit=200", headers=account.headers).json()["items"]
    counts: dict[str, int] = {}
    for model in models:
        counts[model["job_id"]] = counts.get(model["job_id"], 0) + 1
    return counts


def _epochs(client: TestClient, account: Account, job_id: str, name: str) -> list[int]:
    rows = client.get(f"/api/v1/training/jobs/{job_id}/metrics", headers=account.headers).json()
    return [row["epoch"] for row in rows["items"] if row["name"] == name]


def _worker(deployed: Deployment, tmp_path: Path, label: str) -> subprocess.Popen[bytes]:
    return start_worker(deployed.env, tmp_path / f"worker-{label}.log", "--queues", "training")


def test_high_priority_job_starts_before_queued_normal_ones(shape: str, tmp_path: Path) -> None:
    with fresh_installation(shape, tmp_path) as (deployed, client, account):
        dataset = tiny_dataset(client, account)
        normal = [submit_ok(client, account, small_job_body(dataset, epochs=1)) for _ in range(10)]
        low = submit_ok(client, account, small_job_body(dataset, epochs=1, priority="low"))
        high = submit_ok(client, account, small_job_body(dataset, epochs=1, priority="high"))
        cancelled = client.post(
            f"/api/v1/training/jobs/{normal[3]}/cancel", headers=account.headers
        )
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"

        worker = _worker(deployed, tmp_path, "only")
        try:
            jobs = {job: wait_for_job(client, account, job) for job in [*normal, low, high]}
        finally:
            stop_process(worker)

    never_started = jobs.pop(normal[3])
    assert never_started["status"] == "cancelled" and never_started["started_at"] is None
    assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
    order = sorted(jobs, key=lambda job_id: jobs[job_id]["started_at"])
    assert order[0] == high
    assert order[-1] == low
    assert order[1:-1] == [job_id for job_id in normal if job_id != normal[3]]


@scaleout_only
def test_two_workers_share_a_burst_of_twenty_jobs(shape: str, tmp_path: Path) -> None:
    with fresh_installation(shape, tmp_path) as (deployed, client, account):
        dataset = tiny_dataset(client, account)
        workers = [_worker(deployed, tmp_path, label) for label in ("a", "b")]
        try:
            ids = [submit_ok(client, account, small_job_body(dataset, epochs=3)) for _ in range(20)]
            jobs = [wait_for_job(client, account, job_id) for job_id in ids]
        finally:
            for worker in workers:
                stop_process(worker)
        models = _models_by_job(client, account)
        epochs = {job_id: _epochs(client, account, job_id, "val_loss") for job_id in ids}

    assert [job["status"] for job in jobs] == ["succeeded"] * 20, jobs
    assert all(job["attempts"] == 1 for job in jobs)
    assert {job_id: models.get(job_id) for job_id in ids} == dict.fromkeys(ids, 1)
    assert all(found == [1, 2, 3] for found in epochs.values()), epochs
    names = {job["worker"] for job in jobs}
    assert names == {f"dlp-{w.pid}@{os.uname().nodename}" for w in workers}


@scaleout_only
def test_sigkilled_worker_job_resumes_on_the_other_worker(shape: str, tmp_path: Path) -> None:
    with fresh_installation(shape, tmp_path, **FAST_LEASES) as (deployed, client, account):
        dataset = tiny_dataset(client, account, rows=3000)
        workers = {}
        for label in ("a", "b"):
            process = _worker(deployed, tmp_path, label)
            workers[f"dlp-{process.pid}@{os.uname().nodename}"] = process
        try:
            epochs = 12
            body = small_job_body(dataset, epochs=epochs)
            body["training"]["batch_size"] = 8
            job_id = submit_ok(client, account, body)
            deadline = time.monotonic() + 120
            while (job := _get(client, account, job_id))["progress"]["epoch"] < 2:
                assert job["status"] in {"queued", "running"}, job
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            victim = workers.pop(job["worker"])
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            finished = wait_for_job(client, account, job_id)
            models = _models_by_job(client, account)
            val_epochs = _epochs(client, account, job_id, "val_loss")
        finally:
            for process in workers.values():
                stop_process(process)

    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 2
    assert finished["worker"] in workers
    assert models == {job_id: 1}
    assert val_epochs == list(range(1, epochs + 1))


def _get(client: TestClient, account: Account, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/training/jobs/{job_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


@contextmanager
def _redis_server(port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = _start_redis(port, log_path)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _start_redis(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A redis-server without persistence: a restart starts it empty."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return process
        except redis.RedisError:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)


def test_every_accepted_job_ends_although_redis_restarts_empty(tmp_path: Path) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    with (
        _redis_server(port, tmp_path / "redis.log") as server,
        fresh_installation("scaleout", tmp_path, redis_url=redis_url, **FAST_LEASES) as fresh,
    ):
        deployed, client, account = fresh
        dataset = tiny_dataset(client, account, rows=1000)
        worker = _worker(deployed, tmp_path, "only")
        try:
            ids = [submit_ok(client, account, small_job_body(dataset, epochs=3)) for _ in range(6)]
            wait_for_job(client, account, ids[0], until={"running", *TERMINAL})
            server.kill()
            server.wait()
            # The database is the truth: jobs are still accepted while the broker is away.
            ids += [submit_ok(client, account, small_job_body(dataset, epochs=3)) for _ in range(2)]
            time.sleep(1)
            restarted = _start_redis(port, tmp_path / "redis.log")
            try:
                jobs = [wait_for_job(client, account, job_id, timeout=240) for job_id in ids]
            finally:
                restarted.kill()
                restarted.wait()
        finally:
            stop_process(worker)
    assert [job["status"] for job in jobs] == ["succeeded"] * len(ids), jobs


def test_admin_sees_queues_workers_and_running_jobs(tmp_path: Path) -> None:
    with fresh_installation("embedded", tmp_path) as (deployed, client, admin):
        member = register_account(client)
        dataset = tiny_dataset(client, member, rows=3000)
        worker = _worker(deployed, tmp_path, "only")
        try:
            body = small_job_body(dataset, epochs=50)
            body["training"]["batch_size"] = 8
            job_id = submit_ok(client, member, body)
            wait_for_job(client, member, job_id, until={"running"})
            overview = client.get("/api/v1/admin/queues", headers=admin.headers)
            forbidden = client.get("/api/v1/admin/queues", headers=member.headers)
            anonymous = client.get("/api/v1/admin/queues")
            client.post(f"/api/v1/training/jobs/{job_id}/cancel", headers=member.headers)
            cancelled = wait_for_job(client, member, job_id)
            kept = _epochs(client, member, job_id, "val_loss")
        finally:
            stop_process(worker)

    assert overview.status_code == 200, overview.text
    body = overview.json()
    assert {q["name"] for q in body["queues"]} == {"training", "tuning", "batch"}
    assert all(isinstance(q["depth"], int) for q in body["queues"])
    [seen] = body["workers"]
    assert seen["name"] == f"dlp-{worker.pid}@{os.uname().nodename}" and seen["alive"]
    assert seen["queues"] == ["training"]
    hardware = seen["hardware"]
    assert hardware["cpu_cores"] == os.cpu_count()
    # One job at a time (concurrency 1): it may use every GPU.
    assert hardware["job_devices"] == {"cuda": len(hardware["gpus"]), "cpu": os.cpu_count()}
    [running] = body["running_jobs"]
    assert running["id"] == job_id and running["worker"] == seen["name"]
    assert forbidden.status_code == 403 and anonymous.status_code == 401
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["epoch"] < 50
    # A running job stops mid-run and keeps the metrics of the epochs it finished.
    assert kept == list(range(1, cancelled["progress"]["epoch"] + 1))


def test_database_briefly_down_is_retried_with_backoff(tmp_path: Path) -> None:
    # A lease long enough that the reaper stays out of it: the worker itself must
    # notice the fault, record the retry once the database is back, and resume.
    with fresh_installation(
        "scaleout", tmp_path, job_heartbeat_seconds=0.5, job_retry_backoff_seconds=0.5
    ) as (deployed, client, account):
        url = make_url(deployed.settings.sqlalchemy_url)
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            env = deployed.env | {
                "DLP_DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False)
            }
            dataset = tiny_dataset(client, account, rows=3000)
            epochs = 30
            body = small_job_body(dataset, epochs=epochs)
            body["training"]["batch_size"] = 8
            log_path = tmp_path / "worker.log"
            worker = start_worker(env, log_path, "--queues", "training")
            try:
                job_id = submit_ok(client, account, body)
                deadline = time.monotonic() + 120
                while _get(client, account, job_id)["progress"]["epoch"] < 2:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                proxy.cut()
                time.sleep(3)
                proxy.restore()
                finished = wait_for_job(client, account, job_id)
            finally:
                stop_process(worker)
        val_epochs = _epochs(client, account, job_id, "val_loss")
        models = _models_by_job(client, account)

    assert finished["status"] == "succeeded", finished
    assert finished["attempts"] == 2
    assert val_epochs == list(range(1, epochs + 1))
    assert models == {job_id: 1}
    log = log_path.read_text()
    assert "job.transient_fault" in log and "job.reaped" not in log


def test_job_of_a_dead_worker_returns_to_the_queue_with_no_worker_alive(tmp_path: Path) -> None:
    # The API's own reaper acts: nothing shows `running` without a live worker.
    with fresh_installation("embedded", tmp_path, **FAST_LEASES) as (deployed, client, account):
        dataset = tiny_dataset(client, account, rows=3000)
        body = small_job_body(dataset, epochs=50)
        body["training"]["batch_size"] = 8
        worker = _worker(deployed, tmp_path, "doomed")
        try:
            job_id = submit_ok(client, account, body)
            wait_for_job(client, account, job_id, until={"running"})
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        back = wait_for_job(client, account, job_id, timeout=30, until={"queued"})
        cancelled = client.post(f"/api/v1/training/jobs/{job_id}/cancel", headers=account.headers)

    assert back["attempts"] == 1 and back["worker"] is None
    assert cancelled.json()["status"] == "cancelled"

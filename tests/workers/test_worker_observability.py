"""A worker's own observability: ``dlp worker --metrics-port`` serves the jobs its pool
children ran, and ``dlp worker-health`` answers a container probe from its heartbeats."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dlp.main import create_app
from tests.conftest import fast_lease_installation, register_account
from tests.factories import small_job_body, submit_ok, tiny_dataset, wait_for_job
from tests.live import free_port, start_worker, stop_process


def probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``dlp worker-health`` as a container runtime runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DLP_")}
    return subprocess.run(
        [sys.executable, "-m", "dlp", "worker-health", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FINISHED = ("dlp_worker_jobs_total", frozenset({("queue", "training"), ("outcome", "finished")}))


def scrape_once_counted(port: int, timeout: float = 15) -> Samples:
    """The worker's metrics, once it counted its job (a moment after the job's status)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200, response.text
        found = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        if FINISHED in found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_worker_metrics_count_its_jobs_and_the_health_probe_follows_its_heartbeat(
    tmp_path: Path,
) -> None:
    settings, env = fast_lease_installation(tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path, "--queues", "training", "--metrics-port", str(port))
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            account = register_account(client)
            dataset = tiny_dataset(client, account)
            job = wait_for_job(
                client, account, submit_ok(client, account, small_job_body(dataset, epochs=2))
            )
        assert job["status"] == "succeeded", job
        found = scrape_once_counted(port)
        assert found.get(FINISHED) == 1, found
        assert found[("dlp_worker_training_samples_per_second", frozenset())] > 0
        running = found.get(("dlp_worker_running_jobs", frozenset({("queue", "training")})))
        assert running in (None, 0)
        assert found[("process_resident_memory_bytes", frozenset())] > 0
        assert found[("dlp_data_dir_free_bytes", frozenset())] > 0

        # The worker on this host is alive; one of another name is unknown.
        with ThreadPoolExecutor(2) as pool:
            healthy, unknown = pool.map(
                lambda args: probe(env, *args), [(), ("--name", "dlp-1@nowhere")]
            )
        assert healthy.returncode == 0 and f"dlp-{worker.pid}@" in healthy.stdout, healthy
        assert unknown.returncode == 1 and "no heartbeat recorded" in unknown.stderr, unknown
    finally:
        stop_process(worker)

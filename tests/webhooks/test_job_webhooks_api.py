"""Webhooks end to end: a job submitted with ``webhook_url`` is delivered, signed, by
the housekeeping of a real worker once it ends; unsafe targets are refused at submission."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dlp.webhooks.signing import verify
from tests.conftest import Account, start_worker, stop_process
from tests.factories import (
    fresh_installation,
    small_job_body,
    submit_job,
    tiny_dataset,
    wait_for_job,
)
from tests.webhooks.conftest import Receiver


def _wait_for_requests(receiver: Receiver, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} webhook requests"
        time.sleep(0.05)


def test_finished_job_posts_its_json_signed(shape: str, tmp_path: Path, receiver: Receiver) -> None:
    # The receiver listens on loopback, which only an operator setting allows.
    with fresh_installation(shape, tmp_path, webhook_allow_private=True) as (
        deployed,
        client,
        account,
    ):
        dataset = tiny_dataset(client, account)
        worker = start_worker(deployed.env, tmp_path / "worker.log")
        try:
            accepted = submit_job(
                client, account, **small_job_body(dataset), webhook_url=receiver.url()
            )
            assert accepted.status_code == 202, accepted.text
            secret = accepted.json()["webhook_secret"]
            assert secret.startswith("whsec_")
            job = wait_for_job(client, account, accepted.json()["id"])
            _wait_for_requests(receiver, 1)
            time.sleep(0.5)
            after = client.get(f"/api/v1/training/jobs/{job['id']}", headers=account.headers)
        finally:
            stop_process(worker)

    [request] = receiver.requests
    assert verify(request.body, secret, request.headers["X-DLP-Signature"])
    assert not verify(request.body + b" ", secret, request.headers["X-DLP-Signature"])
    assert request.headers["X-DLP-Event"] == "training.job.succeeded"
    body = request.json()
    assert body["id"] == job["id"] and body["status"] == "succeeded"
    assert body["model_id"] == job["model_id"] and "webhook_secret" not in body
    assert after.json()["webhook_status"] == "delivered"
    assert "webhook_secret" not in after.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "ftp://example.com/hook",
        "https://user:pass@example.com/hook",
    ],
)
def test_unsafe_webhook_targets_are_refused(client: TestClient, account: Account, url: str) -> None:
    dataset = tiny_dataset(client, account, rows=50)
    response = submit_job(client, account, **small_job_body(dataset), webhook_url=url)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


def test_webhook_secret_needs_a_url_and_a_given_secret_is_kept(
    client: TestClient, account: Account
) -> None:
    dataset = tiny_dataset(client, account, rows=50)
    alone = submit_job(client, account, **small_job_body(dataset), webhook_secret="s" * 20)
    assert alone.status_code == 422 and "webhook_url" in alone.json()["message"]
    given = submit_job(
        client,
        account,
        **small_job_body(dataset),
        webhook_url="https://hooks.example.com/dlp",
        webhook_secret="my-own-secret-0123",
    )
    assert given.status_code == 202, given.text
    assert given.json()["webhook_secret"] == "my-own-secret-0123"

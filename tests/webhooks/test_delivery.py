"""Delivery against a live receiver on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dlp.db import utcnow
from dlp.platform import Platform
from dlp.training.models import TrainingJob
from dlp.webhooks import repository
from dlp.webhooks.delivery import (
    MAX_BACKOFF_SECONDS,
    backoff_seconds,
    deliver_due_webhooks,
    schedule_webhook,
)
from dlp.webhooks.signing import verify
from tests.webhooks.conftest import (
    SECRET,
    PlatformFactory,
    Receiver,
    create_job,
    fake_dns,
    load_job,
    make_due,
)


def test_delivers_the_signed_job_json(platform: Platform, receiver: Receiver) -> None:
    job_id = create_job(platform, receiver.url())

    assert deliver_due_webhooks(platform) == 1

    [request] = receiver.requests
    assert request.path == "/hook"
    assert verify(request.body, SECRET, request.headers["X-DLP-Signature"])
    assert request.headers["X-DLP-Signature"].startswith("sha256=")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-DLP-Event"] == "training.job.succeeded"
    assert request.headers["User-Agent"] == "dlp-webhooks"
    assert request.headers["Host"] == f"127.0.0.1:{receiver.port}"
    uuid.UUID(request.headers["X-DLP-Delivery"])
    payload = request.json()
    assert payload["id"] == str(job_id)
    assert payload["status"] == "succeeded"
    assert payload["name"] == "m"
    assert payload["progress"] == {"epoch": 0, "total_epochs": 1}
    assert "webhook_secret" not in payload

    job = load_job(platform, job_id)
    assert job.webhook_status == "delivered"
    assert job.webhook_attempts == 1
    assert job.webhook_next_at is None
    assert job.webhook_error is None
    assert deliver_due_webhooks(platform) == 0
    assert len(receiver.requests) == 1


def test_event_names_the_terminal_status(platform: Platform, receiver: Receiver) -> None:
    create_job(platform, receiver.url(), status="failed")
    create_job(platform, receiver.url(), status="cancelled")

    assert deliver_due_webhooks(platform) == 2

    events = sorted(r.headers["X-DLP-Event"] for r in receiver.requests)
    assert events == ["training.job.cancelled", "training.job.failed"]


def test_retries_with_backoff_until_delivered(platform: Platform, receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 200]
    job_id = create_job(platform, receiver.url())

    for attempt in (1, 2):
        before = utcnow()
        assert deliver_due_webhooks(platform) == 1
        job = load_job(platform, job_id)
        assert job.webhook_status == "pending"
        assert job.webhook_attempts == attempt
        assert job.webhook_error == "HTTP 500 from the receiver"
        assert job.webhook_next_at is not None
        wait = (job.webhook_next_at - before).total_seconds()
        assert 2**attempt <= wait <= 2**attempt * 1.1 + 1
        assert deliver_due_webhooks(platform) == 0, "not due before its backoff ends"
        make_due(platform, job_id)

    assert deliver_due_webhooks(platform) == 1

    job = load_job(platform, job_id)
    assert job.webhook_status == "delivered"
    assert job.webhook_attempts == 3
    assert job.webhook_error is None
    assert len(receiver.requests) == 3
    assert len({r.headers["X-DLP-Delivery"] for r in receiver.requests}) == 3
    assert all(verify(r.body, SECRET, r.headers["X-DLP-Signature"]) for r in receiver.requests)


def test_gives_up_after_max_attempts(make_platform: PlatformFactory, receiver: Receiver) -> None:
    platform = make_platform(webhook_max_attempts=3)
    receiver.default_status = 503
    job_id = create_job(platform, receiver.url())

    for _ in range(3):
        make_due(platform, job_id)
        assert deliver_due_webhooks(platform) == 1

    job = load_job(platform, job_id)
    assert job.webhook_status == "failed"
    assert job.webhook_attempts == 3
    assert job.webhook_error == "HTTP 503 from the receiver (gave up after 3 attempts)"
    assert job.webhook_next_at is None
    make_due(platform, job_id)
    assert deliver_due_webhooks(platform) == 0
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed(platform: Platform, receiver: Receiver) -> None:
    receiver.statuses = [302]
    job_id = create_job(platform, receiver.url())

    deliver_due_webhooks(platform)

    assert [r.path for r in receiver.requests] == ["/hook"]
    job = load_job(platform, job_id)
    assert job.webhook_status == "pending"
    assert job.webhook_error == "HTTP 302 from the receiver (redirects are not followed)"


def test_an_unreachable_receiver_is_retried(platform: Platform) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    job_id = create_job(platform, f"http://127.0.0.1:{closed_port}/hook")

    assert deliver_due_webhooks(platform) == 1

    job = load_job(platform, job_id)
    assert job.webhook_status == "pending"
    assert job.webhook_attempts == 1
    assert job.webhook_error is not None
    assert job.webhook_error.startswith("ConnectError")
    assert "\n" not in job.webhook_error


def test_a_slow_receiver_times_out(make_platform: PlatformFactory) -> None:
    platform = make_platform(webhook_timeout_seconds=0.5)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        job_id = create_job(platform, f"http://127.0.0.1:{silent.getsockname()[1]}/hook")

        assert deliver_due_webhooks(platform) == 1

    job = load_job(platform, job_id)
    assert job.webhook_status == "pending"
    assert job.webhook_error is not None
    assert "Timeout" in job.webhook_error


def test_loopback_is_refused_at_delivery_without_sending(
    make_platform: PlatformFactory, receiver: Receiver
) -> None:
    platform = make_platform(webhook_allow_private=False)
    job_id = create_job(platform, receiver.url())
    named_id = create_job(platform, receiver.url(host="localhost"))

    assert deliver_due_webhooks(platform) == 2

    assert receiver.requests == []
    job = load_job(platform, job_id)
    assert job.webhook_status == "failed"
    assert job.webhook_attempts == 1
    assert job.webhook_error is not None
    assert "loopback" in job.webhook_error
    named = load_job(platform, named_id)
    assert named.webhook_status == "failed"
    assert named.webhook_error is not None
    assert "local or cloud-metadata" in named.webhook_error


def test_a_name_rebound_to_loopback_is_refused_at_delivery(
    make_platform: PlatformFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = make_platform(webhook_allow_private=False)
    job_id = create_job(platform, receiver.url(host="hooks.example"))
    fake_dns(monkeypatch, {"hooks.example": ["93.184.216.34", "127.0.0.1"]})

    deliver_due_webhooks(platform)

    assert receiver.requests == []
    job = load_job(platform, job_id)
    assert job.webhook_status == "failed"
    assert job.webhook_error is not None
    assert "resolves to a loopback address (127.0.0.1)" in job.webhook_error


def test_connects_to_the_checked_address_and_keeps_the_host_name(
    platform: Platform, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "hooks.invalid" can never resolve for real: the request arriving proves the
    # client connected to the address the guard checked, without a second lookup.
    lookups = fake_dns(monkeypatch, {"hooks.invalid": ["127.0.0.1"]})
    job_id = create_job(platform, receiver.url(host="hooks.invalid"))

    deliver_due_webhooks(platform)

    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.invalid:{receiver.port}"
    assert lookups == ["hooks.invalid"]
    assert load_job(platform, job_id).webhook_status == "delivered"


def test_a_name_with_several_addresses_falls_back_to_the_next(
    platform: Platform, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The receiver listens on 127.0.0.1 only: 127.0.0.2 refuses the connection.
    fake_dns(monkeypatch, {"hooks.invalid": ["127.0.0.2", "127.0.0.1"]})
    job_id = create_job(platform, receiver.url(host="hooks.invalid"))

    deliver_due_webhooks(platform)

    assert len(receiver.requests) == 1
    assert load_job(platform, job_id).webhook_status == "delivered"


def test_without_a_secret_the_body_is_sent_unsigned(platform: Platform, receiver: Receiver) -> None:
    create_job(platform, receiver.url(), secret=None)

    deliver_due_webhooks(platform)

    [request] = receiver.requests
    assert "X-DLP-Signature" not in request.headers


def test_concurrent_workers_deliver_each_job_exactly_once(
    make_platform: PlatformFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = [make_platform(), make_platform()]  # two engines, as two processes have
    job_ids = {create_job(platform=workers[0], webhook_url=receiver.url()) for _ in range(4)}
    # Both workers read the same due rows before either claims one: the race
    # the conditional claim must settle.
    both_read = threading.Barrier(2, timeout=30)
    real_list_due = repository.list_due

    def list_due_then_wait(*args: Any, **kwargs: Any) -> Any:
        rows = real_list_due(*args, **kwargs)
        both_read.wait()
        return rows

    monkeypatch.setattr(repository, "list_due", list_due_then_wait)

    with ThreadPoolExecutor(2) as pool:
        attempted = list(pool.map(deliver_due_webhooks, workers))

    assert sum(attempted) == 4
    delivered = sorted(r.json()["id"] for r in receiver.requests)
    assert delivered == sorted(str(job_id) for job_id in job_ids)
    for job_id in job_ids:
        job = load_job(workers[1], job_id)
        assert (job.webhook_status, job.webhook_attempts) == ("delivered", 1)


def test_only_one_of_two_claims_on_the_same_read_wins(platform: Platform) -> None:
    job_id = create_job(platform, "https://example.com/hook")
    seen = load_job(platform, job_id).webhook_next_at
    assert seen is not None
    lease_until = utcnow() + timedelta(minutes=5)

    results = []
    for _ in range(2):
        with platform.sessions.begin() as session:
            results.append(
                repository.claim(session, job_id, seen_next_at=seen, lease_until=lease_until)
            )

    assert results == [True, False]
    job = load_job(platform, job_id)
    assert job.webhook_attempts == 1
    assert job.webhook_next_at == lease_until


def test_a_lost_claim_does_not_overwrite_the_new_owner(platform: Platform) -> None:
    job_id = create_job(platform, "https://example.com/hook")
    seen = load_job(platform, job_id).webhook_next_at
    assert seen is not None
    first, second = utcnow() - timedelta(seconds=1), utcnow() + timedelta(minutes=5)
    with platform.sessions.begin() as session:
        assert repository.claim(session, job_id, seen_next_at=seen, lease_until=first)
    with platform.sessions.begin() as session:  # the first lease expired; a second worker
        assert repository.claim(session, job_id, seen_next_at=first, lease_until=second)
    with platform.sessions.begin() as session:
        assert not repository.mark_delivered(session, job_id, claimed_until=first)
        assert repository.mark_delivered(session, job_id, claimed_until=second)
    assert load_job(platform, job_id).webhook_status == "delivered"


def test_an_interrupted_last_attempt_is_given_up(
    make_platform: PlatformFactory, receiver: Receiver
) -> None:
    platform = make_platform(webhook_max_attempts=2)
    job_id = create_job(platform, receiver.url())
    with platform.sessions.begin() as session:  # a worker claimed the last attempt and died
        job = repository.get_claimed(session, job_id)
        assert job is not None
        job.webhook_attempts = 2
    make_due(platform, job_id)

    assert deliver_due_webhooks(platform) == 0

    assert receiver.requests == []
    job = load_job(platform, job_id)
    assert job.webhook_status == "failed"
    assert job.webhook_error == "gave up after 2 attempts; the last one was interrupted"


def test_jobs_without_a_webhook_are_never_scheduled(platform: Platform) -> None:
    job_id = create_job(platform, None)

    assert deliver_due_webhooks(platform) == 0
    job = load_job(platform, job_id)
    assert (job.webhook_status, job.webhook_next_at) == (None, None)


def test_schedule_webhook_owes_a_fresh_delivery_in_utc() -> None:
    job = TrainingJob(webhook_url="https://example.com/hook", webhook_attempts=3)
    job.webhook_error, job.webhook_status = "HTTP 500", "failed"
    now = datetime(2030, 1, 2, 5, 30, tzinfo=timezone(timedelta(hours=2)))

    schedule_webhook(job, now)

    assert job.webhook_status == "pending"
    assert job.webhook_next_at == now
    assert job.webhook_next_at is not None
    assert job.webhook_next_at.tzinfo == UTC
    assert job.webhook_attempts == 0
    assert job.webhook_error is None


def test_schedule_webhook_leaves_a_job_without_url_alone() -> None:
    job = TrainingJob(webhook_url=None)

    schedule_webhook(job, utcnow())

    assert (job.webhook_status, job.webhook_next_at) == (None, None)


def test_the_batch_size_is_limited(platform: Platform, receiver: Receiver) -> None:
    for _ in range(3):
        create_job(platform, receiver.url())

    assert deliver_due_webhooks(platform, limit=2) == 2
    assert deliver_due_webhooks(platform, limit=2) == 1
    assert len(receiver.requests) == 3


@pytest.mark.parametrize(
    ("attempts", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0), (8, 256.0), (9, 300.0)]
)
def test_backoff_doubles_up_to_the_cap(attempts: int, expected: float) -> None:
    assert backoff_seconds(attempts) == expected
    assert expected <= backoff_seconds(attempts, jitter=0.999) <= min(expected * 1.1, 300.0)


def test_backoff_stays_capped_for_huge_attempt_counts() -> None:
    assert backoff_seconds(10_000, jitter=0.999) == MAX_BACKOFF_SECONDS

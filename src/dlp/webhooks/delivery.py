"""Durable delivery of job webhooks: claim, POST, record; retried with backoff.

The worker marks a delivery pending (``schedule_webhook``) in the transaction
that ends the job, so a job never ends without its webhook being owed. A
housekeeping loop in every worker then calls ``deliver_due_webhooks``. Each
database step is its own short transaction, and none is open during the HTTP
request: a slow receiver must not hold locks on the jobs table.

A delivery is at-least-once: if a worker dies after sending but before
recording the outcome, its claim expires and another worker sends again.
"""

from __future__ import annotations

import functools
import random
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from dlp.config import Settings
from dlp.db import session_scope, utcnow
from dlp.errors import ServiceUnavailableError, ValidationError
from dlp.training.models import TrainingJob
from dlp.training.schemas import TrainingJobOut
from dlp.webhooks import repository
from dlp.webhooks.signing import sign
from dlp.webhooks.ssrf import (
    WebhookTarget,
    parse_ip_literal,
    parse_webhook_url,
    resolve_public_addresses,
)

if TYPE_CHECKING:
    from dlp.platform import Platform

log = structlog.get_logger(__name__)

USER_AGENT = "dlp-webhooks"
MAX_BACKOFF_SECONDS = 300.0
JITTER_FRACTION = 0.1
MAX_ADDRESSES_TRIED = 2
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class _Delivery:
    """One claimed delivery, read in the claim's transaction."""

    job_id: uuid.UUID
    url: str
    secret: str | None
    event: str
    body: bytes
    attempt: int
    claimed_until: datetime


@dataclass(frozen=True)
class _Outcome:
    """What one attempt came to; ``error`` None means delivered."""

    error: str | None = None
    permanent: bool = False
    status_code: int | None = None


def schedule_webhook(job: TrainingJob, now: datetime) -> None:
    """Owe the job's webhook (if it has one) from ``now``; call as the job turns terminal."""
    if job.webhook_url is None:
        return
    job.webhook_status = repository.PENDING
    # SQLite keeps timestamps as text without a zone: store UTC so comparisons hold.
    job.webhook_next_at = now.astimezone(UTC)
    job.webhook_attempts = 0
    job.webhook_error = None


def backoff_seconds(attempts: int, jitter: float = 0.0) -> float:
    """Wait after ``attempts`` failed tries: 2**attempts seconds, at most 300.

    ``jitter`` in [0, 1) stretches the wait by up to 10%, so that the retries of
    many jobs that failed together spread out.
    """
    base = float(2 ** min(max(attempts, 0), 16))
    return min(MAX_BACKOFF_SECONDS, base * (1 + JITTER_FRACTION * jitter))


def delivery_lease_seconds(settings: Settings) -> float:
    """How long a claim lasts: longer than the slowest attempt can take."""
    # Connect, TLS handshake, write and read may each take the whole timeout,
    # for each address tried; a minute on top covers the database steps.
    return 60.0 + 4 * MAX_ADDRESSES_TRIED * settings.webhook_timeout_seconds


def deliver_due_webhooks(platform: Platform, *, limit: int = 20) -> int:
    """Send up to ``limit`` due webhooks and record each outcome; return how many were tried."""
    settings = platform.settings
    with session_scope(platform.sessions) as session:
        due = [
            (job.id, job.webhook_next_at, job.webhook_attempts)
            for job in repository.list_due(session, now=utcnow(), limit=limit)
        ]
    attempted = 0
    for job_id, seen_next_at, attempts in due:
        if seen_next_at is None:
            continue
        if attempts >= settings.webhook_max_attempts:
            _give_up_interrupted(platform, job_id, seen_next_at, attempts)
            continue
        delivery = _claim(platform, job_id, seen_next_at)
        if delivery is None:
            continue
        attempted += 1
        outcome = _send(delivery, settings)
        _record(platform, delivery, outcome)
    return attempted


def _claim(platform: Platform, job_id: uuid.UUID, seen_next_at: datetime) -> _Delivery | None:
    lease_until = utcnow() + timedelta(seconds=delivery_lease_seconds(platform.settings))
    with session_scope(platform.sessions) as session:
        if not repository.claim(
            session, job_id, seen_next_at=seen_next_at, lease_until=lease_until
        ):
            return None
        job = repository.get_claimed(session, job_id)
        if job is None:
            return None
        if job.webhook_url is None:
            repository.mark_failed(
                session, job_id, claimed_until=lease_until, error="the job has no webhook_url"
            )
            return None
        return _Delivery(
            job_id=job.id,
            url=job.webhook_url,
            secret=job.webhook_secret,
            event=f"training.job.{job.status}",
            body=TrainingJobOut.from_job(job).model_dump_json().encode(),
            attempt=job.webhook_attempts,
            claimed_until=lease_until,
        )


def _give_up_interrupted(
    platform: Platform, job_id: uuid.UUID, seen_next_at: datetime, attempts: int
) -> None:
    # The last allowed attempt was claimed but never recorded (its worker died):
    # its lease expired, and no attempt is left to make.
    error = f"gave up after {attempts} attempts; the last one was interrupted"
    with session_scope(platform.sessions) as session:
        kept = repository.mark_failed(session, job_id, claimed_until=seen_next_at, error=error)
    if kept:
        log.warning("webhook.failed", job_id=str(job_id), attempt=attempts, error=error)


def _send(delivery: _Delivery, settings: Settings) -> _Outcome:
    allow_private = settings.webhook_allow_private
    try:
        target = parse_webhook_url(delivery.url, allow_private=allow_private)
        addresses = resolve_public_addresses(target.host, target.port, allow_private=allow_private)
    except ValidationError as exc:
        return _Outcome(error=f"refused: {exc.message}", permanent=True)
    except ServiceUnavailableError as exc:
        return _Outcome(error=exc.message)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-DLP-Event": delivery.event,
        "X-DLP-Delivery": str(uuid.uuid4()),
        # The socket goes to a checked address; the receiver still sees its own name.
        "Host": target.url.netloc.decode("ascii"),
    }
    if delivery.secret:
        headers["X-DLP-Signature"] = sign(delivery.body, delivery.secret)
    error = "no address to connect to"
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        try:
            status_code = _post(target, address, headers, delivery.body, settings)
        except httpx.ConnectError as exc:
            # Nothing was sent, so the next address may be tried safely.
            error = _describe(exc)
            continue
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            return _Outcome(error=_describe(exc))
        if 200 <= status_code < 300:
            return _Outcome(status_code=status_code)
        note = " (redirects are not followed)" if 300 <= status_code < 400 else ""
        return _Outcome(
            error=f"HTTP {status_code} from the receiver{note}", status_code=status_code
        )
    return _Outcome(error=error)


def _post(
    target: WebhookTarget, address: str, headers: dict[str, str], body: bytes, settings: Settings
) -> int:
    """POST ``body`` to ``target`` over a connection to ``address``; return the status code."""
    extensions: dict[str, Any] = {}
    if target.url.scheme == "https" and parse_ip_literal(target.host) is None:
        # TLS names the host (SNI) and checks the certificate against it, not the IP.
        extensions["sni_hostname"] = target.host.removesuffix(".")
    # A client per delivery: its pool is keyed by IP, and a connection opened
    # for one host name must never carry a request meant for another.
    with httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,  # an environment proxy would resolve the name again
        verify=_tls_context(),
    ) as client:
        request = client.build_request(
            "POST",
            target.url.copy_with(host=address),
            content=body,
            headers=headers,
            extensions=extensions,
        )
        response = client.send(request, stream=True)
        response.close()  # the body is not needed; do not read an unbounded one
        return response.status_code


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:MAX_ERROR_LENGTH]


def _record(platform: Platform, delivery: _Delivery, outcome: _Outcome) -> None:
    settings = platform.settings
    fields: dict[str, Any] = {
        "job_id": str(delivery.job_id),
        "attempt": delivery.attempt,
        "webhook_event": delivery.event,
        "status_code": outcome.status_code,
    }
    with session_scope(platform.sessions) as session:
        if outcome.error is None:
            kept = repository.mark_delivered(
                session, delivery.job_id, claimed_until=delivery.claimed_until
            )
            name = "webhook.delivered"
        elif outcome.permanent or delivery.attempt >= settings.webhook_max_attempts:
            error = outcome.error
            if not outcome.permanent:
                error = f"{error} (gave up after {delivery.attempt} attempts)"
            kept = repository.mark_failed(
                session, delivery.job_id, claimed_until=delivery.claimed_until, error=error
            )
            name, fields["error"] = "webhook.failed", error
        else:
            wait = backoff_seconds(delivery.attempt, random.random())  # noqa: S311 (jitter)
            kept = repository.schedule_retry(
                session,
                delivery.job_id,
                claimed_until=delivery.claimed_until,
                next_at=utcnow() + timedelta(seconds=wait),
                error=outcome.error,
            )
            name, fields["error"], fields["retry_in"] = "webhook.retry", outcome.error, wait
    if not kept:
        # The lease ran out mid-attempt and another worker took the delivery over.
        log.warning("webhook.claim_lost", **fields)
    elif outcome.error is None:
        log.info(name, **fields)
    else:
        log.warning(name, **fields)

"""Fixtures of the webhook tests: real platforms (SQLite and PostgreSQL) and a live receiver."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from dlp.auth.models import Organization
from dlp.config import Settings
from dlp.db import session_scope, utcnow
from dlp.migrate import upgrade_database
from dlp.platform import Platform, build_platform
from dlp.training.models import TrainingJob
from dlp.webhooks.delivery import schedule_webhook
from tests.conftest import (
    POSTGRES_URL,
    _create_postgres_database,
    _drop_postgres_database,
    _unavailable,
)

SECRET = "whsec_test-secret"


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A live HTTP server on 127.0.0.1 that records requests and answers scripted statuses."""

    port: int
    scheme: str = "http"
    statuses: list[int] = field(default_factory=list)
    """Answers to give in order; 200 once they run out."""
    default_status: int = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        """A URL of this receiver under ``host``."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def next_status(self, request: Received) -> int:
        """Record ``request`` and pick the status to answer it with."""
        with self.lock:
            self.requests.append(request)
            return self.statuses.pop(0) if self.statuses else self.default_status


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        received = Received(self.path, dict(self.headers.items()), body)
        status = self.server.receiver.next_status(received)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


def start_receiver(tls: ssl.SSLContext | None = None) -> tuple[Receiver, Callable[[], None]]:
    """Serve on a free port of 127.0.0.1 (over TLS when given a context); return a stopper."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(port=server.server_address[1], scheme="https" if tls else "http")
    server.receiver = receiver
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return receiver, stop


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A live receiver answering 200 unless told otherwise."""
    server, stop = start_receiver()
    try:
        yield server
    finally:
        stop()


PlatformFactory = Callable[..., Platform]


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.scaleout)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """A migrated database: SQLite in the data dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        upgrade_database(Settings(data_dir=tmp_path, database_url=None).sqlalchemy_url)
        yield None
        return
    if not POSTGRES_URL:
        _unavailable("set DLP_TEST_POSTGRES_URL to run the webhook tests on PostgreSQL")
    name, url = _create_postgres_database()
    try:
        upgrade_database(Settings(data_dir=tmp_path, database_url=url).sqlalchemy_url)
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture
def make_platform(database_url: str | None, tmp_path: Path) -> Iterator[PlatformFactory]:
    """Build platforms on the test's database (one per simulated worker process)."""
    built: list[Platform] = []

    def make(**overrides: Any) -> Platform:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "database_url": database_url,
            "webhook_allow_private": True,
            "webhook_timeout_seconds": 5.0,
        }
        platform = build_platform(Settings(**{**values, **overrides}))
        built.append(platform)
        return platform

    yield make
    for platform in built:
        platform.close()


@pytest.fixture
def platform(make_platform: PlatformFactory) -> Platform:
    """A platform that may deliver to loopback (the receiver lives there)."""
    return make_platform()


def create_job(
    platform: Platform,
    webhook_url: str | None,
    *,
    secret: str | None = SECRET,
    status: str = "succeeded",
) -> uuid.UUID:
    """A terminal job row with its webhook scheduled, as the worker leaves it."""
    with session_scope(platform.sessions) as session:
        organization = Organization(name="webhooks")
        session.add(organization)
        session.flush()
        job = TrainingJob(
            organization_id=organization.id,
            name="m",
            status=status,
            config={},
            total_epochs=1,
            webhook_url=webhook_url,
            webhook_secret=secret,
            completed_at=utcnow(),
        )
        session.add(job)
        session.flush()
        schedule_webhook(job, utcnow())
        return job.id


def load_job(platform: Platform, job_id: uuid.UUID) -> TrainingJob:
    """The job as stored now."""
    with session_scope(platform.sessions) as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def make_due(platform: Platform, job_id: uuid.UUID) -> None:
    """Skip the backoff wait: move the next attempt into the past."""
    with session_scope(platform.sessions) as session:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id)
            .values(webhook_next_at=utcnow() - timedelta(seconds=1))
        )


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer lookups of the given names (an empty list: the name does not resolve);
    other names resolve for real. Returns the names looked up, in order."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        if not answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups

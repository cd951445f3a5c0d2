"""Test fixtures: each API test runs three times: on the embedded shape, on PostgreSQL +
Redis, and on PostgreSQL + Redis + S3 (a local S3 server).

Each shape gets its own data directory, database and a real Celery worker process
(``python -m dlp worker``), exactly as ``dlp serve`` / ``dlp worker`` run them.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from dlp.auth import security
from dlp.config import Settings
from dlp.main import create_app
from dlp.migrate import upgrade_database
from tests.live import start_worker, stop_process
from tests.s3 import new_bucket, s3_endpoint  # noqa: F401 (s3_endpoint: for every package)

POSTGRES_URL = os.environ.get("DLP_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("DLP_TEST_REDIS_URL", "")
IN_CI = bool(os.environ.get("CI"))


# The suite sends thousands of requests from one test-client address: its installations
# get budgets no test reaches (tests of the limits set their own, small ones).
UNREACHED_RATE_LIMITS = {
    name: "1000000/minute"
    for name in (
        "rate_limit_api",
        "rate_limit_api_per_ip",
        "rate_limit_predictions",
        "rate_limit_predictions_per_ip",
        "login_failures_per_account",
        "login_failures_per_ip",
        "registrations_per_ip",
    )
}


def _unavailable(reason: str) -> None:
    """Scale-out tests fail in CI (where the services must exist) and skip elsewhere."""
    if IN_CI:
        pytest.fail(f"scale-out services unreachable in CI: {reason}")
    pytest.skip(reason)


def _check_scaleout_services() -> None:
    if not POSTGRES_URL or not REDIS_URL:
        _unavailable("set DLP_TEST_POSTGRES_URL and DLP_TEST_REDIS_URL to run scale-out tests")
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL at {POSTGRES_URL}: {exc}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {REDIS_URL}: {exc}")


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2id at its minimal cost inside this test process.

    Nearly every test registers and logs in a user; at the production cost (about 0.15 s a
    hash on this machine) that alone takes minutes of the suite. Servers and workers the
    tests start as processes keep the production parameters.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        )
        yield


@dataclass
class Deployment:
    """One running shape: its settings, the worker's environment and log."""

    name: str
    settings: Settings
    env: dict[str, str]
    worker_log: Path

    @property
    def store_root(self) -> Path:
        """The local file store's folder; a test that reads or alters stored files there
        is skipped on the "s3" shape, whose files are in a bucket (it runs on the others)."""
        if self.settings.storage_url:
            pytest.skip("reads the local file store; this shape keeps its files in S3")
        return self.settings.resolved_data_dir / "files"


def _settings_env(settings: Settings) -> dict[str, str]:
    env = {
        "DLP_DATA_DIR": str(settings.data_dir),
        "DLP_LOG_FORMAT": "json",
        # Short leases, so tests see the reaper act in seconds.
        "DLP_JOB_HEARTBEAT_SECONDS": "1",
        "DLP_JOB_LEASE_SECONDS": "10",
    }
    for name in ("database_url", "broker_url", "redis_url"):
        value = getattr(settings, name)
        if value:
            env[f"DLP_{name.upper()}"] = value
    return env


def fast_lease_installation(data_dir: Path, **env: str) -> tuple[Settings, dict[str, str]]:
    """A migrated embedded installation in ``data_dir`` of its own (its workers may be
    killed without disturbing other tests), and the environment of workers on it: JSON
    logs, a heartbeat every 0.5 s and leases of 3 s, so a dead worker's job is taken back
    quickly. ``env`` adds or overrides variables."""
    settings = Settings(data_dir=data_dir, **UNREACHED_RATE_LIMITS)
    data_dir.mkdir()
    upgrade_database(settings.sqlalchemy_url)
    worker_env = {
        **{f"DLP_{name.upper()}": value for name, value in UNREACHED_RATE_LIMITS.items()},
        "DLP_DATA_DIR": str(data_dir),
        "DLP_LOG_FORMAT": "json",
        "DLP_JOB_HEARTBEAT_SECONDS": "0.5",
        "DLP_JOB_LEASE_SECONDS": "3",
        **env,
    }
    return settings, worker_env


def _create_postgres_database() -> tuple[str, str]:
    name = f"dlp_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    return name, f"{base}/{name}"


def _drop_postgres_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def installation(
    shape: str,
    data_dir: Path,
    *,
    redis_url: str | None = None,
    **overrides: Any,
) -> Iterator[Deployment]:
    """A migrated database and a file store for one run shape, without any worker.

    The scale-out shape gets a database of its own on the test PostgreSQL and the
    Redis at ``redis_url`` (default: the test Redis, flushed); ``overrides`` are
    further settings, also handed to workers started with ``Deployment.env``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    overrides = UNREACHED_RATE_LIMITS | overrides
    database_name = None
    if shape == "embedded":
        settings = Settings(data_dir=data_dir, **overrides)
    else:
        _check_scaleout_services()
        redis_url = redis_url or REDIS_URL
        redis.Redis.from_url(redis_url).flushdb()
        database_name, database_url = _create_postgres_database()
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            broker_url=redis_url,
            redis_url=redis_url,
            **overrides,
        )
    upgrade_database(settings.sqlalchemy_url)
    env = _settings_env(settings) | {
        f"DLP_{name.upper()}": str(value) for name, value in overrides.items()
    }
    try:
        yield Deployment(shape, settings, env, data_dir / "worker.log")
    finally:
        if database_name is not None:
            _drop_postgres_database(database_name)


@pytest.fixture(scope="session", params=["embedded", "scaleout", "s3"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A migrated database, a file store and a live worker process for one run shape:
    "s3" is the scale-out shape with its files in a bucket of the local S3 server."""
    data_dir = tmp_path_factory.mktemp(f"dlp-{request.param}")
    shape, overrides = request.param, {}
    if shape == "s3":
        request.getfixturevalue("s3_endpoint")
        shape, overrides = "scaleout", {"storage_url": f"s3://{new_bucket()}/dlp"}
    with installation(shape, data_dir, **overrides) as deployed:
        worker = start_worker(deployed.env, deployed.worker_log)
        try:
            yield deployed
        finally:
            stop_process(worker)


@pytest.fixture(scope="session")
def client(deployment: Deployment) -> Iterator[TestClient]:
    """The API of the deployment, called over HTTP through its ASGI app."""
    with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Account:
    """A registered user and the headers that authenticate them."""

    id: str
    username: str
    password: str
    organization_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """Bearer headers for this account."""
        return {"Authorization": f"Bearer {self.access_token}"}


def register_account(client: TestClient, username: str | None = None) -> Account:
    """Register and log in a fresh user."""
    username = username or f"user{uuid.uuid4().hex[:10]}"
    password = "correct horse battery"
    created = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    tokens = client.post(
        "/api/v1/auth/login", data={"username": username, "password": password}
    ).json()
    user = created.json()
    return Account(
        id=user["id"],
        username=username,
        password=password,
        organization_id=user["organization_id"],
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


@pytest.fixture
def account(client: TestClient) -> Account:
    """A fresh user with a personal organization."""
    return register_account(client)


@pytest.fixture
def other_account(client: TestClient) -> Account:
    """A second, unrelated user (another tenant)."""
    return register_account(client)


@pytest.fixture(params=["embedded", "scaleout"])
def shape(request: pytest.FixtureRequest) -> str:
    """Each run shape in turn, for tests that build an installation of their own."""
    return str(request.param)


# For the slowest many-worker scenarios: they run on the scale-out shape, the one that runs
# many workers in production; the embedded shape takes the same code path in other tests.
scaleout_only = pytest.mark.parametrize("shape", ["scaleout"], indirect=True)


@pytest.fixture
def served(client: TestClient, account: Account) -> Any:
    """A model name with one version, aliased ``production``, and /predict's answer for ROWS
    (a ``tests.factories.Served``)."""
    # Imported here: tests.factories imports this module.
    from tests.factories import make_served

    return make_served(client, account)

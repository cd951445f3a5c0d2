"""An API process with small rate limits on the session's deployment (its database, files
and Redis), for the tests of rate limits and sign-in throttling."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import UNREACHED_RATE_LIMITS, Deployment

NO_LIMITS = dict.fromkeys(UNREACHED_RATE_LIMITS, "")
LOGIN = "/api/v1/auth/login"


def fresh_address() -> str:
    """A client address no other test used (Redis counters outlive one app)."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


@contextmanager
def limited_api(
    deployment: Deployment, *, address: str | None = None, **limits: str
) -> Iterator[TestClient]:
    """A fresh API process on ``deployment`` where only ``limits`` apply, called from
    ``address`` (default: a fresh one)."""
    settings = deployment.settings.model_copy(update=NO_LIMITS | limits)
    client = (address or fresh_address(), 50000)
    with TestClient(create_app(settings), client=client, raise_server_exceptions=False) as api:
        yield api


def login(api: TestClient, username: str, password: str) -> int:
    """The status of one sign-in attempt."""
    return int(api.post(LOGIN, data={"username": username, "password": password}).status_code)

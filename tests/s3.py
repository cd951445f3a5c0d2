"""A local S3-compatible server for tests: moto's server mode, as a process.

Not a test module: ``tests/conftest.py`` offers its ``s3_endpoint`` fixture to every test
(the storage tests and the many-hosts test), which make buckets with ``new_bucket``.

The server runs in a process of its own, not a thread of the test process, so the tests
reach it over HTTP exactly as dlp's API and workers would reach S3, and its memory
(it keeps every object) stays out of the test process's allocation measurements.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.live import free_port, stop_process

READY_SECONDS = 30.0
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto S3 server; ``AWS_*`` in this process's environment point at it
    (so the app under test and the workers it starts use it through boto3's own chain)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "MOTO_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_answering(url, process, log_path)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": url}.items():
                patch.setenv(name, value)
            yield url
    finally:
        stop_process(process)


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited early:\n{log_path.read_text()[-3000:]}")
        try:
            httpx.get(f"{url}/moto-api/", timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"moto not answering in time:\n{log_path.read_text()[-3000:]}")


@functools.cache
def s3_client() -> Any:
    """A plain boto3 client on the test server, for looking behind the store's back."""
    return boto3.client("s3")


def new_bucket(*, versioned: bool = False) -> str:
    """A fresh, empty bucket on the test server."""
    name = f"dlp-test-{uuid.uuid4().hex[:16]}"
    client = s3_client()
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name

"""HTTPS delivery: the socket goes to the checked IP, TLS still names and verifies the host."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlp.platform import Platform
from dlp.webhooks import delivery
from dlp.webhooks.delivery import deliver_due_webhooks
from dlp.webhooks.signing import verify
from tests.webhooks.conftest import SECRET, Receiver, create_job, load_job, start_receiver

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for DNS name ``name`` and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_receiver(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Receiver, list[str | None]]]:
    """An HTTPS receiver whose certificate names ``request.param``; the client trusts it."""
    cert, key = _self_signed(tmp_path, request.param)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    client_context = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(delivery, "_tls_context", lambda: client_context)
    receiver, stop = start_receiver(server_context)
    try:
        yield receiver, server_names
    finally:
        stop()


@pytest.mark.parametrize("tls_receiver", ["localhost"], indirect=True)
def test_https_sends_sni_and_verifies_the_name(
    platform: Platform, tls_receiver: tuple[Receiver, list[str | None]]
) -> None:
    receiver, server_names = tls_receiver
    job_id = create_job(platform, receiver.url(host="localhost"))

    assert deliver_due_webhooks(platform) == 1

    [request] = receiver.requests
    assert request.headers["Host"] == f"localhost:{receiver.port}"
    assert verify(request.body, SECRET, request.headers["X-DLP-Signature"])
    assert server_names == ["localhost"]
    assert load_job(platform, job_id).webhook_status == "delivered"


@pytest.mark.parametrize("tls_receiver", ["other.test"], indirect=True)
def test_https_refuses_a_certificate_for_another_name(
    platform: Platform, tls_receiver: tuple[Receiver, list[str | None]]
) -> None:
    receiver, _ = tls_receiver
    job_id = create_job(platform, receiver.url(host="localhost"))

    assert deliver_due_webhooks(platform) == 1

    assert receiver.requests == []
    job = load_job(platform, job_id)
    assert job.webhook_status == "pending"
    assert job.webhook_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in job.webhook_error

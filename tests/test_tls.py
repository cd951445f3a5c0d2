"""``dlp serve --ssl-certfile --ssl-keyfile``: https with a certificate the test makes."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from dlp.cli.main import app
from tests.live import live_server


def make_self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_answers_over_https_with_hsts_when_given_a_certificate(tmp_path: Path) -> None:
    cert, key = make_self_signed_certificate(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    with live_server(tmp_path / "data", "--no-worker", tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        answer = httpx.get(f"{server.url}/health", verify=trusted)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not vouch for it
            httpx.get(f"{server.url}/health")
        with pytest.raises(httpx.TransportError):  # plain http on the https port
            httpx.get(server.url.replace("https://", "http://") + "/health", timeout=5)


@pytest.mark.parametrize("given", ["--ssl-certfile", "--ssl-keyfile"])
def test_serve_refuses_a_certificate_without_its_key_and_a_key_without_its_certificate(
    tmp_path: Path, given: str
) -> None:
    cert, _key = make_self_signed_certificate(tmp_path)
    result = CliRunner().invoke(app, ["serve", given, str(cert)])
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())  # rich wraps it in a box
    assert "give both --ssl-certfile and --ssl-keyfile" in message

"""API7:2023 Server side request forgery: webhook URLs that reach inside the network.

The guard itself is tested in depth in tests/webhooks/test_ssrf.py (every address class,
DNS answers that resolve inside, legacy IPv4 spellings) and tests/webhooks/test_delivery.py
(``test_redirects_are_not_followed``: a receiver's 302 is never followed); here the API
refuses internal targets at submission, before any job exists.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import small_job_body, submit_job, tiny_dataset

INTERNAL_TARGETS = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://localhost:6379/",
    "http://LOCALHOST./hook",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/",
    "http://0.0.0.0:5432/",
    "http://10.0.0.1/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://user@127.0.0.1/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
]


def test_webhooks_to_internal_addresses_are_refused_at_submission(
    client: TestClient, account: Account
) -> None:
    """SSRF: loopback, metadata, private, IPv6-mapped and non-http webhook targets answer 422."""
    dataset = tiny_dataset(client, account, rows=50)
    for url in INTERNAL_TARGETS:
        response = submit_job(client, account, **small_job_body(dataset), webhook_url=url)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"] == "validation_error"
    jobs = client.get("/api/v1/training/jobs", headers=account.headers).json()
    assert jobs["total"] == 0

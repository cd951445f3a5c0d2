"""Organization quotas: the superuser sets them, uploads and job submissions over them
are refused, usage is shown, on both run shapes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import update

from dlp.auth.models import User
from dlp.db import create_db_engine, create_session_factory, session_scope
from dlp.main import create_app
from tests.conftest import Account, Deployment, register_account
from tests.factories import (
    small_job_body,
    submit_job,
    table_csv,
    tiny_dataset,
    upload,
    upload_ok,
    wait_for_job,
)

CURRENT = "/api/v1/organizations/current"
SMALL = table_csv(["a", "y"], [[i, i % 2] for i in range(20)])


def _error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body


def _superuser(deployment: Deployment, client: TestClient) -> Account:
    """A fresh account made the installation's superuser."""
    account = register_account(client)
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            session.execute(
                update(User).where(User.id == uuid.UUID(account.id)).values(is_superuser=True)
            )
    finally:
        engine.dispose()
    return account


def _set_quotas(
    client: TestClient, admin: Account, organization_id: str, **quotas: int | None
) -> Response:
    response: Response = client.patch(
        f"/api/v1/admin/organizations/{organization_id}", headers=admin.headers, json=quotas
    )
    return response


def _org_files(deployment: Deployment, account: Account) -> list[Path]:
    root = deployment.store_root / "orgs" / account.organization_id
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_only_the_superuser_sets_quotas(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    refused = _set_quotas(client, account, account.organization_id, max_concurrent_jobs=1)
    _error(refused, 403, "permission_denied")
    admin = _superuser(deployment, client)
    changed = _set_quotas(
        client, admin, account.organization_id, max_storage_bytes=5000, max_concurrent_jobs=2
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["overrides"] == {
        "max_storage_bytes": 5000,
        "max_concurrent_jobs": 2,
        "retention_days": None,
    }
    current = client.get(CURRENT, headers=account.headers).json()
    assert current["quotas"] == {
        "max_storage_bytes": 5000,
        "max_concurrent_jobs": 2,
        "retention_days": None,
    }
    assert current["usage"] == {"storage_bytes": 0, "active_jobs": 0}

    partly = _set_quotas(client, admin, account.organization_id, max_storage_bytes=None)
    assert partly.json()["quotas"] == {
        "max_storage_bytes": None,
        "max_concurrent_jobs": 2,
        "retention_days": None,
    }
    _error(_set_quotas(client, admin, str(uuid.uuid4()), max_concurrent_jobs=1), 404, "not_found")
    negative = _set_quotas(client, admin, account.organization_id, max_concurrent_jobs=-1)
    _error(negative, 422, "validation_error")


def test_upload_over_the_storage_quota_is_stopped_while_streaming(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    admin = _superuser(deployment, client)
    quota = len(SMALL) + 100
    assert _set_quotas(client, admin, account.organization_id, max_storage_bytes=quota).is_success
    kept = upload_ok(client, account, SMALL, "kept.csv")
    files = _org_files(deployment, account)
    big = table_csv(["a", "y"], [[i, i % 2] for i in range(2000)])
    refused = _error(upload(client, account, big, "big.csv"), 413, "payload_too_large")
    assert (
        f"storage quota of {quota:,} bytes ({len(SMALL):,} used, 100 left)" in (refused["message"])
    )

    def chunked() -> Any:
        yield (
            b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\na,y\n"
        )
        for _ in range(50):
            yield b"1,0\n" * 64
        yield b"\r\n--XYZ--\r\n"

    streamed = client.post(
        "/api/v1/datasets",
        headers={**account.headers, "content-type": "multipart/form-data; boundary=XYZ"},
        content=chunked(),
    )
    assert "storage quota" in _error(streamed, 413, "payload_too_large")["message"]
    listed = client.get("/api/v1/datasets", headers=account.headers).json()
    assert [d["id"] for d in listed["items"]] == [kept["id"]]
    assert _org_files(deployment, account) == files
    usage = client.get(CURRENT, headers=account.headers).json()["usage"]
    assert usage["storage_bytes"] == len(SMALL)


def test_jobs_over_the_concurrent_jobs_quota_conflict(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    dataset = tiny_dataset(client, account)
    admin = _superuser(deployment, client)
    assert _set_quotas(client, admin, account.organization_id, max_concurrent_jobs=1).is_success
    first = submit_job(client, account, **small_job_body(dataset))
    assert first.status_code == 202, first.text
    second = _error(submit_job(client, account, **small_job_body(dataset)), 409, "conflict")
    assert "concurrent-jobs quota is 1" in second["message"]
    job = wait_for_job(client, account, first.json()["id"])
    assert job["status"] == "succeeded", job

    batch = client.post(
        f"/api/v1/models/{job['model_id']}/batch-predictions",
        headers=account.headers,
        json={"dataset_id": dataset},
    )
    assert batch.status_code == 202, batch.text
    study = client.post(
        "/api/v1/tuning/studies",
        headers=account.headers,
        json={
            "dataset_id": dataset,
            "task": "classification",
            "target": "y",
            "model": {"type": "mlp"},
            "n_trials": 1,
            "training": {"epochs": 1},
        },
    )
    for response in (study, submit_job(client, account, **small_job_body(dataset))):
        assert "concurrent-jobs quota" in _error(response, 409, "conflict")["message"]
    wait_for_job(client, account, batch.json()["id"], collection="/api/v1/batch-predictions")


def test_installation_defaults_apply_to_organizations_without_their_own(
    deployment: Deployment, account: Account
) -> None:
    limited = deployment.settings.model_copy(
        update={"org_max_storage_mb": 0, "org_max_concurrent_jobs": 0}
    )
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        current = client.get(CURRENT, headers=account.headers).json()
        assert current["quotas"] == {
            "max_storage_bytes": 0,
            "max_concurrent_jobs": 0,
            "retention_days": None,
        }
        _error(upload(client, account, SMALL, "a.csv"), 413, "payload_too_large")
        admin = _superuser(deployment, client)
        raised = _set_quotas(client, admin, account.organization_id, max_storage_bytes=10_000)
        assert raised.json()["quotas"] == {
            "max_storage_bytes": 10_000,
            "max_concurrent_jobs": 0,
            "retention_days": None,
        }
        dataset = upload_ok(client, account, SMALL, "a.csv")["id"]
        job = submit_job(client, account, **small_job_body(dataset))
        assert "concurrent-jobs quota is 0" in _error(job, 409, "conflict")["message"]

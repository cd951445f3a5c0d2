"""Housekeeping: spent credentials, orphaned files both ways, checkpoint pruning, retention,
the one-claimer-per-interval lease and ``dlp housekeeping run``, on both shapes.

Ages are made by back-dating files and rows, never by waiting.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from dlp.auth.models import Invitation, RefreshToken, Role
from dlp.batch.models import BatchPrediction
from dlp.datasets.models import Dataset
from dlp.db import session_scope, utcnow
from dlp.housekeeping.repository import claim_run
from dlp.housekeeping.service import RUN_NAME, run_housekeeping, run_if_due
from dlp.platform import Platform, build_platform
from dlp.training.models import JobMetric, TrainingJob
from dlp.training.progress import checkpoint_key
from tests.conftest import Account, Deployment
from tests.factories import fresh_installation, table_csv, upload_ok

DAY = timedelta(days=1)


@pytest.fixture(scope="module", params=["embedded", "scaleout"])
def house(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, TestClient, Account, Platform]]:
    """An installation of its own (no worker), its superuser and a platform on it.

    The periodic pass is claimed for a day ahead, so the API's own loop never runs one
    in the middle of a test.
    """
    tmp_path = tmp_path_factory.mktemp(f"housekeeping-{request.param}")
    with fresh_installation(request.param, tmp_path) as (deployed, client, superuser):
        platform = build_platform(deployed.settings)
        with session_scope(platform.sessions) as session:
            claim_run(session, RUN_NAME, holder="tests", now=utcnow() + DAY, interval=DAY)
        try:
            yield deployed, client, superuser, platform
        finally:
            platform.close()


def _store_file(platform: Platform, key: str, *, age: timedelta = timedelta(0)) -> Path:
    platform.store.write_bytes(key, b"bytes")
    path = Path(platform.settings.file_store_url.removeprefix("file://")) / key
    when = (utcnow() - age).timestamp()
    os.utime(path, (when, when))
    return path


def _add(platform: Platform, *rows: Any) -> None:
    with session_scope(platform.sessions) as session:
        session.add_all(rows)


def _job(organization_id: str, status: str, **fields: Any) -> TrainingJob:
    return TrainingJob(
        organization_id=uuid.UUID(organization_id),
        name="job",
        status=status,
        config={"training": {"early_stopping_metric": "val_loss"}},
        total_epochs=5,
        **fields,
    )


def test_orphaned_folders_go_once_older_than_the_grace_period_and_owned_files_stay(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, client, account, platform = house
    org = account.organization_id
    dataset = upload_ok(client, account, table_csv(["a", "y"], [[1.0, 0], [2.0, 1]]))
    with session_scope(platform.sessions) as session:
        owned_key = session.get(Dataset, uuid.UUID(dataset["id"])).file_key  # type: ignore[union-attr]
    owned = _store_file(platform, owned_key, age=3 * DAY)
    stale = _store_file(platform, f"orgs/{org}/datasets/{uuid.uuid4()}/data.csv", age=3 * DAY)
    fresh = _store_file(platform, f"orgs/{org}/models/{uuid.uuid4()}/model.safetensors")
    stray_run = _store_file(platform, checkpoint_key(uuid.UUID(org), uuid.uuid4(), 1), age=3 * DAY)

    report = run_housekeeping(platform, utcnow())

    assert not stale.exists() and not stray_run.exists()
    assert fresh.exists(), "a file younger than the grace period may be a write in progress"
    assert owned.exists()
    assert report.orphan_folders_deleted >= 2


def test_a_ready_dataset_whose_file_vanished_is_marked_failed_not_deleted(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, client, account, platform = house
    dataset = upload_ok(client, account, table_csv(["a", "y"], [[1.0, 0], [2.0, 1]]))
    with session_scope(platform.sessions) as session:
        row = session.get(Dataset, uuid.UUID(dataset["id"]))
        assert row is not None
        row.created_at = utcnow() - 3 * DAY
        key = row.file_key
    platform.store.delete_prefix(key)

    report = run_housekeeping(platform, utcnow())

    shown = client.get(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).json()
    assert shown["status"] == "failed"
    assert "missing from the file store" in shown["error_message"]
    assert report.datasets_marked_failed >= 1


def test_pruning_keeps_best_and_last_of_a_failed_job_last_two_of_a_running_one(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, _, account, platform = house
    org = account.organization_id
    failed = _job(org, "failed", checkpoint_epoch=5, completed_at=utcnow())
    running = _job(org, "running", checkpoint_epoch=3)
    succeeded = _job(org, "succeeded", completed_at=utcnow())
    _add(platform, failed, running, succeeded)
    losses = [0.9, 0.3, 0.5, 0.6, 0.7]  # epoch 2 is the best
    _add(
        platform,
        *(
            JobMetric(job_id=failed.id, epoch=epoch, step=epoch, name="val_loss", value=loss)
            for epoch, loss in enumerate(losses, start=1)
        ),
    )
    files = {
        job.id: {
            epoch: _store_file(platform, checkpoint_key(uuid.UUID(org), job.id, epoch), age=2 * DAY)
            for epoch in epochs
        }
        for job, epochs in ((failed, range(1, 6)), (running, range(1, 5)), (succeeded, (1, 2)))
    }
    just_written = _store_file(platform, checkpoint_key(uuid.UUID(org), running.id, 9))

    report = run_housekeeping(platform, utcnow())

    def kept(job: TrainingJob) -> set[int]:
        return {epoch for epoch, path in files[job.id].items() if path.exists()}

    assert kept(failed) == {2, 5}
    assert kept(running) == {3, 4}
    assert kept(succeeded) == set()
    assert just_written.exists()
    assert report.checkpoints_deleted >= 3 + 2 + 2


def test_retention_set_by_the_superuser_expires_old_batch_outputs_and_checkpoints(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, client, account, platform = house
    org = account.organization_id
    changed = client.patch(
        f"/api/v1/admin/organizations/{org}", headers=account.headers, json={"retention_days": 7}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["overrides"]["retention_days"] == 7
    now = utcnow()

    def batch(ended: datetime) -> tuple[BatchPrediction, Path]:
        job_id = uuid.uuid4()
        key = f"orgs/{org}/batch-predictions/{job_id}/predictions.csv"
        row = BatchPrediction(
            id=job_id,
            organization_id=uuid.UUID(org),
            name="model",
            status="succeeded",
            model_version=1,
            output_format="csv",
            rows_total=1,
            output_key=key,
            output_bytes=5,
            completed_at=ended,
        )
        return row, _store_file(platform, key)

    old_batch, old_output = batch(now - 8 * DAY)
    recent_batch, recent_output = batch(now - 2 * DAY)
    old_job = _job(org, "cancelled", checkpoint_epoch=1, completed_at=now - 8 * DAY)
    _add(platform, old_batch, recent_batch, old_job)
    old_checkpoint = _store_file(platform, checkpoint_key(uuid.UUID(org), old_job.id, 1))
    try:
        report = run_housekeeping(platform, now)
    finally:
        client.patch(
            f"/api/v1/admin/organizations/{org}",
            headers=account.headers,
            json={"retention_days": None},
        )

    assert not old_output.exists() and not old_checkpoint.exists()
    assert recent_output.exists()
    assert report.batch_outputs_expired == 1
    download = client.get(
        f"/api/v1/batch-predictions/{old_batch.id}/download", headers=account.headers
    )
    assert download.status_code == 409
    assert "retention" in download.json()["message"]


def test_ended_logins_tokens_and_closed_invitations_go_while_spent_tokens_stay_replayable(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, client, account, platform = house

    def families() -> set[uuid.UUID]:
        with session_scope(platform.sessions) as session:
            return set(session.scalars(select(RefreshToken.family_id)))

    before = families()
    login = client.post(
        "/api/v1/auth/login", data={"username": account.username, "password": account.password}
    ).json()
    (ended,) = families() - before
    with session_scope(platform.sessions) as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == ended)
            .values(created_at=utcnow() - 40 * DAY, expires_at=utcnow() - 10 * DAY)
        )
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 401  # expired: its login ended
    spent = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert spent.status_code == 200
    expired_invitation, pending_invitation = (
        Invitation(
            organization_id=uuid.UUID(account.organization_id),
            email=f"{secrets.token_hex(4)}@example.com",
            role=Role.MEMBER,
            token_hash=secrets.token_hex(32),
            expires_at=utcnow() + offset,
        )
        for offset in (-3 * DAY, DAY)
    )
    _add(platform, expired_invitation, pending_invitation)

    report = run_housekeeping(platform, utcnow())

    assert ended not in families()
    assert report.refresh_tokens_deleted >= 1 and report.invitations_deleted >= 1
    with session_scope(platform.sessions) as session:
        assert session.get(Invitation, expired_invitation.id) is None
        assert session.get(Invitation, pending_invitation.id) is not None
    # The spent token of the live login is still known: replaying it signs that login out.
    replayed = client.post("/api/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    assert replayed.status_code == 401
    after = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": spent.json()["refresh_token"]}
    )
    assert after.status_code == 401


def test_one_process_claims_each_housekeeping_interval(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    _, _, _, platform = house
    interval = timedelta(seconds=platform.settings.housekeeping_interval_seconds)
    start = utcnow() + 2 * DAY  # the fixture claimed a pass a day ahead

    assert run_if_due(platform, "api-1", start) is not None
    assert run_if_due(platform, "api-2", start + timedelta(seconds=1)) is None
    assert run_if_due(platform, "api-2", start + interval) is not None


def test_the_housekeeping_command_runs_a_pass_and_prints_its_counts(
    house: tuple[Deployment, TestClient, Account, Platform],
) -> None:
    deployed, _, account, platform = house
    if deployed.name != "embedded":
        pytest.skip("the command runs the code the other tests run on both shapes")
    stale = _store_file(
        platform, f"orgs/{account.organization_id}/datasets/{uuid.uuid4()}/a.csv", age=2 * DAY
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DLP_")}
    result = subprocess.run(
        [sys.executable, "-m", "dlp", "housekeeping", "run"],
        env={**clean, **deployed.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "orphan folders deleted: 1" in result.stdout
    assert not stale.exists()

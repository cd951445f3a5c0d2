"""The SDK end to end against a real ``dlp serve`` process, over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlp.client import (
    AuthenticationError,
    Client,
    ConflictError,
    DLPConnectionError,
    MetricEvent,
    NotFoundError,
    PermissionDeniedError,
    StatusEvent,
    TokenPair,
    ValidationError,
)
from tests.client.live_platform import EPOCHS, TRAINING_SECONDS, Platform, running_platform
from tests.live import free_port
from tests.test_serve_live import PASSWORD

MISSING_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("sdk")) as running:
        yield running


def test_login_and_me(platform: Platform) -> None:
    with Client(platform.url) as client:
        pair = client.auth.login("alice", PASSWORD)
        user = client.auth.me()
    assert pair.token_type == "bearer" and pair.expires_in > 0
    assert user.username == "alice" and user.role == "admin" and user.is_superuser


def test_upload_reports_progress_and_lists_page_by_page(platform: Platform) -> None:
    client = platform.client
    seen: list[tuple[int, int | None]] = []
    with platform.csv_path.open("rb") as handle:
        second = client.datasets.upload(
            handle, name="second", progress=lambda done, total: seen.append((done, total))
        )
    size = platform.csv_path.stat().st_size
    assert seen[-1] == (size, size)
    assert second.name == "second" and second.n_rows == platform.dataset.n_rows
    assert second.kind == "tabular" and second.status == "ready"
    assert {c["name"] for c in second.schema_["columns"]} >= {"target", "mean radius"}

    page = client.datasets.list(limit=1)
    assert page.total >= 2 and len(page.items) == 1 and page.limit == 1
    ids = [dataset.id for dataset in client.datasets.iter(page_size=1)]
    assert {second.id, platform.dataset.id} <= set(ids) and len(ids) == len(set(ids))

    client.datasets.delete(second.id)
    with pytest.raises(NotFoundError):
        client.datasets.get(second.id)


def test_download_streams_the_original_bytes(platform: Platform, tmp_path: Path) -> None:
    progress: list[int] = []
    written = platform.client.datasets.download(
        platform.dataset.id, tmp_path, progress=lambda done, _total: progress.append(done)
    )
    assert written is not None and written.parent == tmp_path
    assert written.read_bytes() == platform.csv_path.read_bytes()
    assert progress[-1] == platform.csv_path.stat().st_size
    buffer = io.BytesIO()
    assert platform.client.datasets.download(platform.dataset.id, buffer) is None
    assert buffer.getvalue() == platform.csv_path.read_bytes()


def test_events_replay_a_finished_job_and_end_with_its_status(platform: Platform) -> None:
    events = list(platform.client.jobs.events(platform.job.id))
    assert isinstance(events[-1], StatusEvent) and events[-1].status == "succeeded"
    assert events[-1].model_id == platform.job.model_id
    metrics = [e for e in events if isinstance(e, MetricEvent)]
    assert {m.name for m in metrics} >= {"train_loss", "val_loss", "val_accuracy", "val_f1"}
    assert max(m.epoch for m in metrics) <= EPOCHS

    history = platform.client.jobs.metrics(platform.job.id)
    assert [(p.epoch, p.name) for p in history] == [(m.epoch, m.name) for m in metrics]
    job = platform.client.jobs.get(platform.job.id)
    assert job.finished and job.progress.total_epochs == EPOCHS
    assert job.wait(timeout=5).status == "succeeded"


def test_cancel_and_filter_by_status(platform: Platform) -> None:
    client = platform.client
    job = client.jobs.submit(
        platform.dataset.id,
        task="classification",
        target="target",
        name="to-cancel",
        training={"epochs": 500, "early_stopping_patience": 500},
        priority="low",
    )
    client.jobs.cancel(job.id)
    assert job.wait(timeout=TRAINING_SECONDS).status == "cancelled"
    cancelled = client.jobs.list(status="cancelled")
    assert job.id in {j.id for j in cancelled.items}
    assert all(j.status == "cancelled" for j in cancelled.items)


def test_predict_download_and_registry(platform: Platform, tmp_path: Path) -> None:
    client = platform.client
    model = client.models.get(str(platform.job.model_id))
    assert model.task == "classification" and model.classes == [0, 1]
    assert model.id in {m.id for m in client.models.iter()}

    by_id = client.models.predict(model.id, platform.held_out[:5])
    assert len(by_id.predictions) == 5 and by_id.probabilities is not None
    assert all(abs(sum(row) - 1) < 1e-4 for row in by_id.probabilities)

    alias = client.registry.set_alias(model.name, "production", model.version)
    assert (alias.alias, alias.version) == ("production", model.version)
    registry = client.registry.versions(model.name)
    assert registry.aliases == {"production": model.version}
    assert model.id in {v.id for v in registry.versions}
    by_name = client.registry.predict(model.name, platform.held_out[:5])
    assert by_name.predictions == by_id.predictions and by_name.model_version == model.version
    traffic = client.registry.set_traffic(model.name, {model.version: 100})
    assert client.registry.traffic(model.name).weights == traffic.weights
    client.registry.clear_traffic(model.name)

    weights = client.models.download(model.id, tmp_path, format="safetensors")
    assert weights is not None and weights.suffix == ".safetensors" and weights.stat().st_size > 0


def test_batch_prediction_of_a_dataset(platform: Platform, tmp_path: Path) -> None:
    client = platform.client
    batch = client.batch.submit(str(platform.job.model_id), platform.dataset.id)
    done = client.batch.wait(batch.id, timeout=TRAINING_SECONDS)
    assert done.status == "succeeded" and done.progress.rows_done == platform.dataset.n_rows
    output = client.batch.download(batch.id, tmp_path / "out.csv")
    assert output is not None
    assert len(output.read_text().splitlines()) == (platform.dataset.n_rows or 0) + 1
    assert batch.id in {b.id for b in client.batch.list().items}


def test_tuning_study_create_list_cancel(platform: Platform) -> None:
    client = platform.client
    study = client.studies.create(
        platform.dataset.id,
        task="classification",
        target="target",
        n_trials=2,
        model={"type": "mlp"},
        training={"epochs": 200, "early_stopping_patience": 200},
        priority="low",
    )
    assert study.id in {s.id for s in client.studies.list().items}
    client.studies.cancel(study.id)
    ended = client.studies.wait(study.id, timeout=TRAINING_SECONDS, poll_interval=0.5)
    assert ended.status == "cancelled"


def test_admin_queues(platform: Platform) -> None:
    overview = platform.client.queues()
    assert {q["name"] for q in overview.queues} >= {"training", "tuning", "batch"}


def test_errors_carry_the_contract_code_and_request_id(platform: Platform) -> None:
    client = platform.client
    with pytest.raises(NotFoundError) as missing:
        client.jobs.get(MISSING_ID)
    assert missing.value.status_code == 404 and missing.value.error == "not_found"
    assert missing.value.request_id and missing.value.request_id in str(missing.value)

    with pytest.raises(ValidationError) as invalid:
        client.jobs.submit(platform.dataset.id, task="classification", target="no such column")
    assert invalid.value.error == "validation_error" and "no such column" in invalid.value.message

    with pytest.raises(ConflictError):
        client.auth.register("alice", "alice2@example.com", PASSWORD)
    with Client(platform.url) as stranger, pytest.raises(AuthenticationError) as refused:
        stranger.auth.login("alice", "wrong password")
    assert refused.value.status_code == 401 and refused.value.error == "authentication_error"

    nowhere = Client(f"http://127.0.0.1:{free_port()}", "token")
    with nowhere, pytest.raises(DLPConnectionError, match="cannot reach"):
        nowhere.auth.me()


def test_expired_access_token_is_refreshed_and_the_pair_rotated(platform: Platform) -> None:
    saved: list[TokenPair] = []
    with Client(platform.url, on_tokens=saved.append) as client:
        first = client.auth.login("alice", PASSWORD)
        client.transport.access_token = "expired"
        assert client.auth.me().username == "alice"
        assert len(saved) == 2 and saved[-1].refresh_token != first.refresh_token
        assert client.transport.access_token == saved[-1].access_token
        # A streamed upload refused for an expired token is sent again after the refresh.
        client.transport.access_token = "expired"
        again = client.datasets.upload(platform.csv_path, name="after-refresh")
        assert again.n_rows == platform.dataset.n_rows and len(saved) == 3
        client.datasets.delete(again.id)

    replay = Client(platform.url, refresh_token=first.refresh_token)
    with replay, pytest.raises(AuthenticationError):
        replay.auth.refresh()


def test_api_keys_and_logout(platform: Platform) -> None:
    key = platform.client.auth.create_api_key("ci")
    with Client(platform.url, api_key=key.key) as by_key:
        assert by_key.auth.me().username == "alice"
        platform.client.auth.delete_api_key(key.id)
        with pytest.raises(AuthenticationError):
            by_key.auth.me()

    with Client(platform.url) as client:
        pair = client.auth.login("alice", PASSWORD)
        client.auth.logout()
    after = Client(platform.url, refresh_token=pair.refresh_token)
    with after, pytest.raises(AuthenticationError):
        after.auth.refresh()


def test_scoped_expiring_api_keys_are_listed(platform: Platform) -> None:
    key = platform.client.auth.create_api_key("reader", scope="read", expires_in_days=7)
    assert key.scope == "read" and key.expires_at is not None
    with Client(platform.url, api_key=key.key) as by_key:
        assert by_key.datasets.list().total >= 0
        with pytest.raises(PermissionDeniedError):
            by_key.auth.create_api_key("escalate")
    listed = {item.id: item for item in platform.client.auth.list_api_keys(limit=200).items}
    assert listed[key.id].scope == "read" and listed[key.id].last_used_at is not None
    assert "key" not in listed[key.id].model_dump()
    platform.client.auth.delete_api_key(key.id)


def test_organizations_invitations_and_quotas(platform: Platform) -> None:
    alice = platform.client
    team = alice.organizations.create("sdk team")
    assert team.role == "admin" and not team.is_personal
    assert team.id in {o.id for o in alice.organizations.iter(page_size=1)}
    with Client(platform.url) as bob:
        bob.auth.register("bob-sdk", "bob-sdk@example.com", PASSWORD)
        bob.auth.login("bob-sdk", PASSWORD)
        with Client(platform.url, platform.client.transport.access_token) as in_team:
            in_team.transport.organization_id = team.id
            invitation = in_team.invitations.create("BOB-SDK@example.com", "viewer")
            assert invitation.token and invitation.email == "bob-sdk@example.com"
            assert [i.id for i in in_team.invitations.list().items] == [invitation.id]
            joined = bob.invitations.accept(invitation.token)
            assert joined.id == team.id and joined.role == "viewer"
            with pytest.raises(NotFoundError):
                bob.invitations.accept(invitation.token)
            spare = in_team.invitations.create("carol-sdk@example.com")
            in_team.invitations.revoke(spare.id)
            assert in_team.invitations.list().total == 0
            renamed = in_team.organizations.rename("sdk team 2")
            assert renamed.name == "sdk team 2" and renamed.usage == {
                "storage_bytes": 0,
                "active_jobs": 0,
            }
    limited = alice.organizations.set_quotas(team.id, max_concurrent_jobs=3)
    assert limited.quotas == {
        "max_storage_bytes": None,
        "max_concurrent_jobs": 3,
        "retention_days": None,
    }
    reset = alice.organizations.set_quotas(team.id, reset=True)
    assert reset.quotas == {
        "max_storage_bytes": None,
        "max_concurrent_jobs": None,
        "retention_days": None,
    }

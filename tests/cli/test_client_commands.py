"""The ``dlp`` client commands against a real ``dlp serve`` process, through CliRunner."""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dlp.cli.main import app
from tests.client.live_platform import TRAINING_SECONDS, Platform, running_platform
from tests.live import free_port
from tests.test_serve_live import PASSWORD

MISSING_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("cli")) as running:
        yield running


@pytest.fixture
def dlp(platform: Platform, tmp_path: Path) -> Iterator[CliRunnerFor]:
    yield CliRunnerFor(platform.url, tmp_path / "config")


class CliRunnerFor:
    """Runs ``dlp`` with its own config dir and DLP_URL pointing at the live server."""

    def __init__(self, url: str, config: Path) -> None:
        self.url = url
        self.config = config
        self.runner = CliRunner()

    def __call__(self, *args: str, **env: str) -> Result:
        environment = {
            "XDG_CONFIG_HOME": str(self.config),
            "DLP_URL": self.url,
            "DLP_TOKEN": "",
            "DLP_API_KEY": "",
            "COLUMNS": "200",
            **env,
        }
        return self.runner.invoke(app, list(args), env=environment)

    def login(self) -> None:
        result = self("login", "--username", "alice", "--password", PASSWORD)
        assert result.exit_code == 0, result.output


def test_help_documents_the_exit_codes(dlp: CliRunnerFor) -> None:
    result = dlp("--help")
    assert result.exit_code == 0 and "Exit codes" in result.output


def test_not_logged_in_exits_3(dlp: CliRunnerFor) -> None:
    result = dlp("datasets", "list")
    assert result.exit_code == 3
    assert "dlp login" in result.stderr and "Traceback" not in result.output


def test_login_keeps_the_tokens_private(dlp: CliRunnerFor) -> None:
    dlp.login()
    path = dlp.config / "dlp" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["url"] == dlp.url and saved["username"] == "alice" and saved["refresh_token"]

    # An expired access token is refreshed, and the new pair saved, still private.
    path.write_text(json.dumps({**saved, "access_token": "expired"}))
    whoami = dlp("whoami", "--json")
    assert whoami.exit_code == 0 and json.loads(whoami.stdout)["username"] == "alice"
    renewed = json.loads(path.read_text())
    assert renewed["refresh_token"] != saved["refresh_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dlp("logout").exit_code == 0 and not path.exists()


def test_login_prompts_for_the_password(dlp: CliRunnerFor) -> None:
    result = dlp.runner.invoke(
        app,
        ["login", "--username", "alice"],
        input=f"{PASSWORD}\n",
        env={"XDG_CONFIG_HOME": str(dlp.config), "DLP_URL": dlp.url},
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and "logged in" in result.output


def test_bad_password_exits_3(dlp: CliRunnerFor) -> None:
    result = dlp("login", "--username", "alice", "--password", "not the password")
    assert result.exit_code == 3 and "authentication_error" in result.stderr


def test_environment_credentials_work_without_login(dlp: CliRunnerFor, platform: Platform) -> None:
    token = str(platform.client.transport.access_token)
    result = dlp("datasets", "list", "--json", DLP_TOKEN=token)
    assert result.exit_code == 0, result.output
    assert platform.dataset.id in {d["id"] for d in json.loads(result.stdout)["items"]}


def test_unreachable_server_exits_1_with_a_clear_message(dlp: CliRunnerFor) -> None:
    result = dlp("jobs", "list", DLP_URL=f"http://127.0.0.1:{free_port()}", DLP_TOKEN="t")
    assert result.exit_code == 1 and "cannot reach" in result.stderr
    assert "Traceback" not in result.output


def test_datasets_upload_list_show(dlp: CliRunnerFor, platform: Platform) -> None:
    dlp.login()
    uploaded = dlp("datasets", "upload", str(platform.csv_path), "--name", "cli-upload", "--json")
    assert uploaded.exit_code == 0, uploaded.output
    dataset = json.loads(uploaded.stdout)
    assert dataset["name"] == "cli-upload" and dataset["schema"]["columns"]

    listed = json.loads(dlp("datasets", "list", "--json").stdout)
    assert dataset["id"] in {d["id"] for d in listed["items"]} and listed["total"] >= 2
    table = dlp("datasets", "show", dataset["id"])
    assert table.exit_code == 0 and "mean radius" in table.stdout
    deleted = dlp("datasets", "delete", dataset["id"], "--yes")
    assert deleted.exit_code == 0


def test_train_watch_then_jobs_and_models(dlp: CliRunnerFor, platform: Platform) -> None:
    dlp.login()
    trained = dlp(
        "train",
        "--dataset",
        platform.dataset.id,
        "--target",
        "target",
        "--name",
        "cli-model",
        "--epochs",
        "2",
        "--watch",
    )
    assert trained.exit_code == 0, trained.output
    assert "succeeded" in trained.stdout and "val_accuracy" in trained.stdout

    jobs = json.loads(dlp("jobs", "list", "--json", "--status", "succeeded").stdout)["items"]
    job = next(j for j in jobs if j["name"] == "cli-model")
    shown = json.loads(dlp("jobs", "show", job["id"], "--json").stdout)
    assert shown["status"] == "succeeded" and shown["model_id"]
    logs = dlp("jobs", "logs", job["id"])
    assert logs.exit_code == 0 and "status succeeded" in logs.stdout

    models = json.loads(dlp("models", "list", "--json").stdout)["items"]
    assert shown["model_id"] in {m["id"] for m in models}
    aliased = dlp("models", "alias", "cli-model", "production", "1")
    assert aliased.exit_code == 0 and "production" in aliased.stdout
    versions = json.loads(dlp("models", "versions", "cli-model", "--json").stdout)
    assert versions["aliases"] == {"production": 1}


@pytest.mark.parametrize("by", ["id", "name"])
def test_predict_csv_to_csv(dlp: CliRunnerFor, platform: Platform, tmp_path: Path, by: str) -> None:
    dlp.login()
    model = platform.client.models.get(str(platform.job.model_id))
    platform.client.registry.set_alias(model.name, "production", model.version)
    rows = platform.held_out[:25]
    source, target = tmp_path / "rows.csv", tmp_path / "preds.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    reference = model.id if by == "id" else model.name
    result = dlp(
        "predict", reference, "--input", str(source), "--output", str(target), "--batch-size", "10"
    )
    assert result.exit_code == 0, result.output
    with target.open(newline="") as handle:
        predicted = list(csv.DictReader(handle))
    assert len(predicted) == len(rows)
    assert {"prediction", "probability_0", "probability_1"} <= set(predicted[0])
    assert all(row["prediction"] in {"0", "1"} for row in predicted)


def test_missing_resource_exits_1_with_the_request_id(dlp: CliRunnerFor) -> None:
    dlp.login()
    result = dlp("jobs", "show", MISSING_ID)
    assert result.exit_code == 1
    assert "not_found" in result.stderr and "request id" in result.stderr


def test_watching_a_cancelled_job_exits_4(dlp: CliRunnerFor, platform: Platform) -> None:
    dlp.login()
    job = platform.client.jobs.submit(
        platform.dataset.id,
        task="classification",
        target="target",
        training={"epochs": 500, "early_stopping_patience": 500},
        priority="low",
    )
    platform.client.jobs.cancel(job.id)
    assert job.wait(timeout=TRAINING_SECONDS).status == "cancelled"
    result = dlp("jobs", "watch", job.id)
    assert result.exit_code == 4 and "cancelled" in result.stderr


def test_tune_starts_a_study(dlp: CliRunnerFor, platform: Platform) -> None:
    dlp.login()
    started = dlp(
        "tune",
        "--dataset",
        platform.dataset.id,
        "--target",
        "target",
        "--trials",
        "1",
        "--epochs",
        "200",
        "--json",
    )
    assert started.exit_code == 0, started.output
    study = json.loads(started.stdout)
    assert study["n_trials"] == 1 and study["metric"] == "val_accuracy"
    assert platform.client.studies.cancel(study["id"]).id == study["id"]


def test_orgs_and_invitations(dlp: CliRunnerFor) -> None:
    dlp.login()
    created = dlp("orgs", "create", "cli team", "--json")
    assert created.exit_code == 0, created.output
    team = json.loads(created.output)["id"]
    listed = dlp("orgs", "list")
    assert listed.exit_code == 0 and "cli team" in listed.output
    invited = dlp(
        "invitations", "create", "dave@example.com", "--role", "viewer", "--json", DLP_ORG=team
    )
    assert invited.exit_code == 0, invited.output
    invitation = json.loads(invited.output)
    assert invitation["token"] and invitation["role"] == "viewer"
    pending = dlp("invitations", "list", DLP_ORG=team)
    assert pending.exit_code == 0 and "dave@example.com" in pending.output
    assert dlp("invitations", "revoke", invitation["id"], DLP_ORG=team).exit_code == 0
    shown = dlp("orgs", "show", DLP_ORG=team)
    assert shown.exit_code == 0 and "cli team" in shown.output and "unlimited" in shown.output
    unknown = dlp("invitations", "accept", "not-a-token")
    assert unknown.exit_code == 1 and "not found" in unknown.output

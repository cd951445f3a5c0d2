"""Tuning studies through the API and the session's real worker, on both run shapes:
a small study end to end, refusals, cancellation and the time budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment
from tests.factories import (
    ROWS,
    add_viewer,
    fresh_installation,
    table_csv,
    tiny_dataset,
    upload_ok,
    wait_for_job,
)
from tests.images import digit_pixels, encode_image, zip_bytes

STUDIES = "/api/v1/tuning/studies"
SMALL_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "hidden_size": {"type": "int", "low": 4, "high": 32, "log": True},
}


def study_body(dataset_id: str, **extra: Any) -> dict[str, Any]:
    """A quick study on ``tiny_dataset``: 4 short trials, two at a time."""
    return {
        "dataset_id": dataset_id,
        "task": "classification",
        "target": "y",
        "model": {"type": "mlp"},
        "n_trials": 4,
        "parallelism": 2,
        "search_space": SMALL_SPACE,
        "pruner": "none",
        "training": {"epochs": 4, "batch_size": 32, "early_stopping_patience": 0},
        **extra,
    }


def create_ok(client: TestClient, account: Account, body: dict[str, Any]) -> dict[str, Any]:
    """POST a study and insist on 202."""
    response = client.post(STUDIES, headers=account.headers, json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def wait_for_study(
    client: TestClient, account: Account, study_id: str, timeout: float = 240
) -> dict[str, Any]:
    """Poll a study until it ends."""
    return wait_for_job(
        client,
        account,
        study_id,
        timeout=timeout,
        until={"succeeded", "failed", "cancelled"},
        collection=STUDIES,
    )


def test_study_runs_its_trials_and_registers_the_best_model(
    client: TestClient, account: Account, deployment: Deployment
) -> None:
    dataset = tiny_dataset(client, account)
    created = create_ok(client, account, study_body(dataset, name="tuned-tiny"))
    assert created["status"] == "running"
    assert created["trial_counts"]["waiting"] == 2, "parallelism 2: two trials queued at once"
    assert created["family"] == "mlp" and created["metric"] == "val_accuracy"
    assert created["direction"] == "maximize"

    study = wait_for_study(client, account, created["id"])
    assert study["status"] == "succeeded", study
    assert study["trial_counts"]["complete"] == 4
    trials = study["trials"]
    assert sorted(trial["number"] for trial in trials) == [0, 1, 2, 3]
    for trial in trials:
        assert set(trial["params"]) == set(SMALL_SPACE)
        assert 1e-3 <= trial["params"]["learning_rate"] <= 3e-2
        assert 4 <= trial["params"]["hidden_size"] <= 32
        assert trial["value"] is not None and trial["epochs"] == 4
    best = study["best"]
    assert best["value"] == max(trial["value"] for trial in trials)
    assert study["model_id"] == best["model_id"] is not None
    assert set(study["importances"]) == set(SMALL_SPACE), "importances once 4 trials completed"

    # The trial is an ordinary training job of the study, its config the sampled one.
    job = client.get(f"/api/v1/training/jobs/{best['job_id']}", headers=account.headers).json()
    assert job["study_id"] == study["id"] and job["trial_number"] == best["number"]
    assert job["config"]["model"]["hidden_sizes"] == [best["params"]["hidden_size"]] * 2
    assert job["config"]["training"]["learning_rate"] == best["params"]["learning_rate"]
    assert job["model_id"] == best["model_id"]

    # Only the best trial's model is registered, as version 1 of the study's name.
    model = client.get(f"/api/v1/models/{best['model_id']}", headers=account.headers).json()
    assert model["name"] == "tuned-tiny" and model["version"] == 1
    assert model["job_id"] == best["job_id"]
    versions = client.get("/api/v1/registry/tuned-tiny/versions", headers=account.headers)
    assert [v["version"] for v in versions.json()["versions"]] == [1]
    predicted = client.post(
        f"/api/v1/models/{model['id']}/predict", headers=account.headers, json={"inputs": ROWS}
    )
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == len(ROWS)

    # The losing trials' models are deleted from the store.
    models_dir = deployment.store_root / "orgs" / account.organization_id / "models"
    assert [path.name for path in models_dir.iterdir()] == [model["id"]]

    listed = client.get(STUDIES, headers=account.headers).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == study["id"]
    assert "trials" not in listed["items"][0]


BAD_SPACES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown parameter", {"momentum": {"type": "float", "low": 0.1, "high": 0.9}}, "momentum"),
    ("low above high", {"dropout": {"type": "float", "low": 0.5, "high": 0.1}}, "low"),
    (
        "log scale through zero",
        {"learning_rate": {"type": "float", "low": 0, "high": 0.1, "log": True}},
        "low > 0",
    ),
    ("no choices", {"optimizer": {"type": "categorical", "choices": []}}, "choices"),
    (
        "repeated choices",
        {"optimizer": {"type": "categorical", "choices": ["adam", "adam"]}},
        "distinct",
    ),
    ("dropout of 1.5", {"dropout": {"type": "float", "low": 0.1, "high": 1.5}}, "dropout"),
    ("zero-width layers", {"hidden_size": {"type": "int", "low": 0, "high": 8}}, "hidden_size"),
    ("float layer width", {"hidden_size": {"type": "float", "low": 4, "high": 8}}, "int values"),
    (
        "an optimizer that does not exist",
        {"optimizer": {"type": "categorical", "choices": ["adam", "lbfgs"]}},
        "lbfgs",
    ),
    (
        "a CNN parameter for a table",
        {"base_channels": {"type": "int", "low": 8, "high": 16}},
        "base_channels",
    ),
    ("unknown kind", {"dropout": {"type": "uniform", "low": 0, "high": 0.5}}, "type"),
    ("extra field", {"dropout": {"type": "float", "low": 0, "high": 0.5, "step": 2}}, "step"),
    ("empty", {}, "at least one"),
    (
        "too many parameters",
        {f"p{i}": {"type": "float", "low": 0, "high": 1} for i in range(21)},
        "at most 20",
    ),
]


@pytest.mark.parametrize(
    ("space", "needle"),
    [pytest.param(space, needle, id=name) for name, space, needle in BAD_SPACES],
)
def test_bad_search_space_is_refused_with_422(
    client: TestClient, account: Account, space: dict[str, Any], needle: str
) -> None:
    dataset = tiny_dataset(client, account, rows=50)
    response = client.post(
        STUDIES, headers=account.headers, json=study_body(dataset, search_space=space)
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert needle in response.text
    assert client.get(STUDIES, headers=account.headers).json()["total"] == 0


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"metric": "val_rmse"}, "val_rmse"),
        ({"metric": "val_accuracy", "direction": "minimize"}, "maximize"),
        ({"n_trials": 0}, "n_trials"),
        ({"parallelism": 0}, "parallelism"),
        ({"max_minutes": -1}, "max_minutes"),
        ({"pruner": "genetic"}, "pruner"),
        ({"target": "nope"}, "nope"),
        ({"model": {"type": "cnn"}}, "cnn"),
        ({"training": {"epochs": 10**6}}, "epochs"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_study_request_is_refused_with_422(
    client: TestClient, account: Account, change: dict[str, Any], needle: str
) -> None:
    dataset = tiny_dataset(client, account, rows=50)
    response = client.post(STUDIES, headers=account.headers, json=study_body(dataset, **change))
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_studies_are_private_to_their_organization(
    client: TestClient,
    account: Account,
    other_account: Account,
    deployment: Deployment,
) -> None:
    dataset = tiny_dataset(client, account, rows=50)
    foreign = client.post(STUDIES, headers=other_account.headers, json=study_body(dataset))
    assert foreign.status_code == 404, "another organization's dataset"

    viewer = add_viewer(deployment, account, other_account)
    refused = client.post(STUDIES, headers=viewer, json=study_body(dataset))
    assert refused.status_code == 403

    study = create_ok(client, account, study_body(dataset, n_trials=1, parallelism=1))
    for method, path in (("GET", ""), ("POST", "/cancel")):
        answer = client.request(
            method, f"{STUDIES}/{study['id']}{path}", headers=other_account.headers
        )
        assert answer.status_code == 404, (method, path)
    assert client.get(f"{STUDIES}/{study['id']}", headers=viewer).status_code == 200
    assert client.post(f"{STUDIES}/{study['id']}/cancel", headers=viewer).status_code == 403

    wait_for_study(client, account, study["id"])
    again = client.post(f"{STUDIES}/{study['id']}/cancel", headers=account.headers)
    assert again.status_code == 409


def test_cancelled_study_stops_its_trials_and_registers_nothing(
    client: TestClient, account: Account
) -> None:
    dataset = tiny_dataset(client, account)
    slow = {"epochs": 2000, "batch_size": 8, "early_stopping_patience": 0}
    study = create_ok(client, account, study_body(dataset, n_trials=10, training=slow))
    deadline = time.monotonic() + 120
    while True:
        current = client.get(f"{STUDIES}/{study['id']}", headers=account.headers).json()
        if any(trial["state"] == "running" and trial["epochs"] >= 1 for trial in current["trials"]):
            break
        assert time.monotonic() < deadline, current
        time.sleep(0.2)

    in_use = client.delete(f"/api/v1/datasets/{dataset}", headers=account.headers)
    assert in_use.status_code == 409 and "running tuning study" in in_use.text

    cancelled = client.post(f"{STUDIES}/{study['id']}/cancel", headers=account.headers)
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    for trial in cancelled.json()["trials"]:
        job = wait_for_job(client, account, str(trial["job_id"]), timeout=60)
        assert job["status"] == "cancelled", job
    final = client.get(f"{STUDIES}/{study['id']}", headers=account.headers).json()
    assert final["status"] == "cancelled" and final["model_id"] is None
    assert final["trial_counts"]["cancelled"] == len(final["trials"]) <= 2
    names = client.get("/api/v1/models?limit=200", headers=account.headers).json()["items"]
    assert not [model for model in names if model["name"] == study["name"]]


def test_cancelling_a_queued_trial_queues_the_next_one(shape: str, tmp_path: Path) -> None:
    # No worker in this installation: trials stay queued until the test cancels them.
    with fresh_installation(shape, tmp_path) as (_deployed, client, account):
        dataset = tiny_dataset(client, account, rows=50)
        study = create_ok(client, account, study_body(dataset, n_trials=3))
        url = f"{STUDIES}/{study['id']}"
        for expected in ({"waiting": 2, "cancelled": 1}, {"waiting": 1, "cancelled": 2}):
            waiting = next(
                trial
                for trial in client.get(url, headers=account.headers).json()["trials"]
                if trial["state"] == "waiting"
            )
            cancelled = client.post(
                f"/api/v1/training/jobs/{waiting['job_id']}/cancel", headers=account.headers
            )
            assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
            counts = client.get(url, headers=account.headers).json()["trial_counts"]
            assert {state: n for state, n in counts.items() if n} == expected
        listed = client.get("/api/v1/training/jobs", headers=account.headers).json()["items"]
        assert len(listed) == 3 and {job["study_id"] for job in listed} == {study["id"]}


def test_time_budget_ends_the_study_with_the_best_trial_so_far(
    client: TestClient, account: Account
) -> None:
    dataset = tiny_dataset(client, account)
    training = {"epochs": 3, "batch_size": 16, "early_stopping_patience": 0}
    study = create_ok(
        client,
        account,
        study_body(dataset, n_trials=1000, max_minutes=0.25, training=training),
    )
    final = wait_for_study(client, account, study["id"], timeout=120)
    assert final["status"] == "succeeded", final
    counts = final["trial_counts"]
    assert counts["complete"] >= 1 and len(final["trials"]) < 1000
    assert counts["waiting"] == counts["running"] == 0
    stopped = [trial for trial in final["trials"] if trial["state"] == "cancelled"]
    assert all("budget" in (trial["error_message"] or "") for trial in stopped), stopped
    assert final["model_id"] == final["best"]["model_id"] is not None


def test_auto_studies_tune_text_and_image_datasets_with_their_default_spaces(
    client: TestClient, account: Account
) -> None:
    rng = np.random.default_rng(0)
    good, bad = ["great", "fun", "lovely", "superb"], ["awful", "boring", "dull", "bad"]
    rows = []
    for i in range(120):
        positive = i % 2 == 0
        rows.append(
            [" ".join(rng.choice(good if positive else bad, size=3)), "pos" if positive else "neg"]
        )
    reviews = upload_ok(
        client, account, table_csv(["review", "label"], rows), "reviews.csv", kind="text"
    )
    pixels, digits = digit_pixels()
    chosen = np.flatnonzero(digits < 2)[:40]
    archive = zip_bytes({f"{digits[i]}/{i:04d}.png": encode_image(pixels[i]) for i in chosen})
    images = upload_ok(client, account, archive, "digits.zip")
    short = {"epochs": 2, "early_stopping_patience": 0}
    text = create_ok(
        client,
        account,
        {
            "dataset_id": reviews["id"],
            "task": "classification",
            "target": "label",
            "text_column": "review",
            "n_trials": 2,
            "pruner": "none",
            "training": short,
        },
    )
    image = create_ok(
        client,
        account,
        {
            "dataset_id": images["id"],
            "task": "classification",
            "n_trials": 2,
            "pruner": "none",
            "training": short,
        },
    )
    assert text["family"] == "text" and "variant" in text["search_space"]
    assert image["family"] == "cnn" and "base_channels" in image["search_space"]
    for study in (text, image):
        final = wait_for_study(client, account, study["id"])
        assert final["status"] == "succeeded", final
        assert final["trial_counts"]["complete"] == 2, final["trials"]
        model = client.get(f"/api/v1/models/{final['model_id']}", headers=account.headers)
        assert model.json()["type"] == study["family"]

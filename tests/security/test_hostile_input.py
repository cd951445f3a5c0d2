"""Hostile input: oversized and deeply nested bodies, hostile file names, absurd configs,
over-limit prediction batches and SQL-looking strings, each refused with the contract's
error and nothing half-written.

Covered elsewhere, not repeated here: uploads over the size limit stopped while streaming
(tests/datasets/test_datasets_api.py::test_upload_over_limit_is_stopped_with_413), CSV and
Parquet that lie about themselves (test_bad_files_are_refused_and_leave_nothing there), and
CSV formula injection in batch prediction outputs (tests/batch/test_batch_predictions_api.py
::test_parquet_batch_keeps_inputs_and_csv_defuses_formulas).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import Account, Deployment
from tests.factories import small_job_body, submit_job, upload

SQL_LOOKING = [
    "' OR 1=1 --",
    '"; DROP TABLE users; --',
    "x' UNION SELECT password_hash FROM users --",
]


def _org_files(deployment: Deployment, account: Account) -> list[Path]:
    root = Path(deployment.store_root) / "orgs" / account.organization_id
    return sorted(path for path in root.rglob("*") if path.is_file())


def _dataset_total(client: TestClient, account: Account) -> int:
    total: int = client.get("/api/v1/datasets", headers=account.headers).json()["total"]
    return total


@pytest.fixture(scope="module")
def small_limits(deployment: Deployment) -> Iterator[TestClient]:
    """The deployment's API with a 1 MB JSON limit, 2 MB for predictions, depth 16."""
    settings = deployment.settings.model_copy(
        update={"max_json_body_mb": 1, "max_predict_body_mb": 2, "max_json_depth": 16}
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as limited:
        yield limited


def test_oversized_json_body_is_refused_before_parsing(
    small_limits: TestClient, account: Account
) -> None:
    """Memory exhaustion: a JSON body over the limit answers 413, declared or streamed."""
    big = json.dumps({"name": "x", "padding": "a" * (1 << 20)}).encode()
    declared = small_limits.post(
        "/api/v1/training/jobs",
        headers={**account.headers, "content-type": "application/json"},
        content=big,
    )
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"padding": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    streamed = small_limits.post(
        "/api/v1/training/jobs",
        headers={**account.headers, "content-type": "application/json"},
        content=chunks(),
    )
    assert streamed.status_code == 413 and "1 MB" in streamed.json()["message"]


def test_prediction_bodies_get_their_own_larger_limit(
    small_limits: TestClient, account: Account
) -> None:
    """Memory exhaustion on /predict: the prediction limit applies, then 413 beyond it."""
    model = f"/api/v1/models/{uuid.uuid4()}/predict"
    headers = {**account.headers, "content-type": "application/json"}
    within = json.dumps({"inputs": ["a" * (1 << 20)]}).encode()  # over 1 MB, under 2 MB
    assert small_limits.post(model, headers=headers, content=within).status_code == 404
    beyond = json.dumps({"inputs": ["a" * (3 << 20)]}).encode()
    assert small_limits.post(model, headers=headers, content=beyond).status_code == 413


@pytest.mark.parametrize("path", ["/api/v1/training/jobs", "/api/v1/models/{id}/predict"])
def test_deeply_nested_json_is_refused(
    small_limits: TestClient, account: Account, path: str
) -> None:
    """Parser stack exhaustion: JSON nested past the depth limit answers 422."""
    headers = {**account.headers, "content-type": "application/json"}
    url = path.format(id=uuid.uuid4())
    deep = b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = small_limits.post(url, headers=headers, content=deep)
    assert response.status_code == 422, response.text
    assert "deeper than 16" in response.json()["message"]
    in_strings = json.dumps({"inputs": ["[" * 100 + "{" * 100]}).encode()
    assert "deeper" not in small_limits.post(url, headers=headers, content=in_strings).text


def test_nul_characters_in_json_are_refused(client: TestClient, account: Account) -> None:
    """NUL injection: a \\u0000 in any JSON string answers 422 on every database."""
    response = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "k\x00ey"})
    assert response.status_code == 422 and "NUL" in response.json()["message"]


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.csv",
        "..\\..\\windows\\system32\\evil.csv",
        "/etc/cron.d/evil.csv",
        "nul\x00byte.csv",
        "a" * 1000 + ".csv",
    ],
)
def test_hostile_file_names_never_become_storage_paths(
    client: TestClient, deployment: Deployment, account: Account, filename: str
) -> None:
    """Path traversal via the upload's file name: stored under a generated key, name cleaned."""
    response = upload(client, account, b"a,b\n1,2\n3,4\n", filename)
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert len(dataset["name"]) <= 255 and "/" not in dataset["name"]
    assert "\\" not in dataset["name"] and "\x00" not in dataset["name"]
    stored = _org_files(deployment, account)
    assert [p.name for p in stored if dataset["id"] in str(p)] == ["original.csv"]
    data_dir = deployment.settings.resolved_data_dir
    assert not any(p.name.startswith("evil") for p in data_dir.parent.rglob("evil*"))


@pytest.mark.parametrize(
    ("name", "words"),
    [("bad\x00name", "control characters"), ("tab\tname", "control"), ("n" * 1000, "255")],
)
def test_hostile_dataset_names_are_refused_and_leave_nothing(
    client: TestClient, deployment: Deployment, account: Account, name: str, words: str
) -> None:
    """Header/log injection and oversized names: the explicit name field answers 422."""
    before = _org_files(deployment, account)
    response = upload(client, account, b"a,b\n1,2\n", "ok.csv", name=name)
    assert response.status_code == 422 and words in response.json()["message"], response.text
    assert _org_files(deployment, account) == before
    assert _dataset_total(client, account) == 0


@pytest.mark.parametrize(
    ("patch", "field", "cap"),
    [
        ({"training": {"epochs": 10**6}}, "epochs", "10000"),
        ({"training": {"batch_size": 10**9}}, "batch_size", "65536"),
        ({"model": {"type": "mlp", "hidden_sizes": [10**9]}}, "hidden_sizes", "8192"),
        ({"model": {"type": "mlp", "hidden_sizes": [16] * 1000}}, "hidden_sizes", "16"),
        ({"model": {"type": "cnn", "input_size": 10**6}}, "input_size", "512"),
        ({"resources": {"devices": 10**6}}, "devices", ""),
    ],
)
def test_absurd_training_configs_are_capped(
    client: TestClient, account: Account, patch: dict[str, Any], field: str, cap: str
) -> None:
    """Resource exhaustion via config: absurd sizes answer 422 naming the field and its cap."""
    body = small_job_body(str(uuid.uuid4())) | patch
    response = submit_job(client, account, **body)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert field in message and cap in message, message
    listed = client.get("/api/v1/training/jobs", headers=account.headers).json()
    assert listed["total"] == 0


def test_prediction_batches_over_the_limit_are_refused(
    client: TestClient, account: Account
) -> None:
    """Resource exhaustion via /predict: more than 1,000 rows answers 422 before any lookup."""
    response = client.post(
        f"/api/v1/models/{uuid.uuid4()}/predict",
        headers=account.headers,
        json={"inputs": [{"a": 1}] * 1001},
    )
    assert response.status_code == 422 and "1000" in response.json()["message"]


def test_sql_looking_strings_are_plain_data(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    """SQL injection: quotes and comments in names, paths, filters and logins stay literal."""
    for text in SQL_LOOKING:
        created = upload(client, account, b"a,b\n1,2\n3,4\n", "sql.csv", name=text)
        assert created.status_code == 201 and created.json()["name"] == text
        key = client.post("/api/v1/api-keys", headers=account.headers, json={"name": text})
        assert key.status_code == 201 and key.json()["name"] == text
        login = client.post("/api/v1/auth/login", data={"username": text, "password": text})
        assert login.status_code == 401
        versions = client.get(f"/api/v1/registry/{text}/versions", headers=account.headers)
        assert versions.status_code in (404, 422)
        listed = client.get(
            "/api/v1/datasets", headers=account.headers, params={"limit": 5, "q": text}
        )
        assert listed.status_code == 200
        job = submit_job(client, account, **small_job_body(str(uuid.uuid4()), name=text))
        assert job.status_code == 422  # names are [A-Za-z0-9_.-]
    names = [
        d["name"] for d in client.get("/api/v1/datasets", headers=account.headers).json()["items"]
    ]
    assert sorted(names) == sorted(SQL_LOOKING)
    # The tables are all still there: the account still logs in and lists.
    assert (
        client.post(
            "/api/v1/auth/login", data={"username": account.username, "password": account.password}
        ).status_code
        == 200
    )
    assert client.get("/api/v1/training/jobs", headers=account.headers).status_code == 200

"""Data and API factories for tests: real datasets from scikit-learn, written as CSV."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes

from dlp.auth.models import Membership, Role
from dlp.db import create_db_engine, create_session_factory, session_scope
from dlp.main import create_app
from tests.conftest import REDIS_URL, Account, Deployment, installation, register_account

TERMINAL = {"succeeded", "failed", "cancelled", "pruned"}


def table_csv(columns: list[str], rows: list[list[Any]]) -> bytes:
    """CSV bytes with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def split_sklearn(
    loader: Any, *, seed: int = 0, test_fraction: float = 0.2
) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """Columns, training rows and held-out rows of a scikit-learn dataset (target last)."""
    data = loader()
    columns = [str(name) for name in data.feature_names] + ["target"]
    target = data.target.tolist()
    rows = [[*map(float, x), y] for x, y in zip(data.data.tolist(), target, strict=True)]
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * test_fraction)
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    return columns, train, test


def breast_cancer() -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """Breast cancer, 80/20 split; target 0/1."""
    return split_sklearn(load_breast_cancer)


def diabetes() -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """Diabetes progression (regression), 80/20 split."""
    return split_sklearn(load_diabetes)


def upload(
    client: TestClient,
    account: Account,
    content: bytes,
    filename: str = "data.csv",
    **fields: str,
) -> Any:
    """POST a file to /api/v1/datasets and return the response."""
    return client.post(
        "/api/v1/datasets",
        headers=account.headers,
        files={"file": (filename, content, "text/csv")},
        data=fields,
    )


def upload_ok(
    client: TestClient,
    account: Account,
    content: bytes,
    filename: str = "data.csv",
    **fields: str,
) -> dict[str, Any]:
    """Upload and insist on 201."""
    response = upload(client, account, content, filename, **fields)
    assert response.status_code == 201, response.text
    return response.json()


def submit_job(client: TestClient, account: Account, **body: Any) -> Any:
    """POST a training job and return the response."""
    return client.post("/api/v1/training/jobs", headers=account.headers, json=body)


def wait_for_job(
    client: TestClient,
    account: Account,
    job_id: str,
    *,
    timeout: float = 180,
    until: set[str] = TERMINAL,
    collection: str = "/api/v1/training/jobs",
) -> dict[str, Any]:
    """Poll a job (of ``collection``: training jobs unless told) until its status is in
    ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"{collection}/{job_id}", headers=account.headers).json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.2)


def rows_as_inputs(columns: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    """Rows (target last) as prediction inputs without the target."""
    return [dict(zip(columns[:-1], row[:-1], strict=True)) for row in rows]


@contextmanager
def fresh_installation(
    shape: str, tmp_path: Path, *, redis_url: str | None = None, **overrides: Any
) -> Iterator[tuple[Deployment, TestClient, Account]]:
    """An installation of its own, without workers: its API and its first (superuser) account.

    On the scale-out shape it uses a fresh PostgreSQL database and, unless told
    otherwise, Redis database 14 of the test server, so the session's worker never
    takes its messages.
    """
    if shape == "scaleout" and redis_url is None:
        redis_url = f"{REDIS_URL.rsplit('/', 1)[0]}/14"
    with (
        installation(shape, tmp_path / "data", redis_url=redis_url, **overrides) as deployed,
        TestClient(create_app(deployed.settings), raise_server_exceptions=False) as client,
    ):
        yield deployed, client, register_account(client)


def tiny_dataset(client: TestClient, account: Account, rows: int = 200) -> str:
    """Upload a small separable table (features a, b, c; 0/1 target y); its id."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    content = table_csv(
        ["a", "b", "c", "y"], [[*map(float, r), int(t)] for r, t in zip(x, y, strict=True)]
    )
    return str(upload_ok(client, account, content, "tiny.csv")["id"])


def small_job_body(dataset_id: str, epochs: int = 2, **extra: Any) -> dict[str, Any]:
    """A job request for ``tiny_dataset``: a one-layer MLP, no early stopping."""
    return {
        "dataset_id": dataset_id,
        "task": "classification",
        "target": "y",
        "model": {"type": "mlp", "hidden_sizes": [16]},
        "training": {"epochs": epochs, "batch_size": 32, "early_stopping_patience": 0},
        **extra,
    }


def submit_ok(client: TestClient, account: Account, body: dict[str, Any]) -> str:
    """Submit a job, insist on 202, return its id."""
    response = submit_job(client, account, **body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


ROWS = [
    {"a": 0.5, "b": -1.0, "c": 2.0},
    {"a": -2.0, "b": -1.5, "c": 0.0},
    {"a": 1.0, "b": 1.0, "c": 1},
]


@dataclass
class Served:
    """A model name, its one version, and the answer of ``/predict`` for ``ROWS``."""

    name: str
    model: dict[str, Any]
    expected: dict[str, Any]


def make_served(client: TestClient, account: Account) -> Served:
    """Train a tiny model under a fresh name, alias it ``production``, predict ROWS."""
    name = f"proto-{uuid.uuid4().hex[:8]}"
    dataset = tiny_dataset(client, account)
    job = wait_for_job(
        client, account, submit_ok(client, account, small_job_body(dataset, name=name))
    )
    assert job["status"] == "succeeded", job
    model = client.get(f"/api/v1/models/{job['model_id']}", headers=account.headers).json()
    aliased = client.put(
        f"/api/v1/registry/{name}/aliases/production", headers=account.headers, json={"version": 1}
    )
    assert aliased.status_code == 200, aliased.text
    expected = client.post(
        f"/api/v1/models/{model['id']}/predict", headers=account.headers, json={"inputs": ROWS}
    ).json()
    return Served(name=name, model=model, expected=expected)


def add_viewer(deployment: Deployment, organization: Account, viewer: Account) -> dict[str, str]:
    """Make ``viewer`` a viewer of ``organization``'s organization; headers acting there."""
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            session.add(
                Membership(
                    organization_id=uuid.UUID(organization.organization_id),
                    user_id=uuid.UUID(viewer.id),
                    role=Role.VIEWER,
                )
            )
    finally:
        engine.dispose()
    return {**viewer.headers, "X-DLP-Org": organization.organization_id}

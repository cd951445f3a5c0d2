"""The L2 cache through the API: another API process loads a hot model from Redis
without touching the file store, and a tampered Redis entry is never served."""

from __future__ import annotations

import shutil
import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from dlp.main import create_app
from dlp.predictions.file_cache import model_key
from tests.conftest import Account, Deployment
from tests.factories import ROWS, Served


def test_second_process_serves_from_redis_without_the_store(
    client: TestClient, account: Account, deployment: Deployment, served: Served
) -> None:
    if deployment.settings.redis_url is None:
        pytest.skip("the embedded shape has no L2 cache")
    store = redis.Redis.from_url(deployment.settings.redis_url)
    assert store.exists(model_key(uuid.UUID(served.model["id"])))  # warmed by the first predict
    files = deployment.store_root / "orgs" / account.organization_id / "models" / served.model["id"]
    moved = files.with_name(files.name + ".away")
    shutil.move(files, moved)
    try:
        with TestClient(create_app(deployment.settings)) as other_process:
            answer = other_process.post(
                f"/api/v1/models/{served.model['id']}/predict",
                headers=account.headers,
                json={"inputs": ROWS},
            )
    finally:
        shutil.move(moved, files)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == served.expected["predictions"]

"""The API process raises its young-generation GC threshold while it serves, and puts
Python's back when it stops (requests in flight must not be promoted into full
collections of the whole heap several times a second)."""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi.testclient import TestClient

from dlp.main import create_app
from tests.conftest import installation


def test_api_sets_and_restores_the_gc_threshold(tmp_path: Path) -> None:
    before = gc.get_threshold()
    with (
        installation("embedded", tmp_path, api_gc_threshold=12_345) as deployed,
        TestClient(create_app(deployed.settings)) as client,
    ):
        assert client.get("/health").status_code == 200
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before

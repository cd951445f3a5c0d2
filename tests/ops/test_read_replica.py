"""``DLP_DATABASE_READ_URL``: GET requests read from the replica, everything else writes to
the primary (scale-out shape).

The "replica" is the same database reached with ``default_transaction_read_only=on``
and its own ``application_name``: a GET that tried to write there would fail, exactly
as on a real hot standby.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, make_url, text

from dlp.main import create_app
from tests.conftest import REDIS_URL, installation, register_account, scaleout_only
from tests.factories import table_csv, upload_ok

READ_ONLY = "-c default_transaction_read_only=on"


class Recorder:
    """The SQL each engine ran, by engine."""

    def __init__(self, **engines: Engine) -> None:
        self.seen: dict[str, list[str]] = {name: [] for name in engines}
        for name, engine in engines.items():
            event.listen(engine, "before_cursor_execute", self._hook(name))

    def _hook(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.seen[name].append(str(args[2]))

        return record

    def clear(self) -> None:
        """Forget what was seen."""
        for statements in self.seen.values():
            statements.clear()

    def touched(self, name: str, fragment: str) -> bool:
        """Whether engine ``name`` ran a statement holding ``fragment``."""
        return any(fragment in statement for statement in self.seen[name])


@pytest.fixture
def replicated(shape: str, tmp_path: Path) -> Iterator[tuple[TestClient, Recorder]]:
    """An API whose read URL is its database, read-only and named ``dlp-replica``."""
    redis_url = f"{REDIS_URL.rsplit('/', 1)[0]}/14"
    with installation(shape, tmp_path / "data", redis_url=redis_url) as deployed:
        primary = make_url(deployed.settings.sqlalchemy_url)
        replica = primary.update_query_dict(
            {"application_name": "dlp-replica", "options": READ_ONLY}
        )
        settings = deployed.settings.model_copy(
            update={"database_read_url": replica.render_as_string(hide_password=False)}
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            platform = client.app.state.platform  # type: ignore[attr-defined]
            assert platform.read_engine is not None
            yield client, Recorder(primary=platform.engine, replica=platform.read_engine)


@scaleout_only
def test_gets_read_from_the_replica_and_writes_go_to_the_primary(
    replicated: tuple[TestClient, Recorder],
) -> None:
    client, recorder = replicated
    account = register_account(client)
    recorder.clear()
    dataset = upload_ok(client, account, table_csv(["a", "y"], [[1.0, 0], [2.0, 1]]))
    assert recorder.touched("primary", "INSERT INTO datasets")
    assert not recorder.seen["replica"]

    recorder.clear()
    listed = client.get("/api/v1/datasets", headers=account.headers)
    shown = client.get(f"/api/v1/datasets/{dataset['id']}", headers=account.headers)
    assert listed.status_code == 200 and shown.status_code == 200
    assert listed.json()["total"] == 1
    assert recorder.touched("replica", "FROM datasets")
    # (The API's reaper may query the primary meanwhile: only the request's tables count.)
    assert not recorder.touched("primary", "datasets")
    assert not recorder.touched("primary", "users")

    replica_engine = client.app.state.platform.read_engine  # type: ignore[attr-defined]
    with replica_engine.connect() as connection:
        name = connection.execute(text("SHOW application_name")).scalar()
        read_only = connection.execute(text("SHOW transaction_read_only")).scalar()
    assert (name, read_only) == ("dlp-replica", "on")


@scaleout_only
def test_an_api_key_used_on_a_get_is_touched_on_the_primary(
    replicated: tuple[TestClient, Recorder],
) -> None:
    client, recorder = replicated
    account = register_account(client)
    made = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "script"})
    assert made.status_code == 201, made.text
    recorder.clear()

    listed = client.get("/api/v1/datasets", headers={"X-API-Key": made.json()["key"]})

    assert listed.status_code == 200, listed.text
    assert recorder.touched("replica", "FROM api_keys")
    assert recorder.touched("primary", "UPDATE api_keys")
    keys = client.get("/api/v1/api-keys", headers=account.headers).json()["items"]
    assert keys[0]["last_used_at"] is not None

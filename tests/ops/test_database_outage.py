"""The API through a database that goes away and comes back: clear 503s meanwhile,
and a full recovery afterwards without a restart."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import make_url

from dlp.main import create_app
from tests.factories import fresh_installation
from tests.tcp_proxy import TcpProxy


def test_api_answers_503_while_the_database_is_away_then_recovers(tmp_path: Path) -> None:
    with fresh_installation("scaleout", tmp_path) as (deployed, _, account):
        url = make_url(deployed.settings.sqlalchemy_url)
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            settings = deployed.settings.model_copy(update={"database_url": proxied})
            with TestClient(create_app(settings), raise_server_exceptions=False) as client:
                assert client.get("/api/v1/users/me", headers=account.headers).status_code == 200
                proxy.cut()
                away = [client.get("/api/v1/users/me", headers=account.headers) for _ in range(3)]
                ready = client.get("/ready")
                proxy.restore()
                time.sleep(0.2)
                back = client.get("/api/v1/users/me", headers=account.headers)

    for response in away:
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "service_unavailable" and "database" in body["message"]
        assert body["request_id"]
    assert ready.status_code == 503 and "database" in ready.json()["message"]
    assert back.status_code == 200, back.text

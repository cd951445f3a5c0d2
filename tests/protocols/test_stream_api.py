"""Real-time inference over the model WebSocket: answers as inputs arrive, errors keep it open."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import Account
from tests.factories import ROWS, Served


def test_stream_answers_each_message_and_survives_bad_ones(
    client: TestClient, account: Account, served: Served
) -> None:
    path = f"/api/v1/models/{served.model['id']}/stream?token={account.access_token}"
    with client.websocket_connect(path) as websocket:
        websocket.send_json({"inputs": ROWS})
        first = websocket.receive_json()
        websocket.send_text("not json")
        broken = websocket.receive_json()
        websocket.send_json({"inputs": [{"a": 1.0}]})
        missing = websocket.receive_json()
        websocket.send_json({"inputs": ROWS[:1]})
        last = websocket.receive_json()
    assert first["predictions"] == served.expected["predictions"]
    assert first["model_version"] == 1
    assert broken["error"] == "validation_error" and "not JSON" in broken["message"]
    assert missing["error"] == "validation_error" and "'b'" in missing["message"]
    assert last["predictions"] == served.expected["predictions"][:1]


@pytest.mark.parametrize(("who", "code"), [("nobody", 4401), ("stranger", 4404)])
def test_stream_refuses_bad_tokens_and_strangers(
    client: TestClient,
    account: Account,
    other_account: Account,
    served: Served,
    who: str,
    code: int,
) -> None:
    token = "not-a-token" if who == "nobody" else other_account.access_token
    path = f"/api/v1/models/{served.model['id']}/stream?token={token}"
    with client.websocket_connect(path) as websocket, pytest.raises(WebSocketDisconnect) as closed:
        websocket.receive_json()
    assert closed.value.code == code

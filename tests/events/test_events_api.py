"""Live job events over HTTP with a real worker: Server-Sent Events and WebSocket.

The worker publishes nothing yet, so on both shapes these streams are carried by
the database catch-up alone.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from dlp.events.bus import RedisJobEvents
from dlp.events.payloads import log_event
from tests.conftest import Account, Deployment
from tests.factories import submit_job, table_csv, upload_ok, wait_for_job

EPOCHS = 3
TERMINAL = {"succeeded", "failed", "cancelled"}
EPOCH_METRICS = {"train_loss", "val_loss", "val_accuracy"}
STREAM_TIMEOUT = 180


def _submit_small_job(client: TestClient, account: Account) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    rows = [[*map(float, row), int(label)] for row, label in zip(x, y, strict=True)]
    dataset = upload_ok(client, account, table_csv(["a", "b", "c", "label"], rows), "stream.csv")
    response = submit_job(
        client,
        account,
        dataset_id=dataset["id"],
        task="classification",
        target="label",
        training={"epochs": EPOCHS, "batch_size": 32},
    )
    assert response.status_code == 202, response.text
    return response.json()


def read_sse(client: TestClient, account: Account, job_id: str) -> tuple[Any, list[dict], str]:
    """The response, the parsed events and the raw body of a job's SSE stream."""
    with client.stream(
        "GET",
        f"/api/v1/training/jobs/{job_id}/events",
        headers=account.headers,
        timeout=STREAM_TIMEOUT,
    ) as response:
        body = "".join(response.iter_text())
    return response, parse_sse(body), body


def parse_sse(body: str) -> list[dict]:
    """The ``data`` of each frame, checked against its ``event:`` line."""
    events = []
    for frame in body.split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        event = json.loads(fields["data"])
        assert fields["event"] == event["type"], frame
        events.append(event)
    return events


def read_ws(client: TestClient, path: str) -> tuple[list[dict], int]:
    """Every message of a WebSocket as JSON, and the code it was closed with."""
    events = []
    with client.websocket_connect(path) as websocket:
        while True:
            try:
                events.append(json.loads(websocket.receive_text()))
            except WebSocketDisconnect as closed:
                return events, closed.code


def ws_close_code(client: TestClient, path: str) -> int:
    """The close code of a refused WebSocket, which must send nothing first."""
    events, code = read_ws(client, path)
    assert events == []
    return code


def assert_complete_stream(
    client: TestClient, account: Account, job_id: str, events: list[dict]
) -> dict:
    """Every epoch's metrics once, in row order, then exactly one terminal status, last."""
    terminal = [e for e in events if e["type"] == "status" and e["status"] in TERMINAL]
    assert len(terminal) == 1 and events[-1] is terminal[0], events
    final = terminal[0]
    assert final["status"] == "succeeded", final
    assert final["model_id"] and final["error_message"] is None
    assert {"val_loss", "val_accuracy"} <= set(final["metrics"])
    assert final["progress"]["total_epochs"] == EPOCHS

    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert all(a != b for a, b in itertools.pairwise(statuses)), statuses
    assert set(statuses) <= {"queued", "running", "succeeded"}

    metrics = [e for e in events if e["type"] == "metric"]
    ids = [m["id"] for m in metrics]
    assert ids == sorted(set(ids)), "metric events must be unique and in row order"
    epochs = range(1, final["progress"]["epoch"] + 1)
    assert len(epochs) >= 1
    for epoch in epochs:
        names = {m["name"] for m in metrics if m["epoch"] == epoch}
        assert names >= EPOCH_METRICS, (epoch, names)
    for metric in metrics:
        assert set(metric) == {"type", "id", "epoch", "step", "name", "value", "at"}

    stored = client.get(f"/api/v1/training/jobs/{job_id}/metrics", headers=account.headers)
    assert [(m["epoch"], m["name"], m["value"]) for m in metrics] == [
        (m["epoch"], m["name"], m["value"]) for m in stored.json()["items"]
    ]
    job = client.get(f"/api/v1/training/jobs/{job_id}", headers=account.headers).json()
    assert final["model_id"] == job["model_id"] and final["metrics"] == job["metrics"]
    return final


def test_sse_follows_a_job_from_the_queue_to_its_end(client: TestClient, account: Account) -> None:
    job = _submit_small_job(client, account)
    response, events, body = read_sse(client, account, job["id"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert body.startswith("event: status\ndata: {")
    # Connected right after submitting: the stream starts before the job ends.
    assert events[0]["type"] == "status" and events[0]["status"] in {"queued", "running"}
    assert set(events[0]) == {
        "type",
        "status",
        "progress",
        "metrics",
        "error_message",
        "model_id",
        "at",
    }
    assert_complete_stream(client, account, job["id"], events)


def test_websocket_follows_a_job_from_the_queue_to_its_end(
    client: TestClient, account: Account
) -> None:
    job = _submit_small_job(client, account)
    events, code = read_ws(
        client, f"/api/v1/training/jobs/{job['id']}/ws?token={account.access_token}"
    )
    assert code == 1000
    assert events[0]["type"] == "status" and events[0]["status"] in {"queued", "running"}
    assert_complete_stream(client, account, job["id"], events)


def test_a_stream_of_an_ended_job_replays_it_and_ends(client: TestClient, account: Account) -> None:
    job = _submit_small_job(client, account)
    assert wait_for_job(client, account, job["id"])["status"] == "succeeded"

    response, sse_events, _ = read_sse(client, account, job["id"])
    assert response.status_code == 200
    assert_complete_stream(client, account, job["id"], sse_events)
    assert [e["type"] for e in sse_events[:-1]] == ["metric"] * (len(sse_events) - 1)

    key = client.post("/api/v1/api-keys", headers=account.headers, json={"name": "stream"})
    assert key.status_code == 201, key.text
    ws_events, code = read_ws(
        client,
        f"/api/v1/training/jobs/{job['id']}/ws"
        f"?token={key.json()['key']}&org={account.organization_id}",
    )
    assert code == 1000
    assert ws_events == sse_events


def test_streams_refuse_other_tenants_and_bad_credentials(
    client: TestClient, account: Account, other_account: Account
) -> None:
    job = _submit_small_job(client, account)
    path = f"/api/v1/training/jobs/{job['id']}"

    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "dlp_nope"}):
        answer = client.get(f"{path}/events", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "authentication_error"
    for account_, job_path in (
        (other_account, path),
        (account, f"/api/v1/training/jobs/{uuid.uuid4()}"),
    ):
        answer = client.get(f"{job_path}/events", headers=account_.headers)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "not_found"

    assert ws_close_code(client, f"{path}/ws") == 4401
    assert ws_close_code(client, f"{path}/ws?token=not-a-token") == 4401
    assert ws_close_code(client, f"{path}/ws?token=dlp_nope") == 4401
    assert ws_close_code(client, f"{path}/ws?token={other_account.access_token}") == 4404
    assert (
        ws_close_code(
            client,
            f"{path}/ws?token={account.access_token}&org={other_account.organization_id}",
        )
        == 4403
    )
    unknown = f"/api/v1/training/jobs/{uuid.uuid4()}/ws?token={account.access_token}"
    assert ws_close_code(client, unknown) == 4404
    wait_for_job(client, account, job["id"])


@pytest.mark.parametrize("kind", ["sse", "ws"])
def test_stream_ends_with_a_cancelled_job(client: TestClient, account: Account, kind: str) -> None:
    job = _submit_small_job(client, account)
    cancelled = client.post(f"/api/v1/training/jobs/{job['id']}/cancel", headers=account.headers)
    assert cancelled.status_code in {202, 409}, cancelled.text
    if kind == "sse":
        events = read_sse(client, account, job["id"])[1]
    else:
        path = f"/api/v1/training/jobs/{job['id']}/ws?token={account.access_token}"
        events, code = read_ws(client, path)
        assert code == 1000
    final = wait_for_job(client, account, job["id"])
    assert events[-1]["type"] == "status" and events[-1]["status"] == final["status"]
    assert [e for e in events if e["type"] == "status" and e["status"] in TERMINAL] == [events[-1]]


def test_live_events_published_on_redis_reach_the_websocket(
    client: TestClient, account: Account, deployment: Deployment
) -> None:
    if deployment.settings.redis_url is None:
        pytest.skip("the embedded shape has no live channel: its streams read the database")
    job = _submit_small_job(client, account)
    bus = RedisJobEvents(deployment.settings.redis_url)
    path = f"/api/v1/training/jobs/{job['id']}/ws?token={account.access_token}"
    try:
        with client.websocket_connect(path) as websocket:
            events = [json.loads(websocket.receive_text())]
            # The snapshot is in; the next database catch-up is seconds away.
            bus.publish(uuid.UUID(job["id"]), log_event("hello from the worker"))
            while not (events[-1]["type"] == "status" and events[-1]["status"] in TERMINAL):
                events.append(json.loads(websocket.receive_text()))
    finally:
        bus.close()
    # The worker's own log lines (its "started on ...") may come too, if they were
    # published after the subscription.
    assert "hello from the worker" in [e["message"] for e in events if e["type"] == "log"]
    assert_complete_stream(client, account, job["id"], events)


def _subscribers(deployment: Deployment, job_id: str) -> int | None:
    """Followers of the job's Redis channel (None on the embedded shape)."""
    if deployment.settings.redis_url is None:
        return None
    channel = f"dlp:jobs:{job_id}:events"
    answer = redis.Redis.from_url(deployment.settings.redis_url).pubsub_numsub(channel)
    return int(answer[0][1])


def _wait_for_subscribers(deployment: Deployment, job_id: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while _subscribers(deployment, job_id) not in (None, count):
        assert time.monotonic() < deadline, f"still {_subscribers(deployment, job_id)} followers"
        time.sleep(0.05)


def test_clients_that_leave_early_release_their_subscription(
    client: TestClient, account: Account, deployment: Deployment
) -> None:
    dataset_job = _submit_small_job(client, account)
    long_job = submit_job(
        client,
        account,
        dataset_id=dataset_job["dataset_id"],
        task="classification",
        target="label",
        training={"epochs": 10_000, "early_stopping_patience": 0, "batch_size": 32},
    ).json()
    job_id = long_job["id"]
    try:
        path = f"/api/v1/training/jobs/{job_id}"
        with client.stream("GET", f"{path}/events", headers=account.headers) as response:
            first = next(response.iter_lines())
            assert first == "event: status"
            _wait_for_subscribers(deployment, job_id, 1)
        _wait_for_subscribers(deployment, job_id, 0)

        with client.websocket_connect(f"{path}/ws?token={account.access_token}") as websocket:
            assert json.loads(websocket.receive_text())["type"] == "status"
            _wait_for_subscribers(deployment, job_id, 1)
        _wait_for_subscribers(deployment, job_id, 0)
    finally:
        client.post(f"/api/v1/training/jobs/{job_id}/cancel", headers=account.headers)
    assert wait_for_job(client, account, job_id)["status"] == "cancelled"
    assert wait_for_job(client, account, dataset_job["id"])["status"] == "succeeded"


def test_openapi_documents_the_event_stream(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    answer = spec["paths"]["/api/v1/training/jobs/{job_id}/events"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["text/event-stream"]

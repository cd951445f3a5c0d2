"""gzip: large answers compressed for clients that accept it; small ones, event streams
and downloads never."""

from __future__ import annotations

import gzip

import httpx
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import small_job_body, submit_ok, tiny_dataset

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def test_a_large_answer_is_gzipped_when_the_client_accepts_it_and_plain_otherwise(
    client: TestClient,
) -> None:
    compressed = client.get("/openapi.json", headers=GZIP)
    assert compressed.status_code == 200
    assert compressed.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in compressed.headers["vary"]
    assert int(compressed.headers["content-length"]) < len(compressed.content) / 4
    assert compressed.json()["openapi"].startswith("3.")

    plain = client.get("/openapi.json", headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain.content == compressed.content


def test_the_bytes_on_the_wire_are_gzip(client: TestClient) -> None:
    with client.stream("GET", "/openapi.json", headers=GZIP) as response:
        raw = b"".join(response.iter_raw())
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw).startswith(b"{")


def test_a_small_answer_is_not_compressed(client: TestClient) -> None:
    answer = client.get("/health", headers=GZIP)
    assert answer.json() == {"status": "ok"}
    assert "content-encoding" not in answer.headers


def test_an_event_stream_and_a_download_are_not_gzipped(
    client: TestClient, account: Account
) -> None:
    dataset = tiny_dataset(client, account, rows=400)
    download = client.get(
        f"/api/v1/datasets/{dataset}/download", headers={**account.headers, **GZIP}
    )
    assert download.status_code == 200
    assert "content-encoding" not in download.headers
    assert int(download.headers["content-length"]) == len(download.content) > 1024

    job_id = submit_ok(client, account, small_job_body(dataset, epochs=1))
    cancelled = client.post(f"/api/v1/training/jobs/{job_id}/cancel", headers=account.headers)
    assert cancelled.status_code == 202, cancelled.text
    with client.stream(
        "GET",
        f"/api/v1/training/jobs/{job_id}/events",
        headers={**account.headers, **GZIP},
        timeout=httpx.Timeout(60),
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in stream.headers
        body = b"".join(stream.iter_raw())
    assert b"event: status" in body

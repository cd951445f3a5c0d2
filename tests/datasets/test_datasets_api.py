"""Dataset endpoints: streamed uploads, profiles, tenancy, and every bad file refused cleanly."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from dlp.datasets.models import Dataset
from dlp.db import session_scope
from dlp.main import create_app
from dlp.platform import Platform
from tests.conftest import Account, Deployment
from tests.factories import table_csv, upload, upload_ok

SMALL = table_csv(
    ["age", "city", "score"],
    [[31, "Paris", 1.5], [None, "Lyon", 2.5], [45, "Paris", None], [52, "Nice", 4.0]],
)


def _org_files(deployment: Deployment, account: Account) -> list[Path]:
    root = deployment.store_root / "orgs" / account.organization_id
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _total(client: TestClient, account: Account) -> int:
    return client.get("/api/v1/datasets", headers=account.headers).json()["total"]


def test_upload_csv_profiles_columns(client: TestClient, account: Account) -> None:
    dataset = upload_ok(client, account, SMALL, "people.csv")
    assert dataset["name"] == "people.csv"
    assert dataset["kind"] == "tabular"
    assert dataset["status"] == "ready"
    assert dataset["n_rows"] == 4
    assert dataset["size_bytes"] == len(SMALL)
    columns = {c["name"]: c for c in dataset["schema"]["columns"]}
    assert columns["age"] == {**columns["age"], "dtype": "int64", "n_missing": 1, "n_unique": 3}
    assert columns["city"]["dtype"] == "string" and columns["city"]["n_unique"] == 3
    assert columns["score"]["dtype"] == "float64" and columns["score"]["n_missing"] == 1


def test_upload_parquet_with_name(client: TestClient, account: Account) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]}), buffer)
    response = upload(client, account, buffer.getvalue(), "t.parquet", name="my table")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "my table" and body["format"] == "parquet" and body["n_rows"] == 3


def test_column_type_widened_when_later_rows_need_it(client: TestClient, account: Account) -> None:
    rows = [[i, "a"] for i in range(40_000)] + [[0.5, "b"]]
    dataset = upload_ok(client, account, table_csv(["x", "y"], rows))
    assert dataset["schema"]["columns"][0]["dtype"] == "float64"
    assert dataset["n_rows"] == 40_001


def test_the_dataset_answer_carries_a_histogram_per_column(
    client: TestClient, account: Account
) -> None:
    buffer = io.BytesIO()
    table = pa.table({"x": [1.0, 2.0, 3.0, None], "label": ["a", "b", "a", None]})
    pq.write_table(table.append_column("gone", pa.nulls(4, pa.int64())), buffer)
    created = upload_ok(client, account, buffer.getvalue(), "t.parquet")
    got = client.get(f"/api/v1/datasets/{created['id']}", headers=account.headers).json()
    x, label, gone = got["schema"]["columns"]
    assert x["histogram"]["kind"] == "numeric" and sum(x["histogram"]["counts"]) == 3
    assert x["histogram"]["edges"][0] == 1.0 and x["histogram"]["edges"][-1] == 3.0
    assert label["histogram"] == {
        "kind": "categorical",
        "values": ["a", "b"],
        "counts": [2, 1],
        "other": 0,
        "exact": True,
    }
    assert gone["histogram"] is None
    spec = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"NumericHistogram", "CategoricalHistogram", "ColumnOut"} <= spec.keys()


def test_a_profile_stored_before_histograms_still_loads(
    client: TestClient, account: Account
) -> None:
    created = upload_ok(client, account, SMALL, "old.csv")
    platform: Platform = client.app.state.platform
    with session_scope(platform.sessions) as session:
        dataset = session.get(Dataset, uuid.UUID(created["id"]))
        assert dataset is not None
        dataset.profile = {
            "columns": [
                {key: value for key, value in column.items() if key != "histogram"}
                for column in dataset.profile["columns"]
            ]
        }
    got = client.get(f"/api/v1/datasets/{created['id']}", headers=account.headers)
    assert got.status_code == 200, got.text
    assert [c["histogram"] for c in got.json()["schema"]["columns"]] == [None, None, None]


def test_list_get_download_delete(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    first = upload_ok(client, account, SMALL, "a.csv")
    second = upload_ok(client, account, SMALL, "b.csv")
    listing = client.get("/api/v1/datasets", headers=account.headers, params={"limit": 1}).json()
    assert listing["total"] == 2 and listing["limit"] == 1 and listing["offset"] == 0
    assert [item["id"] for item in listing["items"]] == [second["id"]]
    got = client.get(f"/api/v1/datasets/{first['id']}", headers=account.headers)
    assert got.status_code == 200 and got.json()["schema"] == first["schema"]
    download = client.get(f"/api/v1/datasets/{first['id']}/download", headers=account.headers)
    assert download.status_code == 200 and download.content == SMALL
    assert (
        client.delete(f"/api/v1/datasets/{first['id']}", headers=account.headers).status_code == 204
    )
    assert client.get(f"/api/v1/datasets/{first['id']}", headers=account.headers).status_code == 404
    assert all(first["id"] not in str(path) for path in _org_files(deployment, account))
    assert any(second["id"] in str(path) for path in _org_files(deployment, account))
    assert (
        client.get("/api/v1/datasets", params={"limit": 500}, headers=account.headers).status_code
        == 422
    )


def test_other_tenant_sees_404(
    client: TestClient, account: Account, other_account: Account
) -> None:
    dataset = upload_ok(client, account, SMALL)
    for method, path in [
        ("GET", f"/api/v1/datasets/{dataset['id']}"),
        ("GET", f"/api/v1/datasets/{dataset['id']}/download"),
        ("DELETE", f"/api/v1/datasets/{dataset['id']}"),
    ]:
        response = client.request(method, path, headers=other_account.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"
    assert client.get("/api/v1/datasets", headers=other_account.headers).json()["total"] == 0
    assert (
        client.get(f"/api/v1/datasets/{dataset['id']}", headers=account.headers).status_code == 200
    )


@pytest.mark.parametrize(
    ("content", "filename", "status", "code", "words"),
    [
        (b"", "empty.csv", 422, "validation_error", "empty"),
        (bytes(range(256)) * 40, "binary.csv", 422, "validation_error", "not a text CSV"),
        (b"\xff\xfe\xfa" + b"a,b\n" * 100, "latin.csv", 422, "validation_error", "UTF-8"),
        (b"a,b\n1,2\n3,4,5\n", "ragged.csv", 422, "validation_error", "Expected 2 columns"),
        (b"a,b\n", "header.csv", 422, "validation_error", "no data rows"),
        (b"a,a\n1,2\n", "dupe.csv", 422, "validation_error", "distinct"),
        (b"PAR1garbage", "bad.parquet", 422, "validation_error", "Parquet"),
        (b"a,b\n1,2\n", "data.txt", 415, "unsupported_media_type", ".txt"),
        (b"PK\x03\x04", "images.zip", 422, "validation_error", "zip"),
    ],
)
def test_bad_files_are_refused_and_leave_nothing(
    client: TestClient,
    deployment: Deployment,
    account: Account,
    content: bytes,
    filename: str,
    status: int,
    code: str,
    words: str,
) -> None:
    before_files = _org_files(deployment, account)
    before_total = _total(client, account)
    response = upload(client, account, content, filename)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and words in body["message"], body
    assert _total(client, account) == before_total
    assert _org_files(deployment, account) == before_files


def test_bad_forms_are_refused(
    client: TestClient, deployment: Deployment, account: Account
) -> None:
    no_file = client.post(
        "/api/v1/datasets",
        headers=account.headers,
        data={"name": "x"},
        files={"other": ("a.csv", b"a\n1\n")},
    )
    assert no_file.status_code == 422 and "file" in no_file.json()["message"]
    not_multipart = client.post("/api/v1/datasets", headers=account.headers, json={"file": "a,b"})
    assert not_multipart.status_code == 415
    bad_kind = upload(client, account, SMALL, "k.csv", kind="video")
    assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["message"]
    truncated = client.post(
        "/api/v1/datasets",
        headers={**account.headers, "content-type": "multipart/form-data; boundary=XYZ"},
        content=(
            b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            b"\r\na,b\n1,2\n"
        ),
    )
    assert truncated.status_code == 422
    assert _total(client, account) == 0
    assert _org_files(deployment, account) == []


def test_upload_over_limit_is_stopped_with_413(deployment: Deployment, account: Account) -> None:
    limited = deployment.settings.model_copy(update={"max_upload_mb": 1})
    with TestClient(create_app(limited), raise_server_exceptions=False) as small_client:
        big = b"a,b\n" + b"123456,654321\n" * 100_000
        response = upload(small_client, account, big, "big.csv")
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "payload_too_large"

        def body():
            yield (
                b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\n"
            )
            for _ in range(40):
                yield b"1,2\n" * 16_384
            yield b"\r\n--XYZ--\r\n"

        chunked = small_client.post(
            "/api/v1/datasets",
            headers={**account.headers, "content-type": "multipart/form-data; boundary=XYZ"},
            content=body(),
        )
        assert chunked.status_code == 413, chunked.text
        assert _total(small_client, account) == 0
    assert _org_files(deployment, account) == []


def test_viewer_cannot_delete_and_unauthenticated_cannot_list(client: TestClient) -> None:
    assert client.get("/api/v1/datasets").status_code == 401
    assert client.post("/api/v1/datasets", files={"file": ("a.csv", SMALL)}).status_code == 401

"""MLflow's scoring format on registry names: JSON layouts and CSV give /predict's answer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import ROWS, Served

COLUMNS = ["a", "b", "c"]


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in ROWS]}},
        {"dataframe_records": ROWS},
        {"instances": ROWS},
        {"inputs": {c: [r[c] for r in ROWS] for c in COLUMNS}},
        {"inputs": [[r[c] for c in COLUMNS] for r in ROWS]},
    ],
)
def test_json_layouts_match_predict(
    client: TestClient, account: Account, served: Served, body: dict[str, Any]
) -> None:
    response = client.post(
        f"/api/v1/registry/{served.name}/invocations", headers=account.headers, json=body
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": served.expected["predictions"]}
    assert response.headers["X-DLP-Model-Version"] == "1"


def test_csv_matches_predict(client: TestClient, account: Account, served: Served) -> None:
    csv = "a,b,c\n" + "\n".join(",".join(str(r[c]) for c in COLUMNS) for r in ROWS)
    response = client.post(
        f"/api/v1/registry/{served.name}/invocations",
        headers={**account.headers, "Content-Type": "text/csv"},
        content=csv.encode(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == served.expected["predictions"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "words"),
    [
        (b'{"instances": [], "inputs": []}', "application/json", 422, "exactly one"),
        (b"not json", "application/json", 422, "not JSON"),
        (
            b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}',
            "application/json",
            422,
            "row 0",
        ),
        (b'{"instances": []}', "application/json", 422, "between 1 and 1000"),
        (b'{"dataframe_records": [{"a": 1, "b": 2}]}', "application/json", 422, "c"),
        (b"a,b,c\n1,2,3", "application/xml", 415, "text/csv"),
    ],
)
def test_bad_bodies_are_refused_clearly(
    client: TestClient,
    account: Account,
    served: Served,
    content: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    response = client.post(
        f"/api/v1/registry/{served.name}/invocations",
        headers={**account.headers, "Content-Type": content_type},
        content=content,
    )
    assert response.status_code == status, response.text
    assert words in response.json()["message"]

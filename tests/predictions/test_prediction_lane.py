"""The prediction lane answers like any FastAPI route: contract errors, metrics labels
by route template, and both routes in the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.factories import ROWS, Served


def test_bad_prediction_requests_get_the_contract_errors(
    client: TestClient, account: Account, served: Served
) -> None:
    url = f"/api/v1/models/{served.model['id']}/predict"

    def refused(status: int, path: str, fragment: str, **kwargs: object) -> None:
        response = client.post(path, headers=account.headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        body = response.json()
        assert fragment in body["message"], body
        assert body["request_id"] == response.headers["x-request-id"]

    refused(422, url, "JSON", content=b"{not json")
    refused(422, url, "inputs", json={"inputs": []})
    refused(422, url, "inputs", json={"inputs": [{"a": 1}] * 1001})
    refused(422, url, "rows", json={"rows": ROWS})
    refused(422, "/api/v1/models/not-a-uuid/predict", "model_id", json={"inputs": ROWS})
    refused(422, f"/api/v1/registry/{'n' * 101}/predict", "name", json={"inputs": ROWS})
    refused(404, "/api/v1/registry/no-such-name/predict", "no-such-name", json={"inputs": ROWS})
    response = client.post(url, json={"inputs": ROWS})
    assert response.status_code == 401 and response.json()["error"] == "authentication_error"
    assert client.get(url, headers=account.headers).status_code in (404, 405)


def test_lane_requests_are_measured_by_route_template(
    client: TestClient, account: Account, served: Served
) -> None:
    by_id = client.post(
        f"/api/v1/models/{served.model['id']}/predict",
        headers=account.headers,
        json={"inputs": ROWS},
    )
    by_name = client.post(
        f"/api/v1/registry/{served.name}/predict", headers=account.headers, json={"inputs": ROWS}
    )
    assert by_id.json() == served.expected
    assert by_name.json()["predictions"] == served.expected["predictions"]
    text = client.get("/metrics").text
    for template in ("/api/v1/models/{model_id}/predict", "/api/v1/registry/{name}/predict"):
        assert f'route="{template}",status="200"' in text, template


def test_openapi_documents_both_prediction_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/models/{model_id}/predict", "/api/v1/registry/{name}/predict"):
        operation = spec["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/PredictRequest"}
        assert operation["security"]
    schemas = spec["components"]["schemas"]
    assert schemas["PredictRequest"]["properties"]["inputs"]["maxItems"] == 1000
    assert "model_version" in schemas["PredictResponse"]["properties"]

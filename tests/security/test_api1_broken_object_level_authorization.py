"""OWASP API1:2023, broken object level authorization: a tenant reaching another's objects.

The walk reads the live OpenAPI document, so a route added later is covered (or fails
here for want of a request body) without anyone remembering to add it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import Account, register_account
from tests.factories import ROWS, make_served

# A valid body for each write route, so the refusal is about ownership, never validation.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/api/v1/models/{model_id}/serving"): {"variant": "fp32"},
    ("post", "/api/v1/models/{model_id}/predict"): {"inputs": ROWS},
    ("post", "/api/v1/models/{model_id}/batch-predictions"): {"dataset_id": "{dataset_id}"},
    ("put", "/api/v1/registry/{name}/aliases/{alias}"): {"version": 1},
    ("put", "/api/v1/registry/{name}/traffic"): {"1": 1},
    ("post", "/api/v1/registry/{name}/predict"): {"inputs": ROWS},
    ("post", "/api/v1/registry/{name}/invocations"): {"instances": ROWS},
    ("patch", "/api/v1/organizations/current/members/{user_id}"): {"role": "viewer"},
    ("post", "/v2/models/{name}/infer"): {
        "inputs": [
            {"name": c, "shape": [1, 1], "datatype": "FP32", "data": [ROWS[0][c]]} for c in "abc"
        ]
    },
}
BODIES[("post", "/v2/models/{name}/versions/{version}/infer")] = BODIES[
    ("post", "/v2/models/{name}/infer")
]
# Writes whose path's last segment says it all: they take no body.
NO_BODY = {"cancel", "quantize"}


@dataclass
class Estate:
    """One tenant's objects, one of each kind a path can name."""

    owner: Account
    ids: dict[str, str]

    def fill(self, template: str) -> str:
        """``template`` with each ``{param}`` replaced by the owner's object id."""
        return re.sub(r"\{(\w+)\}", lambda m: self.ids[self._key(template, m.group(1))], template)

    @staticmethod
    def _key(template: str, param: str) -> str:
        # Training jobs and batch predictions share the parameter name job_id.
        if param == "job_id" and template.startswith("/api/v1/batch-predictions"):
            return "batch_id"
        return param


@pytest.fixture(scope="module")
def estate(client: TestClient) -> Iterator[Estate]:
    """An organization holding a dataset, a job, a model with an alias, a study, a batch
    prediction and an API key."""
    owner = register_account(client)
    served = make_served(client, owner)
    model_id = served.model["id"]
    dataset_id = client.get("/api/v1/datasets", headers=owner.headers).json()["items"][0]["id"]
    study = client.post(
        "/api/v1/tuning/studies",
        headers=owner.headers,
        json={
            "dataset_id": dataset_id,
            "task": "classification",
            "target": "y",
            "model": {"type": "mlp"},
            "n_trials": 1,
            "parallelism": 1,
            "training": {"epochs": 1},
        },
    )
    assert study.status_code == 202, study.text
    client.post(f"/api/v1/tuning/studies/{study.json()['id']}/cancel", headers=owner.headers)
    batch = client.post(
        f"/api/v1/models/{model_id}/batch-predictions",
        headers=owner.headers,
        json={"dataset_id": dataset_id},
    )
    assert batch.status_code == 202, batch.text
    key = client.post("/api/v1/api-keys", headers=owner.headers, json={"name": "owner's"})
    assert key.status_code == 201, key.text
    invitation = client.post(
        "/api/v1/organizations/current/invitations",
        headers=owner.headers,
        json={"email": "guest@example.com", "role": "member"},
    )
    assert invitation.status_code == 201, invitation.text
    yield Estate(
        owner=owner,
        ids={
            "model_id": model_id,
            "dataset_id": dataset_id,
            "job_id": served.model["job_id"],
            "batch_id": batch.json()["id"],
            "study_id": study.json()["id"],
            "key_id": key.json()["id"],
            "invitation_id": invitation.json()["id"],
            "user_id": owner.id,
            "name": served.name,
            "alias": "production",
            "version": "1",
        },
    )


def _routes_naming_an_object(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    # /admin/ routes act across organizations by design, for the installation's superuser
    # only: everyone else gets 403 there (test_api5_broken_function_level_authorization).
    return [
        (method, path)
        for path, operations in paths.items()
        if "{" in path and not path.startswith("/api/v1/admin/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_route_with_an_id_answers_404_to_another_tenant(
    client: TestClient, estate: Estate
) -> None:
    """Walk every operation with a path parameter in the OpenAPI document, filled with the
    first tenant's ids, as a second tenant: each must answer 404 not_found, as for an id
    that does not exist, and leave the object untouched."""
    intruder = register_account(client)
    routes = _routes_naming_an_object(client)
    assert len(routes) >= 30, routes
    failures = []
    for method, template in routes:
        body = BODIES.get((method, template))
        needs_body = (
            method in {"post", "put", "patch"} and template.rsplit("/", 1)[-1] not in NO_BODY
        )
        assert body is not None or not needs_body, f"add a valid body for {method} {template}"
        if body is not None:
            body = {k: estate.fill(v) if isinstance(v, str) else v for k, v in body.items()}
        answer = client.request(
            method.upper(), estate.fill(template), headers=intruder.headers, json=body
        )
        # Under /v2/ the Open Inference Protocol puts the message in "error", the code in "code".
        code = answer.json().get("code" if template.startswith("/v2/") else "error")
        if answer.status_code != 404 or code != "not_found":
            failures.append((method, template, answer.status_code, answer.text[:200]))
    assert not failures, failures

    owner = estate.owner.headers
    ids = estate.ids
    for path in (
        f"/api/v1/models/{ids['model_id']}",
        f"/api/v1/datasets/{ids['dataset_id']}",
        f"/api/v1/training/jobs/{ids['job_id']}",
        f"/api/v1/batch-predictions/{ids['batch_id']}",
        f"/api/v1/tuning/studies/{ids['study_id']}",
    ):
        assert client.get(path, headers=owner).status_code == 200, path
    registry = client.get(f"/api/v1/registry/{ids['name']}/versions", headers=owner).json()
    assert registry["aliases"] == {"production": 1}, registry
    invitations = client.get("/api/v1/organizations/current/invitations", headers=owner).json()
    assert [i["id"] for i in invitations["items"]] == [ids["invitation_id"]], invitations
    keys = client.get("/api/v1/api-keys", headers=owner).json()
    assert ids["key_id"] in [k["id"] for k in keys["items"] if k["revoked_at"] is None], keys
    members = client.get("/api/v1/organizations/current/members", headers=owner).json()
    assert [m["role"] for m in members["items"]] == ["admin"], members


def test_choosing_another_tenants_organization_by_header_is_refused(
    client: TestClient, estate: Estate
) -> None:
    """Send X-DLP-Org naming the first tenant's organization with a second tenant's token:
    refused, and nothing of that organization is listed."""
    intruder = register_account(client)
    headers = {**intruder.headers, "X-DLP-Org": estate.owner.organization_id}
    for path in ("/api/v1/datasets", "/api/v1/models", f"/api/v1/models/{estate.ids['model_id']}"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 403, (path, answer.text)
        assert estate.ids["model_id"] not in answer.text


@pytest.mark.parametrize(
    "path",
    ["/api/v1/models/{model_id}/stream", "/api/v1/training/jobs/{job_id}/ws"],
    ids=["prediction-stream", "job-events"],
)
def test_websockets_refuse_another_tenants_objects(
    client: TestClient, estate: Estate, path: str
) -> None:
    """Open a WebSocket on the first tenant's model or job with a second tenant's token:
    closed with 4404, as for an object that does not exist, before any data is sent."""
    intruder = register_account(client)
    url = estate.fill(path) + f"?token={intruder.access_token}"
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as socket:
        socket.receive_text()
    assert closed.value.code == 4404

"""API10:2023 Unsafe consumption of APIs: files that come from outside the API's own code
(stored model weights, uploaded archives) are checked, never trusted or unpickled.

The archive checks are tested entry by entry in tests/datasets/test_archive.py; here each
hostile archive is sent through the upload endpoint and must leave nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import stat
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dlp.db import create_db_engine, create_session_factory, session_scope
from dlp.main import create_app
from dlp.registry.models import Model
from tests.conftest import Account, Deployment, register_account
from tests.factories import ROWS, small_job_body, submit_ok, tiny_dataset, upload, wait_for_job
from tests.images import encode_image

GREY = encode_image(np.arange(48, dtype=np.uint8).reshape(6, 8))
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def trained(client: TestClient) -> tuple[Account, dict[str, Any]]:
    """One account with one tiny trained model, never predicted (so no cache holds it)."""
    owner = register_account(client)
    dataset = tiny_dataset(client, owner, rows=60)
    job = wait_for_job(client, owner, submit_ok(client, owner, small_job_body(dataset, epochs=1)))
    assert job["status"] == "succeeded", job
    return owner, client.get(f"/api/v1/models/{job['model_id']}", headers=owner.headers).json()


@pytest.fixture
def weights_file(deployment: Deployment, trained: tuple[Account, dict[str, Any]]) -> Iterator[Path]:
    """The stored weights of the trained model; its bytes and registry entry restored after."""
    path = next(Path(deployment.store_root).rglob(f"{trained[1]['id']}/{WEIGHTS}"))
    original = path.read_bytes()
    yield path
    path.write_bytes(original)
    _record_digest(deployment, trained[1]["id"], original)


def _record_digest(deployment: Deployment, model_id: str, data: bytes) -> None:
    """Rewrite the registry's digest of the weights, as an attacker with the database could."""
    engine = create_db_engine(deployment.settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            model = session.scalars(select(Model).where(Model.id == uuid.UUID(model_id))).one()
            files = dict(model.files)
            files[WEIGHTS] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            model.files = files
    finally:
        engine.dispose()


def _assert_refused_cleanly(response: Any, deployment: Deployment) -> None:
    assert response.status_code in (422, 500), response.text
    body = response.json()
    assert set(body) == {"error", "message", "request_id"}
    assert "Traceback" not in response.text
    assert str(deployment.settings.resolved_data_dir) not in response.text


def _fresh_predict(deployment: Deployment, owner: Account, model_id: str) -> list[Any]:
    """Predict and export through a new API process (nothing loaded in memory yet)."""
    with TestClient(create_app(deployment.settings), raise_server_exceptions=False) as fresh:
        return [
            fresh.post(
                f"/api/v1/models/{model_id}/predict", headers=owner.headers, json={"inputs": ROWS}
            ),
            fresh.get(
                f"/api/v1/models/{model_id}/download",
                headers=owner.headers,
                params={"format": "onnx"},
            ),
        ]


def test_weight_file_swapped_behind_the_registry_is_refused_by_its_hash(
    deployment: Deployment, trained: tuple[Account, dict[str, Any]], weights_file: Path
) -> None:
    """Tampered artifact: weights that no longer match their recorded sha256 never load."""
    owner, model = trained
    data = bytearray(weights_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    for response in _fresh_predict(deployment, owner, model["id"]):
        _assert_refused_cleanly(response, deployment)
        assert "sha256" in response.json()["message"]


class _Payload:
    """Unpickling this runs ``Path.touch`` on the marker: proof that pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_payload_posing_as_weights_is_never_unpickled(
    tmp_path: Path,
    deployment: Deployment,
    trained: tuple[Account, dict[str, Any]],
    weights_file: Path,
) -> None:
    """Pickle RCE: a pickle planted as the weights (digest forged too) is refused, never run."""
    owner, model = trained
    marker = tmp_path / "pickle-ran"
    payload = pickle.dumps({"weight": _Payload(marker)})
    weights_file.write_bytes(payload)
    _record_digest(deployment, model["id"], payload)
    for response in _fresh_predict(deployment, owner, model["id"]):
        _assert_refused_cleanly(response, deployment)
    assert not marker.exists()


def _zip_with(entry: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/1.png", GREY)
        archive.writestr("dog/1.png", GREY)
        archive.writestr(entry, data)
    return buffer.getvalue()


def _raw_name(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("placeholder")
    info.filename = name  # zipfile would sanitise the name on the way in
    return info


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


HOSTILE_ARCHIVES = {
    "dot-dot": lambda: _zip_with(_raw_name("../../evil.png"), GREY),
    "absolute": lambda: _zip_with(_raw_name("/tmp/evil.png"), GREY),
    "symlink": lambda: _zip_with(_symlink("cat/evil.png"), b"/etc/passwd"),
    "bomb": lambda: _zip_with(zipfile.ZipInfo("cat/evil.png"), bytes(8 << 20)),
}


@pytest.mark.parametrize("kind", list(HOSTILE_ARCHIVES))
def test_hostile_zip_entries_are_refused_and_nothing_is_written(
    client: TestClient, deployment: Deployment, account: Account, kind: str
) -> None:
    """Zip slip, symlinks and zip bombs: the upload is refused and leaves no file anywhere."""
    response = upload(client, account, HOSTILE_ARCHIVES[kind](), "images.zip")
    assert response.status_code in (413, 422), response.text
    assert response.json()["error"] in ("payload_too_large", "validation_error")
    org = Path(deployment.store_root) / "orgs" / account.organization_id
    assert not [p for p in org.rglob("*") if p.is_file()]
    assert not list(deployment.settings.resolved_data_dir.parent.rglob("evil.png"))
    assert not Path("/tmp/evil.png").exists()
    assert client.get("/api/v1/datasets", headers=account.headers).json()["total"] == 0

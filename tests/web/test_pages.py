"""The web UI's routes over the ASGI client: page shells, htmx fragments, static files."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dlp.web.templating import STATIC_DIR
from tests.conftest import Account
from tests.factories import Served, table_csv, upload_ok
from tests.images import encode_image, zip_bytes

# Fixed ids: test ids (and so what pytest collects) must not change from run to run.
SOME_ID = uuid.UUID("5f0d6c7e-2b1a-4c3d-9e8f-0a1b2c3d4e5f")
OTHER_ID = uuid.UUID("0c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5")
PAGES = [
    "/",
    "/ui/login",
    "/ui/register",
    "/ui/datasets",
    f"/ui/datasets/{SOME_ID}",
    "/ui/jobs",
    "/ui/jobs/new",
    f"/ui/jobs/new?dataset_id={SOME_ID}",
    f"/ui/jobs/{SOME_ID}",
    "/ui/compare",
    f"/ui/compare?job={SOME_ID}&job={OTHER_ID}",
    "/ui/models",
    f"/ui/models/{SOME_ID}",
    f"/ui/models/{SOME_ID}/playground",
    "/ui/registry/some-model",
    "/ui/studies",
    f"/ui/studies/{SOME_ID}",
]
UNKNOWN_FRAGMENTS = [
    f"/ui/fragments/datasets/{SOME_ID}",
    f"/ui/fragments/train-fields?dataset_id={SOME_ID}",
    f"/ui/fragments/jobs/{SOME_ID}",
    f"/ui/fragments/models/{SOME_ID}",
    f"/ui/fragments/models/{SOME_ID}/playground",
    "/ui/fragments/registry/no-such-model",
    f"/ui/fragments/studies/{SOME_ID}",
]
VENDORED = ["vendor/htmx-2.0.11.min.js", "vendor/chart-4.6.1.umd.min.js"]


def fragment(client: TestClient, account: Account, path: str) -> str:
    answer = client.get(path, headers=account.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_shells_that_need_no_credentials(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert page.startswith("<!doctype html>")
    assert '<meta name="viewport"' in page
    for script in ("js/auth.js", *VENDORED):
        assert f"/ui/static/{script}" in page


def test_malformed_ids_are_refused_like_the_api(client: TestClient) -> None:
    answer = client.get("/ui/jobs/not-an-id")
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


def test_static_files_are_served_with_their_licences(client: TestClient) -> None:
    for name in [*VENDORED, "js/auth.js", "js/forms.js", "js/charts.js", "js/playground.js"]:
        answer = client.get(f"/ui/static/{name}")
        assert answer.status_code == 200, name
        assert "javascript" in answer.headers["content-type"]
    assert client.get("/ui/static/css/dlp.css").headers["content-type"].startswith("text/css")
    assert (STATIC_DIR / "vendor" / "htmx.LICENSE").is_file()
    assert (STATIC_DIR / "vendor" / "chart.js.LICENSE.md").is_file()
    assert client.get("/ui/static/no-such-file.js").status_code == 404


def test_the_api_surface_is_unchanged(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/datasets" in paths
    assert not [path for path in paths if path == "/" or path.startswith("/ui")]


def test_fragments_need_credentials(client: TestClient) -> None:
    answer = client.get("/ui/fragments/datasets")
    assert answer.status_code == 401
    assert answer.json()["error"] == "authentication_error"


@pytest.mark.parametrize("path", UNKNOWN_FRAGMENTS)
def test_unknown_ids_are_404_without_a_trace(
    client: TestClient, account: Account, path: str
) -> None:
    answer = client.get(path, headers=account.headers)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"
    assert "Traceback" not in answer.text


def test_dataset_fragments_show_the_profile_and_the_columns_to_train_on(
    client: TestClient, account: Account, other_account: Account
) -> None:
    content = table_csv(["size", "colour", "price"], [[1.5, "red", 10], [2.5, "<b>blue</b>", 20]])
    dataset = upload_ok(client, account, content, "prices.csv", name="<script>x()</script>")
    listed = fragment(client, account, "/ui/fragments/datasets")
    assert f'href="/ui/datasets/{dataset["id"]}"' in listed
    assert "<script>" not in listed
    assert "&lt;script&gt;x()&lt;/script&gt;" in listed

    profile = fragment(client, account, f"/ui/fragments/datasets/{dataset['id']}")
    for column in ("size", "colour", "price"):
        assert f'data-column="{column}" data-histogram="{{&#34;kind&#34;:' in profile
    assert "&#34;values&#34;:[&#34;&lt;b&gt;blue&lt;/b&gt;&#34;,&#34;red&#34;]" in profile
    assert 'id="profile"' in profile
    assert "/download" not in profile and "5 MB" not in profile

    options = fragment(client, account, f"/ui/fragments/dataset-options?selected={dataset['id']}")
    assert f'<option value="{dataset["id"]}" selected>' in options
    fields = fragment(client, account, f"/ui/fragments/train-fields?dataset_id={dataset['id']}")
    assert '<option value="price" selected>' in fields
    assert 'name="task"' in fields

    foreign = client.get(f"/ui/fragments/datasets/{dataset['id']}", headers=other_account.headers)
    assert foreign.status_code == 404


def test_a_column_with_no_value_shows_no_histogram(client: TestClient, account: Account) -> None:
    dataset = upload_ok(client, account, b"x,blank\n1,\n2,\n", "blank.csv")
    profile = fragment(client, account, f"/ui/fragments/datasets/{dataset['id']}")
    assert profile.count("<canvas") == 1 and 'data-column="x"' in profile
    assert '<td class="histogram muted">—</td>' in profile


def test_an_image_dataset_shows_its_classes_and_trains_without_a_target(
    client: TestClient, account: Account
) -> None:
    picture = encode_image(np.zeros((8, 8), dtype=np.uint8))
    archive = zip_bytes({"cat/1.png": picture, "cat/2.png": picture, "dog/3.png": picture})
    dataset = upload_ok(client, account, archive, "pets.zip")
    profile = fragment(client, account, f"/ui/fragments/datasets/{dataset['id']}")
    assert "<li>cat <span" in profile
    assert 'id="profile"' not in profile
    fields = fragment(client, account, f"/ui/fragments/train-fields?dataset_id={dataset['id']}")
    assert 'name="target"' not in fields
    assert 'name="task" value="classification"' in fields


def test_empty_lists_say_what_to_do(client: TestClient, account: Account) -> None:
    empty = {
        "jobs": "No training jobs yet",
        "models": "No models yet",
        "studies": "No studies yet",
        "dataset-options": "No ready dataset yet",
    }
    for name, notice in empty.items():
        assert notice in fragment(client, account, f"/ui/fragments/{name}")
    assert account.username in fragment(client, account, "/ui/fragments/me")


def test_model_fragments_show_metrics_confusion_matrix_registry_and_inputs(
    client: TestClient, account: Account, served: Served
) -> None:
    model = served.model
    jobs = fragment(client, account, "/ui/fragments/jobs")
    assert f'href="/ui/jobs/{model["job_id"]}"' in jobs
    assert '<span class="badge succeeded">succeeded</span>' in jobs
    job = fragment(client, account, f"/ui/fragments/jobs/{model['job_id']}")
    assert f'href="/ui/models/{model["id"]}/playground"' in job

    models = fragment(client, account, "/ui/fragments/models")
    assert f'href="/ui/registry/{served.name}"' in models
    detail = fragment(client, account, f"/ui/fragments/models/{model['id']}")
    assert 'class="heatmap"' in detail
    assert "val_accuracy" in detail

    registry = fragment(client, account, f"/ui/fragments/registry/{served.name}")
    assert '<span class="badge alias">production</span>' in registry
    assert 'id="traffic-form"' in registry

    playground = fragment(client, account, f"/ui/fragments/models/{model['id']}/playground")
    for field in model["input_schema"]:
        assert f'name="{field["name"]}"' in playground
    assert 'id="csv-form"' in playground

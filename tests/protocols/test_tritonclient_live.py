"""A stock Open Inference Protocol client (tritonclient) against a live ``dlp serve``."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import tritonclient.http as triton

from tests.factories import table_csv
from tests.live import live_server
from tests.test_serve_live import register_and_login, wait_for_job


def test_tritonclient_talks_to_dlp_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > x[:, 1]).astype(int)
    csv = table_csv(["p", "q", "y"], [[*map(float, r), int(t)] for r, t in zip(x, y, strict=True)])
    with (
        live_server(tmp_path / "data") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        auth = {"Authorization": f"Bearer {register_and_login(http)}"}
        http.headers.update(auth)
        dataset = http.post("/api/v1/datasets", files={"file": ("pq.csv", csv, "text/csv")}).json()
        started = http.post(
            "/api/v1/training/jobs",
            json={
                "dataset_id": dataset["id"],
                "task": "classification",
                "target": "y",
                "name": "pq",
                "training": {"epochs": 5},
            },
        )
        job = wait_for_job(http, started.json()["id"], server)
        http.put("/api/v1/registry/pq/aliases/production", json={"version": 1})
        rows = [[2.0, -2.0], [-2.0, 2.0]]
        expected = http.post(
            f"/api/v1/models/{job['model_id']}/predict",
            json={"inputs": [{"p": p, "q": q} for p, q in rows]},
        ).json()

        client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("pq", headers=auth)
        metadata = client.get_model_metadata("pq", headers=auth)
        assert [i["name"] for i in metadata["inputs"]] == ["p", "q"]
        inputs = []
        for index, name in enumerate(("p", "q")):
            tensor = triton.InferInput(name, [2, 1], "FP32")
            tensor.set_data_from_numpy(np.array([[r[index]] for r in rows], dtype=np.float32))
            inputs.append(tensor)
        result = client.infer("pq", inputs, headers=auth)
        labels = [label.decode() for label in result.as_numpy("predictions")]
        assert labels == [str(label) for label in expected["predictions"]]
        assert result.as_numpy("probabilities").shape == (2, 2)
        assert result.get_response()["model_version"] == "1"
        client.close()

"""Batch predictions: rows per second and peak memory against a hand-written equivalent.

An embedded installation in a temporary folder gets an MLP trained (in this process,
by the real runner) on 20,000 rows of 8 numeric features and one categorical column,
then two prediction datasets of N and 4N rows (default N = 250,000) shaped the same.
Each measurement runs in a fresh subprocess, so nothing else inflates its peak:

* dlp: ``run_next_batch_prediction`` claims the queued job and streams the dataset
  through the model in chunks of ``DLP_BATCH_CHUNK_ROWS`` (10,000) into a CSV in the
  file store, recording progress as it goes;
* hand-written: the same model files (loaded with the same serving loader, so the same
  engine) and the whole CSV read at once with pyarrow, one ``predict_table`` call, one
  ``pyarrow.csv.write_csv`` of the result: the simplest fast script a user would write.

Memory is the peak RSS growth (``VmHWM``) over the child's RSS just before it starts
the work. The
goals: dlp's growth at 4N within 1.25x of its growth at N (memory flat in the dataset),
and dlp's rows/s at 4N >= 0.8x the hand-written script's. Ends with one line
``batch_predictions: speed_ratio=R memory_ratio=M`` (speed: dlp / hand-written rows/s
at 4N; memory: dlp growth at 4N / at N), after a line for each run.

    .venv/bin/python benchmarks/batch_predictions.py [--rows 250000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_FEATURES = 8
MIB = 2**20
COLOURS = np.array(["red", "green", "blue", "amber"])


def write_csv(path: Path, rows: int, *, seed: int, labelled: bool) -> None:
    """Numeric features, a colour, and (for training) a label, written in chunks."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(0).normal(size=N_FEATURES)
    writer = None
    for start in range(0, rows, 50_000):
        n = min(50_000, rows - start)
        x = np.round(rng.normal(size=(n, N_FEATURES)), 4)
        colour = COLOURS[rng.integers(0, len(COLOURS), size=n)]
        columns = {f"x{i}": x[:, i] for i in range(N_FEATURES)} | {"colour": colour}
        if labelled:
            columns["label"] = (x @ weights + (colour == "red") > 0).astype(np.int64)
        table = pa.table(columns)
        if writer is None:
            writer = pa_csv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _memory(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in bytes.

    Not ``getrusage``: Linux carries ``ru_maxrss`` across ``exec``, so a child would
    report its parent's peak (this script holds the uploaded CSVs for a moment).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_dlp(settings_json: str) -> dict[str, float]:
    """Run in the child: one queued batch prediction through the real runner."""
    import torch

    from dlp.batch.runner import run_next_batch_prediction
    from dlp.config import Settings
    from dlp.platform import build_platform

    torch.set_num_threads(2)
    platform = build_platform(Settings.model_validate_json(settings_json))
    start_rss = _memory("VmRSS")
    started = time.perf_counter()
    job_id = run_next_batch_prediction(platform, worker="benchmark")
    seconds = time.perf_counter() - started
    assert job_id is not None, "no batch prediction was waiting"
    peak = _memory("VmHWM")
    return {"seconds": seconds, "growth_mb": (peak - start_rss) / MIB}


def child_baseline(settings_json: str, model_id: str, csv_path: str) -> dict[str, float]:
    """Run in the child: the hand-written script, whole file in memory."""
    import uuid

    import pyarrow.csv as pa_csv
    import torch

    from dlp.batch.output import prediction_table
    from dlp.config import Settings
    from dlp.db import session_scope
    from dlp.ml.onnx_serving import load_serving_predictor
    from dlp.platform import build_platform
    from dlp.registry.models import Model
    from dlp.registry.service import load_model_files

    torch.set_num_threads(2)
    platform = build_platform(Settings.model_validate_json(settings_json))
    with session_scope(platform.sessions) as session:
        model = session.get(Model, uuid.UUID(model_id))
        assert model is not None
        session.expunge(model)
    start_rss = _memory("VmRSS")
    started = time.perf_counter()
    predictor = load_serving_predictor(load_model_files(platform.store, model))
    table = pa_csv.read_csv(csv_path)
    prediction = predictor.predict_table(table)
    output = prediction_table(
        0, None, prediction.predictions, prediction.probabilities, predictor.classes
    )
    with tempfile.NamedTemporaryFile(suffix=".csv") as target:
        pa_csv.write_csv(output, target.name)
    seconds = time.perf_counter() - started
    peak = _memory("VmHWM")
    return {"seconds": seconds, "growth_mb": (peak - start_rss) / MIB}


def _child(*args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{result.stderr[-3000:]}")
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main(rows: int) -> None:
    from fastapi.testclient import TestClient
    from tests.conftest import register_account

    from dlp.config import Settings
    from dlp.main import create_app
    from dlp.migrate import upgrade_database
    from dlp.platform import build_platform
    from dlp.training.runner import run_next_training_job

    with tempfile.TemporaryDirectory(prefix="dlp-batch-bench-") as folder:
        root = Path(folder)
        settings = Settings(data_dir=root / "data")
        platform = build_platform(settings)
        upgrade_database(settings.sqlalchemy_url)
        with TestClient(create_app(settings)) as client:
            account = register_account(client)

            def upload(path: Path) -> str:
                with path.open("rb") as handle:
                    response = client.post(
                        "/api/v1/datasets",
                        headers=account.headers,
                        files={"file": (path.name, handle, "text/csv")},
                    )
                assert response.status_code == 201, response.text
                return str(response.json()["id"])

            train = root / "train.csv"
            write_csv(train, 20_000, seed=1, labelled=True)
            job = client.post(
                "/api/v1/training/jobs",
                headers=account.headers,
                json={
                    "dataset_id": upload(train),
                    "task": "classification",
                    "target": "label",
                    "model": {"type": "mlp", "hidden_sizes": [64]},
                    "training": {"epochs": 2, "early_stopping_patience": 0},
                },
            ).json()
            run_next_training_job(platform, worker="benchmark")
            model_id = client.get(
                f"/api/v1/training/jobs/{job['id']}", headers=account.headers
            ).json()["model_id"]
            print(f"trained model {model_id}", flush=True)

            results: dict[tuple[str, int], dict[str, Any]] = {}
            for n in (rows, 4 * rows):
                path = root / f"predict-{n}.csv"
                write_csv(path, n, seed=n, labelled=False)
                dataset_id = upload(path)
                queued = client.post(
                    f"/api/v1/models/{model_id}/batch-predictions",
                    headers=account.headers,
                    json={"dataset_id": dataset_id},
                )
                assert queued.status_code == 202, queued.text
                results["dlp", n] = _child("dlp", settings.model_dump_json())
                done = client.get(
                    f"/api/v1/batch-predictions/{queued.json()['id']}", headers=account.headers
                ).json()
                assert done["status"] == "succeeded", done
                results["baseline", n] = _child(
                    "baseline", settings.model_dump_json(), model_id, str(path)
                )
                for stack in ("dlp", "baseline"):
                    measured = results[stack, n]
                    print(
                        f"{stack:>8} rows={n} seconds={measured['seconds']:.2f} "
                        f"rows_per_s={n / measured['seconds']:.0f} "
                        f"peak_growth_mb={measured['growth_mb']:.0f}",
                        flush=True,
                    )
        platform.close()
    big = 4 * rows
    speed = (big / results["dlp", big]["seconds"]) / (big / results["baseline", big]["seconds"])
    memory = results["dlp", big]["growth_mb"] / max(results["dlp", rows]["growth_mb"], 1.0)
    baseline_memory = results["baseline", big]["growth_mb"] / max(
        results["baseline", rows]["growth_mb"], 1.0
    )
    print(f"hand-written memory growth 4N/N: {baseline_memory:.2f}")
    print(f"batch_predictions: speed_ratio={speed:.2f} memory_ratio={memory:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "dlp":
            print(json.dumps(child_dlp(sys.argv[3])))
        else:
            print(json.dumps(child_baseline(*sys.argv[3:6])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    main(parser.parse_args().rows)

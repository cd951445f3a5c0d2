"""AutoML: dlp's tuning in ``auto`` mode against scikit-learn's gradient boosting.

On three datasets scikit-learn ships (breast cancer, wine, digits; written as CSV, no
downloads) each gets one fixed stratified 80/20 split (``random_state=0``). An embedded
installation in a temporary folder, with one ``python -m dlp worker --queues tuning
--concurrency 2`` (two trials at once, one core and one torch thread each), receives the
training part as an uploaded dataset and runs one tuning study per dataset through the
API: ``{"model": {"type": "auto"}}``,
``n_trials`` and ``max_minutes`` fixed (default 40 trials, 3 minutes), parallelism 2,
the hyperband pruner, everything else default. The study's registered model then
predicts the held-out rows through ``POST /api/v1/models/{id}/predict``. In the same run
``HistGradientBoostingClassifier(random_state=0)`` with defaults is fit on the same
training rows and scored on the same held-out rows.

One line per dataset,
``automl: <dataset> ratio=R dlp=A hgb=B trials=N pruned=P minutes=M``
(R: dlp's held-out accuracy / HGB's; N: trials that ran to the end, P: trials pruned,
M: the study's wall-clock minutes from submission to its end), then
``automl: all min_ratio=R``. The goal: ratio >= 1.0 on every dataset.

    .venv/bin/python benchmarks/automl.py [--trials 40 --minutes 3] \
        [--datasets breast_cancer,wine,digits]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.live import start_worker, stop_process  # noqa: E402

PREDICT_CHUNK = 1000
WORKER_ARGS = ("--queues", "tuning", "--concurrency", "2")
TERMINAL = {"succeeded", "failed", "cancelled"}
DATASETS = ("breast_cancer", "wine", "digits")


@dataclass
class Split:
    """One dataset's fixed split: feature names, train and held-out arrays."""

    name: str
    columns: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Result:
    """What one dataset measured."""

    dataset: str
    dlp: float
    hgb: float
    trials: int
    pruned: int
    failed: int
    minutes: float
    status: str

    @property
    def ratio(self) -> float:
        """dlp's held-out accuracy over HGB's."""
        return self.dlp / self.hgb if self.hgb > 0 else float("nan")


def load_split(name: str) -> Split:
    """A scikit-learn dataset, split stratified 80/20 with ``random_state=0``."""
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.model_selection import train_test_split

    loaders: dict[str, Callable[[], Any]] = {
        "breast_cancer": load_breast_cancer,
        "wine": load_wine,
        "digits": load_digits,
    }
    data = loaders[name]()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    columns = [f"f{i}" for i in range(x.shape[1])]
    return Split(name, columns, x_train, y_train, x_test, y_test)


def train_csv(split: Split) -> bytes:
    """The training rows as CSV: ``f0..fN`` and an integer ``target``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*split.columns, "target"])
    for features, label in zip(split.x_train.tolist(), split.y_train.tolist(), strict=True):
        writer.writerow([*(repr(float(v)) for v in features), int(label)])
    return buffer.getvalue().encode()


def hgb_accuracy(split: Split) -> float:
    """``HistGradientBoostingClassifier`` (defaults, ``random_state=0``) held-out accuracy."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(split.x_train, split.y_train)
    return float((model.predict(split.x_test) == split.y_test).mean())


@contextmanager
def installation(root: Path, workers: int) -> Iterator[tuple[Any, dict[str, str], list[Path]]]:
    """A migrated embedded installation, its API client (logged in) and running workers."""
    from fastapi.testclient import TestClient

    from dlp.config import Settings
    from dlp.main import create_app
    from dlp.migrate import upgrade_database

    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    settings = Settings(data_dir=data_dir)
    upgrade_database(settings.sqlalchemy_url)
    env = {"DLP_DATA_DIR": str(data_dir)}
    logs = [root / f"worker-{i}.log" for i in range(workers)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            processes.append(start_worker(env, log, *WORKER_ARGS))
        with TestClient(create_app(settings)) as client:
            yield client, login(client), logs
    finally:
        for process in processes:
            stop_process(process)


def login(client: Any) -> dict[str, str]:
    """Register a fresh user, log in, and return its bearer headers."""
    username = f"bench{uuid.uuid4().hex[:10]}"
    password = "correct horse battery"
    created = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    tokens = client.post("/api/v1/auth/login", data={"username": username, "password": password})
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def run_study(
    client: Any,
    headers: dict[str, str],
    split: Split,
    *,
    trials: int,
    minutes: float,
    training: dict[str, Any] | None,
) -> tuple[dict[str, Any], float]:
    """Upload the training rows, run an ``auto`` study to its end; the study and its minutes."""
    uploaded = client.post(
        "/api/v1/datasets",
        headers=headers,
        files={"file": (f"{split.name}.csv", train_csv(split), "text/csv")},
    )
    assert uploaded.status_code == 201, uploaded.text
    body: dict[str, Any] = {
        "dataset_id": uploaded.json()["id"],
        "name": f"automl-{split.name.replace('_', '-')}",
        "task": "classification",
        "target": "target",
        "model": {"type": "auto"},
        "n_trials": trials,
        "parallelism": 2,
        "max_minutes": minutes,
        "pruner": "hyperband",
    }
    if training is not None:
        body["training"] = training
    started = time.monotonic()
    created = client.post("/api/v1/tuning/studies", headers=headers, json=body)
    assert created.status_code == 202, created.text
    study_id = created.json()["id"]
    # The study's own deadline stops it; this one only guards against a hang.
    deadline = started + minutes * 60 + 300
    while True:
        study: dict[str, Any] = client.get(
            f"/api/v1/tuning/studies/{study_id}", headers=headers
        ).json()
        if study["status"] in TERMINAL:
            return study, (time.monotonic() - started) / 60
        if time.monotonic() > deadline:
            raise RuntimeError(f"study {study_id} still {study['status']}: {study}")
        time.sleep(0.5)


def dlp_accuracy(client: Any, headers: dict[str, str], model_id: str, split: Split) -> float:
    """Held-out accuracy of a registered model, predicted through the API."""
    predictions: list[Any] = []
    for start in range(0, len(split.x_test), PREDICT_CHUNK):
        chunk = split.x_test[start : start + PREDICT_CHUNK].tolist()
        inputs = [dict(zip(split.columns, row, strict=True)) for row in chunk]
        response = client.post(
            f"/api/v1/models/{model_id}/predict", headers=headers, json={"inputs": inputs}
        )
        assert response.status_code == 200, response.text
        predictions.extend(response.json()["predictions"])
    predicted = np.asarray([int(p) for p in predictions])
    return float((predicted == split.y_test).mean())


def main(
    names: list[str], trials: int, minutes: float, training: dict[str, Any] | None
) -> list[Result]:
    """Run every dataset and print its line, then the summary line."""
    results: list[Result] = []
    root = Path(tempfile.mkdtemp(prefix="dlp-automl-bench-"))
    try:
        with installation(root, workers=1) as (client, headers, logs):
            for name in names:
                split = load_split(name)
                hgb = hgb_accuracy(split)
                study, spent = run_study(
                    client, headers, split, trials=trials, minutes=minutes, training=training
                )
                counts = study["trial_counts"]
                model_id = study.get("model_id")
                if study["status"] != "succeeded" or not model_id:
                    print(
                        f"study for {name} ended {study['status']} without a model: "
                        f"{study.get('error_message')}",
                        flush=True,
                    )
                    accuracy = 0.0
                else:
                    accuracy = dlp_accuracy(client, headers, str(model_id), split)
                best = study.get("best") or {}
                print(
                    f"  {name}: status={study['status']} counts={counts} "
                    f"best_val={best.get('value')} best_params={best.get('params')}",
                    flush=True,
                )
                result = Result(
                    dataset=name,
                    dlp=accuracy,
                    hgb=hgb,
                    trials=counts.get("complete", 0),
                    pruned=counts.get("pruned", 0),
                    failed=counts.get("fail", 0),
                    minutes=spent,
                    status=study["status"],
                )
                results.append(result)
                print(
                    f"automl: {name} ratio={result.ratio:.3f} dlp={result.dlp:.4f} "
                    f"hgb={result.hgb:.4f} trials={result.trials} pruned={result.pruned} "
                    f"minutes={result.minutes:.2f}",
                    flush=True,
                )
            problems = [
                line
                for log in logs
                for line in log.read_text(errors="replace").splitlines()
                if "Traceback" in line or " ERROR" in line or "CRITICAL" in line
            ]
            if problems:
                print(f"worker logs: {len(problems)} error lines; first:", flush=True)
                for line in problems[:5]:
                    print(f"  {line[:300]}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"automl: all min_ratio={min(r.ratio for r in results):.3f}", flush=True)
    return results


def _training(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    import json

    parsed: dict[str, Any] = json.loads(text)
    return parsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="n_trials of each study")
    parser.add_argument("--minutes", type=float, default=3.0, help="max_minutes of each study")
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS)
    )
    parser.add_argument(
        "--training",
        default=None,
        help='JSON TrainingConfig for every trial (default: the study\'s, {"epochs": 50, '
        '"early_stopping_patience": 10})',
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        parser.error(f"unknown datasets: {', '.join(unknown)}")
    main(chosen, args.trials, args.minutes, _training(args.training))

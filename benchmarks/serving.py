"""How fast does dlp serve one-row predictions, against MLflow and a minimal FastAPI endpoint?

One run, one machine, the same digits-sized MLP weights served three ways:

* dlp: a real ``dlp serve`` (embedded: SQLite, its own temporary data dir, its worker
  beside it; uvicorn as ``dlp serve`` runs it; ``DLP_LOG_LEVEL=WARNING``, so no access
  log). A registered user uploads scikit-learn's digits as a CSV (64 pixel columns +
  ``digit``) and trains an MLP (``hidden_sizes [128]``, 5 epochs) there. Requests:
  ``POST /api/v1/models/{id}/predict`` with ``{"inputs": [{column: value}]}`` and a bearer
  token, answered with predictions, probabilities and classes;
* MLflow: ``mlflow models serve --env-manager local -w 1`` (one uvicorn worker; access log
  off through ``UVICORN_ACCESS_LOG=false``) of a pyfunc model built from the same weights
  (``benchmarks/_serving_minimal.py``, ``DigitsModel``). Requests: its fastest body,
  ``{"inputs": [[64 pixel values]]}`` (``dataframe_split`` is ~8x slower); it answers
  labels and probabilities;
* minimal: a bare FastAPI ``async def`` endpoint calling the torch module directly
  (``_serving_minimal.create_app``), under ``python -m uvicorn`` with the options ``dlp
  serve`` passes (one process, ``--proxy-headers``, uvicorn's automatic loop and HTTP
  parser, i.e. uvloop and httptools where installed, as they are with dlp's
  ``uvicorn[standard]``; ``--no-access-log``). Requests: dlp's body; it answers
  predictions and probabilities.

The weights come from dlp over HTTP (``/download?format=safetensors``; the manifest with
the preprocessing from the ONNX export's ``dlp.manifest``), so all three do the same math:
impute each column's median, standardise with dlp's mean and std, the MLP, softmax,
arg-max. Before measuring, 20 digits rows go to each server and their probabilities
must agree (the largest difference is printed).

Load: in each of ``--rounds`` rounds, for each concurrency (``--concurrency``, default 1,
16, 64) and each server in turn (the order of servers reversed every other round), a
separate load process (``--load-child``: a raw HTTP/1.1 keep-alive client on
asyncio/uvloop, far cheaper per request than httpx, so that on 2 cores the client is not
what is measured) keeps that many connections busy, each sending one single-row request at
a time, cycling over 100 digits rows. ``--warmup-seconds`` unmeasured, then ``--seconds``
measured: requests/s is the responses completed in the window, p50/p99 the latency of the
requests sent and answered in it. Each point's best round by requests/s counts (other
load on these small shared machines only ever slows a round down). The CPU used by the
client and by the server's process tree in the window is shown as a share of one core.

Goals: dlp >= 3x MLflow's requests/s at concurrency 64; dlp >= the minimal endpoint's
requests/s at concurrency 64 (batching pays); dlp's p50 at concurrency 1 within 1.3x of
the minimal endpoint's. Ends with one line
``serving: vs_mlflow_c64=R vs_minimal_c64=R p50_c1_ratio=R`` (each dlp / other).

MLflow lives in a virtualenv of its own: it pins ``pyarrow<26`` and would downgrade
dlp's pyarrow. Make it once, with the loop and parser dlp gets::

    python3 -m venv .venv-mlflow
    .venv-mlflow/bin/pip install mlflow==3.17.2 torch==2.13.0 'uvicorn[standard]'

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--warmup-seconds 3] [--rounds 3]
        [--concurrency 1,16,64] [--mlflow-python .venv-mlflow/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _serving_minimal as minimal  # noqa: E402
from tests.live import free_port, live_server, read_log_tail, stop_server  # noqa: E402

PASSWORD = "correct horse battery"
TARGET = "digit"
READY_SECONDS = 120.0
JOB_SECONDS = 300.0
LOAD_ROWS = 100
CHECK_ROWS = 20
SERVERS = ("dlp", "mlflow", "minimal")
DEFAULT_MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- the load generator (runs in a process of its own) -----------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start >= 0:
            line_end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : line_end if line_end >= 0 else None])
            total = end + 4 + length
        elif b"transfer-encoding: chunked" in head:
            last = self.buffer.find(b"\r\n0\r\n\r\n", end)
            if last < 0:
                return
            total = last + 7
        else:
            self.waiter.set_exception(RuntimeError("response without a length"))
            return
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def send(self, request: bytes) -> int:
        """Write one request; its status code once the whole response is in."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def _drive(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keep ``concurrency`` connections busy; latencies of the measured window."""
    loop = asyncio.get_running_loop()
    requests = [request.encode("latin-1") for request in config["requests"]]
    started = time.perf_counter()
    window_start = started + config["warmup_seconds"]
    window_end = window_start + config["seconds"]
    latencies: list[float] = []
    completed = errors = 0
    first_error: str | None = None

    async def client(offset: int) -> None:
        nonlocal completed, errors, first_error
        _transport, connection = await loop.create_connection(
            _Connection, config["host"], config["port"]
        )
        index = offset
        try:
            while True:
                sent = time.perf_counter()
                if sent >= window_end:
                    return
                try:
                    status = await connection.send(requests[index % len(requests)])
                except (ConnectionError, RuntimeError) as exc:
                    errors += 1
                    first_error = first_error or str(exc)
                    return
                done = time.perf_counter()
                index += 1
                if status != 200:
                    errors += 1
                    first_error = first_error or f"HTTP {status}"
                if window_start <= done <= window_end:
                    completed += 1
                if sent >= window_start and done <= window_end:
                    latencies.append(done - sent)
        finally:
            _transport.close()

    async def sample_cpu() -> tuple[float, float]:
        # Client and server CPU over the measured window only.
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        client_before, server_before = time.process_time(), tree_cpu(config["server_pid"])
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        return (
            (time.process_time() - client_before) / config["seconds"],
            (tree_cpu(config["server_pid"]) - server_before) / config["seconds"],
        )

    sampler = asyncio.ensure_future(sample_cpu())
    await asyncio.gather(*(client(i * 7) for i in range(config["concurrency"])))
    client_cpu, server_cpu = await sampler
    return {
        "completed": completed,
        "latencies": latencies,
        "errors": errors,
        "first_error": first_error,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


def load_child() -> int:
    """``--load-child``: read a config as JSON on stdin, print the result as JSON."""
    config = json.load(sys.stdin)
    try:
        import uvloop

        result = uvloop.run(_drive(config))
    except ImportError:
        result = asyncio.run(_drive(config))
    json.dump(result, sys.stdout)
    return 0


# --- the servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A server to load: where it listens, its process and the request bytes it gets."""

    name: str
    port: int
    pid: int
    requests: list[str]


def http_request(path: str, port: int, body: bytes, headers: Mapping[str, str]) -> str:
    """A complete HTTP/1.1 POST as text (latin-1 round-trips the JSON bytes)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines) + body.decode("latin-1")


@dataclass
class Processes:
    """Child servers, each in a session of its own, logging to a file each."""

    log_dir: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> int:
        """Start ``command`` as ``name``; its pid."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = process
        return process.pid

    def wait_ready(self, name: str, url: str) -> None:
        """Poll ``url`` until it answers 200; raise with the log's tail otherwise."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            process = self.running[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready in time:\n{self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        """The end of ``name``'s log."""
        return read_log_tail(self.log_dir / f"{name}.log")

    def stop_all(self) -> None:
        """Stop every server still running (process group and tree), the latest first."""
        for name in reversed(list(self.running)):
            stop_server(self.running.pop(name), grace=10.0)


def digits_table() -> tuple[list[str], np.ndarray, np.ndarray]:
    """scikit-learn's digits: column names, pixel matrix and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return list(digits.feature_names), digits.data, digits.target


def digits_csv(columns: list[str], pixels: np.ndarray, labels: np.ndarray) -> bytes:
    """The digits table as CSV, integer pixel values and the label last."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, TARGET])
    writer.writerows(
        [*map(int, row), int(label)] for row, label in zip(pixels, labels, strict=True)
    )
    return out.getvalue().encode()


def train_on_dlp(url: str, columns: list[str], pixels: np.ndarray, labels: np.ndarray) -> dict:
    """Register, upload digits, train the MLP; the token, model id and its files."""
    username = f"bench{secrets.token_hex(4)}"
    with httpx.Client(base_url=url, timeout=120.0) as client:
        created = client.post(
            "/api/v1/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        if created.status_code != 201:
            raise RuntimeError(f"register: {created.status_code} {created.text[:500]}")
        tokens = client.post(
            "/api/v1/auth/login", data={"username": username, "password": PASSWORD}
        )
        tokens.raise_for_status()
        token = tokens.json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        upload = client.post(
            "/api/v1/datasets",
            files={"file": ("digits.csv", digits_csv(columns, pixels, labels), "text/csv")},
        )
        if upload.status_code != 201:
            raise RuntimeError(f"upload: {upload.status_code} {upload.text[:500]}")
        job = client.post(
            "/api/v1/training/jobs",
            json={
                "dataset_id": upload.json()["id"],
                "task": "classification",
                "target": TARGET,
                "model": {"type": "mlp", "hidden_sizes": [128]},
                "training": {"epochs": 5},
            },
        )
        if job.status_code != 202:
            raise RuntimeError(f"training job: {job.status_code} {job.text[:500]}")
        deadline = time.monotonic() + JOB_SECONDS
        while True:
            body = client.get(f"/api/v1/training/jobs/{job.json()['id']}").json()
            if body["status"] in {"succeeded", "failed", "cancelled"}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"training did not finish in {JOB_SECONDS:.0f}s: {body}")
            time.sleep(0.2)
        if body["status"] != "succeeded":
            raise RuntimeError(f"training {body['status']}: {body}")
        model_id = body["model_id"]
        weights = client.get(
            f"/api/v1/models/{model_id}/download", params={"format": "safetensors"}
        )
        weights.raise_for_status()
        onnx_file = client.get(f"/api/v1/models/{model_id}/download", params={"format": "onnx"})
        onnx_file.raise_for_status()
    return {
        "token": token,
        "model_id": model_id,
        "weights": weights.content,
        "manifest": onnx_manifest(onnx_file.content),
        "accuracy": body.get("metrics"),
    }


def onnx_manifest(data: bytes) -> dict[str, Any]:
    """``model.json`` as dlp embeds it in the ONNX export (metadata ``dlp.manifest``)."""
    import onnx

    graph = onnx.load_model_from_string(data)
    for entry in graph.metadata_props:
        if entry.key == "dlp.manifest":
            manifest: dict[str, Any] = json.loads(entry.value)
            return manifest
    raise RuntimeError("the ONNX export carries no dlp.manifest")


def export_model(
    weights: bytes, manifest: Mapping[str, Any], columns: list[str], out: Path
) -> None:
    """Write ``_serving_minimal``'s folder: dlp's Linear layers and preprocessing."""
    import safetensors.torch
    import torch

    state = manifest["preprocessing"]
    features = state["columns"]
    if [c["kind"] for c in features] != ["numeric"] * len(features):
        raise RuntimeError("expected only numeric feature columns")
    by_name = {c["name"]: c for c in features}
    if [c["name"] for c in features] != [name for name in columns if name in by_name]:
        raise RuntimeError("dlp's feature columns are not the pixels in order")
    tensors = safetensors.torch.load(weights)
    linear = sorted(
        {int(key.split(".")[1]) for key in tensors if key.startswith("layers.")},
    )
    if set(tensors) != {f"layers.{i}.{p}" for i in linear for p in ("weight", "bias")}:
        raise RuntimeError(f"unexpected weights: {sorted(tensors)}")
    widths = [tensors[f"layers.{linear[0]}.weight"].shape[1]]
    widths += [tensors[f"layers.{i}.weight"].shape[0] for i in linear]
    network = minimal.build_network(widths)
    mine = [i for i, layer in enumerate(network) if isinstance(layer, torch.nn.Linear)]
    network.load_state_dict(
        {
            f"{m}.{p}": tensors[f"layers.{i}.{p}"]
            for m, i in zip(mine, linear, strict=True)
            for p in ("weight", "bias")
        }
    )
    out.mkdir(parents=True)
    torch.save(network.state_dict(), out / minimal.WEIGHTS_FILE)
    # Columns dlp dropped (constant pixels) keep mean 0 / std 1 and are cut by ``features``.
    spec = {
        "columns": columns,
        "features": [columns.index(c["name"]) for c in features],
        "medians": [by_name.get(name, {}).get("median", 0.0) for name in columns],
        "means": [by_name.get(name, {}).get("mean", 0.0) for name in columns],
        "stds": [by_name.get(name, {}).get("std", 1.0) for name in columns],
        "widths": widths,
        "classes": manifest["target"]["classes"],
    }
    (out / minimal.SPEC_FILE).write_text(json.dumps(spec))


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without ``DLP_*`` settings, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DLP_")}
    env.update(extra)
    return env


def start_others(
    args: argparse.Namespace, processes: Processes, model_dir: Path, work: Path
) -> tuple[int, int]:
    """Save and serve the MLflow model, serve the minimal app; their ports."""
    mlflow_python = Path(args.mlflow_python)
    mlflow_bin = str(mlflow_python.parent)
    mlflow_env = server_env(
        {
            # `mlflow models serve` runs the `uvicorn` next to its Python.
            "PATH": f"{mlflow_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": (work / "mlruns").as_uri(),
            "PYTHONPATH": "",
            # uvicorn reads its options from UVICORN_*: no access log, as for the others.
            "UVICORN_ACCESS_LOG": "false",
        }
    )
    mlflow_model = work / "mlflow-model"
    saved = subprocess.run(
        [
            str(mlflow_python),
            "_serving_minimal.py",
            "save-mlflow",
            str(model_dir),
            str(mlflow_model),
        ],
        cwd=ROOT / "benchmarks",
        env=mlflow_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if saved.returncode != 0:
        raise RuntimeError(f"saving the MLflow model failed:\n{saved.stderr[-3000:]}")
    mlflow_port, minimal_port = free_port(), free_port()
    processes.start(
        "mlflow",
        [
            *(str(mlflow_python), "-m", "mlflow", "models", "serve"),
            *("-m", str(mlflow_model), "--env-manager", "local", "-w", "1"),
            *("-h", "127.0.0.1", "-p", str(mlflow_port)),
        ],
        mlflow_env,
    )
    processes.start(
        "minimal",
        [
            *(sys.executable, "-m", "uvicorn", "benchmarks._serving_minimal:create_app"),
            *("--factory", "--host", "127.0.0.1", "--port", str(minimal_port)),
            *("--proxy-headers", "--log-level", "warning", "--no-access-log"),
        ],
        server_env({"BENCH_MODEL_DIR": str(model_dir)}),
    )
    processes.wait_ready("mlflow", f"http://127.0.0.1:{mlflow_port}/ping")
    processes.wait_ready("minimal", f"http://127.0.0.1:{minimal_port}/health")
    return mlflow_port, minimal_port


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants so far."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def check_agreement(
    servers: dict[str, Server], dlp_path: str, token: str, rows: list[dict[str, int]]
) -> float:
    """Send ``rows`` to each server; the largest probability difference from dlp's."""
    answers: dict[str, np.ndarray] = {}
    with httpx.Client(timeout=30.0) as client:
        for name, server in servers.items():
            base = f"http://127.0.0.1:{server.port}"
            probabilities = []
            for row in rows:
                if name == "dlp":
                    response = client.post(
                        base + dlp_path,
                        json={"inputs": [row]},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    response.raise_for_status()
                    probabilities.append(response.json()["probabilities"][0])
                elif name == "mlflow":
                    response = client.post(
                        base + "/invocations", json={"inputs": [list(row.values())]}
                    )
                    response.raise_for_status()
                    probabilities.append(response.json()["predictions"]["probabilities"][0])
                else:
                    response = client.post(base + "/predict", json={"inputs": [row]})
                    response.raise_for_status()
                    probabilities.append(response.json()["probabilities"][0])
            answers[name] = np.asarray(probabilities)
    return max(float(np.abs(answers[name] - answers["dlp"]).max()) for name in answers)


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One server at one concurrency."""

    server: str
    concurrency: int
    rate: float
    p50: float
    p99: float
    errors: int
    first_error: str | None
    client_cpu: float
    server_cpu: float


def measure_point(args: argparse.Namespace, server: Server, concurrency: int) -> Point:
    """Run one load process against ``server``; its requests/s and latencies."""
    config = {
        "host": "127.0.0.1",
        "port": server.port,
        "requests": server.requests,
        "concurrency": concurrency,
        "warmup_seconds": args.warmup_seconds,
        "seconds": args.seconds,
        "server_pid": server.pid,
    }
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--load-child"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=args.warmup_seconds + args.seconds + 120,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"load process failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout)
    latencies = result["latencies"] or [float("nan")]
    return Point(
        server.name,
        concurrency,
        result["completed"] / args.seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        result["errors"],
        result["first_error"],
        result["client_cpu"],
        result["server_cpu"],
    )


def run(
    args: argparse.Namespace, stack: ExitStack, work: Path
) -> tuple[list[Point], dict[str, Any]]:
    """Start the three servers on one model, check they agree, load each in turn."""
    processes = Processes(work)
    stack.callback(processes.stop_all)
    columns, pixels, labels = digits_table()
    dlp = stack.enter_context(
        live_server(
            work / "dlp-data",
            env={
                "DLP_LOG_LEVEL": "WARNING",
                "DLP_ACCESS_TOKEN_MINUTES": "600",
                # Load from one caller and address, past any sane budget: the limiter's
                # cost is measured, its refusals are not.
                "DLP_RATE_LIMIT_PREDICTIONS": "1000000000/minute",
                "DLP_RATE_LIMIT_PREDICTIONS_PER_IP": "1000000000/minute",
            },
            log_path=work / "dlp.log",
        )
    )
    trained = train_on_dlp(dlp.url, columns, pixels, labels)
    model_dir = work / "model"
    export_model(trained["weights"], trained["manifest"], columns, model_dir)
    mlflow_port, minimal_port = start_others(args, processes, model_dir, work)

    # Rows not seen in training order: the last LOAD_ROWS of the table.
    rows = [
        {name: int(value) for name, value in zip(columns, row, strict=True)}
        for row in pixels[-LOAD_ROWS:]
    ]
    dlp_path = f"/api/v1/models/{trained['model_id']}/predict"
    dlp_port = int(dlp.url.rsplit(":", 1)[1])
    auth = {"Authorization": f"Bearer {trained['token']}"}

    def bodies(make: Any) -> list[bytes]:
        return [json.dumps(make(row), separators=(",", ":")).encode() for row in rows]

    dlp_bodies = bodies(lambda row: {"inputs": [row]})
    mlflow_bodies = bodies(lambda row: {"inputs": [[float(v) for v in row.values()]]})
    servers = {
        "dlp": Server(
            "dlp",
            dlp_port,
            dlp.pid,
            [http_request(dlp_path, dlp_port, body, auth) for body in dlp_bodies],
        ),
        "mlflow": Server(
            "mlflow",
            mlflow_port,
            processes.running["mlflow"].pid,
            [http_request("/invocations", mlflow_port, body, {}) for body in mlflow_bodies],
        ),
        "minimal": Server(
            "minimal",
            minimal_port,
            processes.running["minimal"].pid,
            [http_request("/predict", minimal_port, body, {}) for body in dlp_bodies],
        ),
    }
    max_difference = check_agreement(servers, dlp_path, trained["token"], rows[:CHECK_ROWS])
    if max_difference > 1e-4:
        raise RuntimeError(f"the servers disagree: probabilities differ by {max_difference:.2g}")
    load_before = os.getloadavg()[0]
    idle_before = {name: tree_cpu(server.pid) for name, server in servers.items()}
    time.sleep(2.0)
    idle = {name: (tree_cpu(s.pid) - idle_before[name]) / 2.0 for name, s in servers.items()}

    points = []
    for round_number in range(args.rounds):
        order = SERVERS if round_number % 2 == 0 else SERVERS[::-1]
        for concurrency in args.concurrency:
            for name in order:
                point = measure_point(args, servers[name], concurrency)
                print(
                    f"  round {round_number + 1} c={concurrency:<3} {name:<8} "
                    f"{point.rate:8.0f} req/s  p50 {point.p50 * 1000:7.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
                points.append(point)
    info = {
        "load_before": load_before,
        "max_difference": max_difference,
        "idle_cpu": idle,
        "metrics": trained["accuracy"],
        "logs": {name: processes.log_tail(name) for name in ("mlflow", "minimal")},
    }
    return points, info


def report(args: argparse.Namespace, points: list[Point], info: Mapping[str, Any]) -> None:
    """Print the table and the last summary line."""
    metrics = info["metrics"] or {}
    accuracy = metrics.get("val_accuracy", metrics.get("accuracy"))
    print(
        f"digits MLP 64->128->10 (dlp val accuracy {accuracy:.3f}); {args.seconds:.0f} s "
        f"measured after {args.warmup_seconds:.0f} s warm-up per point, best of "
        f"{args.rounds} rounds by req/s; {os.cpu_count()} cores, load average "
        f"{info['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(
        f"the three agree on {CHECK_ROWS} rows: largest probability difference "
        f"{info['max_difference']:.1e}; idle server CPU "
        + ", ".join(f"{name} {share:.0%}" for name, share in info["idle_cpu"].items())
    )
    print(
        f"{'server':<9}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'server CPU':>12}{'client CPU':>12}"
    )
    by_key: dict[tuple[str, int], Point] = {}
    for point in points:
        key = (point.server, point.concurrency)
        if key not in by_key or point.rate > by_key[key].rate:
            by_key[key] = point
    for point in sorted(by_key.values(), key=lambda p: (p.concurrency, SERVERS.index(p.server))):
        print(
            f"{point.server:<9}{point.concurrency:>5}{point.rate:>9.0f}{point.p50 * 1000:>9.2f}"
            f"{point.p99 * 1000:>9.2f}{point.errors:>8}{point.server_cpu:>12.0%}"
            f"{point.client_cpu:>12.0%}"
        )
        if point.first_error:
            print(f"    first error: {point.first_error}")
    for concurrency in args.concurrency:
        dlp = by_key[("dlp", concurrency)]
        mlflow = by_key[("mlflow", concurrency)]
        bare = by_key[("minimal", concurrency)]
        print(
            f"  c={concurrency:<3} req/s dlp/mlflow {dlp.rate / mlflow.rate:5.2f}x"
            f"  dlp/minimal {dlp.rate / bare.rate:5.2f}x;"
            f"  p50 dlp/minimal {dlp.p50 / bare.p50:5.2f}x"
        )
    top, low = max(args.concurrency), min(args.concurrency)
    vs_mlflow = by_key[("dlp", top)].rate / by_key[("mlflow", top)].rate
    vs_minimal = by_key[("dlp", top)].rate / by_key[("minimal", top)].rate
    p50_ratio = by_key[("dlp", low)].p50 / by_key[("minimal", low)].p50
    print(
        f"goals: vs_mlflow_c{top} >= 3 {'met' if vs_mlflow >= 3 else 'MISSED'}, "
        f"vs_minimal_c{top} >= 1 {'met' if vs_minimal >= 1 else 'MISSED'}, "
        f"p50_c{low}_ratio <= 1.3 {'met' if p50_ratio <= 1.3 else 'MISSED'}"
    )
    print(
        f"serving: vs_mlflow_c{top}={vs_mlflow:.2f} vs_minimal_c{top}={vs_minimal:.2f} "
        f"p50_c{low}_ratio={p50_ratio:.2f}"
    )


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> int:
    """Parse options, set everything up, measure, report, clean up."""
    if sys.argv[1:] == ["--load-child"]:
        return load_child()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="unmeasured, first")
    parser.add_argument(
        "--concurrency",
        type=lambda text: sorted(int(part) for part in text.split(",")),
        default=[1, 16, 64],
        help="comma-separated connections in flight (default 1,16,64)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each point's best counts")
    parser.add_argument(
        "--mlflow-python",
        default=str(DEFAULT_MLFLOW_PYTHON),
        help="a Python with mlflow, torch and uvicorn (default .venv-mlflow/bin/python)",
    )
    args = parser.parse_args()
    if not Path(args.mlflow_python).exists():
        parser.error(f"no MLflow Python at {args.mlflow_python}: see this file's docstring")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dlp-serving-")))
        try:
            points, info = run(args, stack, work)
        except BaseException:
            for log in sorted(work.glob("*.log")):
                print(f"--- {log.name}\n{read_log_tail(log, 1500)}", file=sys.stderr)
            raise
    report(args, points, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())

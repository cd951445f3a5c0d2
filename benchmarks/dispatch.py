"""How fast does dlp get a job from submit to ``running``, against a hand-written equivalent?

One run on PostgreSQL and Redis: a fresh temporary database (dropped at the end) and
one Redis database index (flushed at the start and at the end). Three stacks share them:

* dlp: its API under uvicorn (``python -m uvicorn dlp.main:create_app --factory``, one
  process) and one ``python -m dlp worker --concurrency 1``. A registered user uploads
  a 40-row CSV and submits tiny jobs (an MLP with 8 hidden units, 1 epoch) to
  ``POST /api/v1/training/jobs``;
* hand-written (``benchmarks/_dispatch_baseline.py``): a bare FastAPI ``POST /jobs``
  that inserts one row, commits and sends a Celery task that marks the row running,
  with dlp's Celery settings (copied), under the same uvicorn command, and one worker
  with ``dlp worker``'s flags;
* bare Celery: a task that pushes "start - send" onto a Redis list, on that worker.

Dispatch latency: ``--jobs`` jobs per stack (after ``--warmup-jobs`` unmeasured ones),
interleaved (a dlp job, a hand-written job, a bare task, ...) and one at a time: the
next is submitted only once the previous one has ended (dlp: a terminal status;
hand-written: ``running``; polled over HTTP every 20 ms) and ``--settle-ms`` more have
passed, so every job meets an idle worker and no queueing is measured. The measure is
``started_at - created_at`` as each stack records it (read back from its GET endpoint);
the client-observed "POST sent -> started_at" and the POST round trip are shown too.

Accept rate: with both workers stopped (queued jobs just pile up), ``--accept-requests``
POSTs at ``--concurrency`` from an ``httpx.AsyncClient`` in this process (the same JSON
body to both; dlp's with its bearer token), after a warm-up of 50, in ``--accept-rounds``
rounds that alternate which API goes first. Each side's best round counts: other load
on these small machines only ever slows a round down.

Goals: dlp's p50 <= 1.5x the hand-written one's; dlp's accepted jobs/s >= 0.7x. Ends
with one line ``dispatch: p50_ratio=R accept_ratio=R`` (both dlp / hand-written).

    .venv/bin/python benchmarks/dispatch.py [--jobs 200] [--accept-requests 2000]
        [--concurrency 32] [--postgres-url URL] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from celery import Celery

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _dispatch_baseline as baseline  # noqa: E402
from tests.live import free_port, read_log_tail, server_env, stop_server  # noqa: E402

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/13"
POLL_SECONDS = 0.02
READY_SECONDS = 90.0
JOB_SECONDS = 120.0
ACCEPT_WARMUP = 50
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
PASSWORD = "correct horse battery"
CSV_ROWS = 40


def job_payload(dataset_id: str) -> dict[str, Any]:
    """The tiny training job both APIs receive (the hand-written one ignores it)."""
    return {
        "dataset_id": dataset_id,
        "task": "classification",
        "target": "y",
        "model": {"type": "mlp", "hidden_sizes": [8]},
        "training": {"epochs": 1, "batch_size": 16},
    }


def tiny_csv(rows: int = CSV_ROWS) -> bytes:
    """Two numeric features and a 0/1 target."""
    rng = random.Random(0)
    lines = ["x1,x2,y"]
    for _ in range(rows):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        lines.append(f"{x1:.4f},{x2:.4f},{int(x1 + x2 > 0)}")
    return ("\n".join(lines) + "\n").encode()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- services and processes -------------------------------------------------------------


@contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    """A fresh database next to ``admin_url``'s, dropped on exit; yields its URL."""
    name = f"dlp_dispatch_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def flushed_redis(url: str) -> Iterator[None]:
    """Empty the Redis database of ``url`` now and on exit."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield
    finally:
        client.flushdb()
        client.close()


@dataclass
class Processes:
    """Child processes, each in a session of its own, with a log file each."""

    log_dir: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_path(self, name: str) -> Path:
        """Where ``name``'s stdout and stderr go."""
        return self.log_dir / f"{name}.log"

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        """Start ``command`` as ``name``."""
        with self.log_path(name).open("ab") as log:
            self.running[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self, name: str) -> None:
        """Raise, with the log's tail, if ``name`` has exited."""
        process = self.running[name]
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode}:\n{read_log_tail(self.log_path(name))}"
            )

    def wait_healthy(self, name: str, url: str) -> None:
        """Poll ``url/health`` until it answers 200."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            self.check_alive(name)
            try:
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy in time:\n{read_log_tail(self.log_path(name))}")

    def wait_worker_ready(self, name: str) -> None:
        """Wait until Celery logs `` ready.`` (as ``tests/conftest.py``'s ``start_worker``)."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            self.check_alive(name)
            if b" ready." in self.log_path(name).read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready in time:\n{read_log_tail(self.log_path(name))}")

    def stop(self, name: str) -> None:
        """SIGTERM the process group (SIGKILL after a grace period) and reap its tree."""
        process = self.running.pop(name, None)
        if process is not None:
            stop_server(process)

    def stop_all(self) -> None:
        """Stop every process still running, the most recent first."""
        for name in reversed(list(self.running)):
            self.stop(name)

    def log_tails(self, chars: int = 1500) -> str:
        """The end of every log, for a failure report."""
        return "\n".join(
            f"--- {path.name}\n{read_log_tail(path, chars)}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def uvicorn_command(app: str, port: int) -> list[str]:
    """The same uvicorn command line for both APIs (one process, no access log)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


# --- one job at a time ---------------------------------------------------------------------


@dataclass
class Samples:
    """Per-job timings of one stack, in seconds."""

    dispatch: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    failed: int = 0


def poll_until(
    client: httpx.Client, path: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """GET ``path`` every 20 ms until ``done`` says so; return the last body."""
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        response = client.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if done(body):
            return body
    raise RuntimeError(f"{path} did not finish within {JOB_SECONDS:.0f}s")


def submit_and_wait(
    client: httpx.Client,
    submit_path: str,
    payload: dict[str, Any],
    job_path: Callable[[str], str],
    done: Callable[[dict[str, Any]], bool],
    samples: Samples | None,
) -> None:
    """Submit one job, wait for it to end, and add its timings to ``samples``."""
    sent_at = time.time()
    started = time.perf_counter()
    response = client.post(submit_path, json=payload)
    post_seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"POST {submit_path}: {response.status_code} {response.text[:500]}")
    job = poll_until(client, job_path(response.json()["id"]), done)
    if job["started_at"] is None:
        raise RuntimeError(f"job {job['id']} ended {job['status']} without starting: {job}")
    created_at = datetime.fromisoformat(job["created_at"])
    started_at = datetime.fromisoformat(job["started_at"])
    if samples is None:
        return
    samples.dispatch.append((started_at - created_at).total_seconds())
    samples.client.append(started_at.timestamp() - sent_at)
    samples.post.append(post_seconds)
    samples.failed += job["status"] == "failed"


def bare_celery_delay(sender: Celery, delays: redis.Redis, samples: Samples | None) -> None:
    """Send one ``bench.record_delay`` and read back its send -> start delay."""
    sender.send_task(baseline.RECORD_DELAY_TASK, args=[time.time()], queue=baseline.QUEUE)
    popped = delays.blpop([baseline.DELAYS_KEY], timeout=JOB_SECONDS)
    if popped is None:
        raise RuntimeError("the bare Celery task did not run")
    if samples is not None:
        samples.dispatch.append(float(popped[1]))


# --- accepted jobs per second ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """An API to fire at."""

    name: str
    url: str
    path: str
    headers: dict[str, str]


@dataclass
class AcceptRound:
    """One burst of POSTs against one API."""

    accepted: int
    refused: int
    seconds: float
    first_refusal: str | None

    @property
    def rate(self) -> float:
        """Accepted jobs per second."""
        return self.accepted / self.seconds


async def fire(
    target: Target, payload: dict[str, Any], requests: int, concurrency: int
) -> AcceptRound:
    """POST ``requests`` times, ``concurrency`` at once, on fresh connections; count 2xx answers.

    A fresh client per round: keep-alive connections left idle while the other API
    was fired at may be closed by the server (uvicorn's 5 s keep-alive) just as they
    are reused.
    """
    remaining = requests
    accepted = refused = 0
    first_refusal: str | None = None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal remaining, accepted, refused, first_refusal
        while remaining > 0:
            remaining -= 1
            try:
                response = await client.post(target.path, json=payload)
            except httpx.TransportError as exc:
                refused += 1
                first_refusal = first_refusal or f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                accepted += 1
            else:
                refused += 1
                first_refusal = first_refusal or f"{response.status_code} {response.text[:300]}"

    async with httpx.AsyncClient(
        base_url=target.url, headers=target.headers, limits=limits, timeout=120.0
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return AcceptRound(accepted, refused, seconds, first_refusal)


async def accept_rates(
    targets: list[Target], payload: dict[str, Any], requests: int, concurrency: int, rounds: int
) -> dict[str, list[AcceptRound]]:
    """Warm each API up, then fire ``rounds`` rounds at each, alternating the order."""
    results: dict[str, list[AcceptRound]] = {target.name: [] for target in targets}
    for target in targets:
        await fire(target, payload, ACCEPT_WARMUP, concurrency)
    for round_number in range(rounds):
        for target in targets if round_number % 2 == 0 else targets[::-1]:
            results[target.name].append(await fire(target, payload, requests, concurrency))
    return results


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stacks:
    """Where the two APIs listen."""

    dlp_url: str
    hand_url: str


@dataclass
class Results:
    """Everything the report prints."""

    dlp: Samples
    hand: Samples
    bare: Samples
    accept: dict[str, list[AcceptRound]]
    load_before: float


def register(client: httpx.Client) -> str:
    """Register and log in a fresh user; their access token."""
    username = f"bench{secrets.token_hex(4)}"
    created = client.post(
        "/api/v1/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    if created.status_code != 201:
        raise RuntimeError(f"register: {created.status_code} {created.text[:500]}")
    tokens = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    tokens.raise_for_status()
    token: str = tokens.json()["access_token"]
    return token


def upload_dataset(client: httpx.Client) -> str:
    """Upload the tiny CSV (profiled within the request); its dataset id."""
    response = client.post("/api/v1/datasets", files={"file": ("tiny.csv", tiny_csv(), "text/csv")})
    if response.status_code != 201 or response.json()["status"] != "ready":
        raise RuntimeError(f"upload: {response.status_code} {response.text[:500]}")
    dataset_id: str = response.json()["id"]
    return dataset_id


def start_stacks(args: argparse.Namespace, processes: Processes, database_url: str) -> Stacks:
    """Migrate, then start both APIs and both workers; return once all are ready."""
    dlp_env = server_env(
        processes.log_dir / "dlp-data",
        {
            "DLP_DATABASE_URL": database_url,
            "DLP_BROKER_URL": args.redis_url,
            "DLP_REDIS_URL": args.redis_url,
            "DLP_LOG_LEVEL": "WARNING",
            # The run can outlast the default 15-minute access token.
            "DLP_ACCESS_TOKEN_MINUTES": "600",
            # Submissions and polling from one caller, faster than a person's scripts.
            "DLP_RATE_LIMIT_API": "1000000000/minute",
            "DLP_RATE_LIMIT_API_PER_IP": "1000000000/minute",
        },
    )
    hand_env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("DLP_")},
        "BENCH_DATABASE_URL": database_url,
        "BENCH_BROKER_URL": args.redis_url,
    }
    subprocess.run(
        [sys.executable, "-m", "dlp", "db", "upgrade"],
        cwd=ROOT,
        env=dlp_env,
        check=True,
        capture_output=True,
    )
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(baseline.CREATE_TABLE_SQL)
    dlp_port, hand_port = free_port(), free_port()
    processes.start("dlp-api", uvicorn_command("dlp.main:create_app", dlp_port), dlp_env)
    processes.start(
        "hand-api", uvicorn_command(f"{baseline.__name__}:create_api", hand_port), hand_env
    )
    processes.start(
        "dlp-worker",
        [sys.executable, "-m", "dlp", "worker", "--concurrency", "1", "--loglevel", "INFO"],
        dlp_env,
    )
    processes.start("hand-worker", [sys.executable, "-m", baseline.__name__, "worker"], hand_env)
    stacks = Stacks(f"http://127.0.0.1:{dlp_port}", f"http://127.0.0.1:{hand_port}")
    processes.wait_healthy("dlp-api", stacks.dlp_url)
    processes.wait_healthy("hand-api", stacks.hand_url)
    processes.wait_worker_ready("dlp-worker")
    processes.wait_worker_ready("hand-worker")
    return stacks


def measure_latency(
    args: argparse.Namespace, stacks: Stacks, token: str, payload: dict[str, Any]
) -> tuple[Samples, Samples, Samples]:
    """Dispatch latency of dlp, hand-written and bare Celery, one job at a time, interleaved."""
    dlp, hand, bare = Samples(), Samples(), Samples()
    settle = args.settle_ms / 1000
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=stacks.dlp_url, headers=headers, timeout=60.0) as dlp_client,
        httpx.Client(base_url=stacks.hand_url, timeout=60.0) as hand_client,
        closing(baseline.create_celery_app(args.redis_url)) as sender,
        closing(redis.Redis.from_url(args.redis_url)) as delays,
    ):

        def one_of_each(measured: bool) -> None:
            submit_and_wait(
                dlp_client,
                "/api/v1/training/jobs",
                payload,
                lambda job_id: f"/api/v1/training/jobs/{job_id}",
                lambda job: job["status"] in TERMINAL,
                dlp if measured else None,
            )
            time.sleep(settle)
            submit_and_wait(
                hand_client,
                "/jobs",
                payload,
                lambda job_id: f"/jobs/{job_id}",
                lambda job: job["status"] == "running",
                hand if measured else None,
            )
            time.sleep(settle)
            bare_celery_delay(sender, delays, bare if measured else None)
            time.sleep(settle)

        for _ in range(args.warmup_jobs):
            one_of_each(measured=False)
        for done in range(1, args.jobs + 1):
            one_of_each(measured=True)
            if done % 50 == 0 or done == args.jobs:
                print(f"  {done}/{args.jobs} jobs per stack", file=sys.stderr, flush=True)
    return dlp, hand, bare


def run(args: argparse.Namespace, processes: Processes, database_url: str) -> Results:
    """Start both stacks, measure dispatch latency, stop the workers, measure accept rates."""
    stacks = start_stacks(args, processes, database_url)
    load_before = os.getloadavg()[0]
    with httpx.Client(base_url=stacks.dlp_url, timeout=60.0) as client:
        token = register(client)
        client.headers["Authorization"] = f"Bearer {token}"
        payload = job_payload(upload_dataset(client))
    dlp, hand, bare = measure_latency(args, stacks, token, payload)
    # Nothing may consume while the APIs are fired at: the accepted jobs just queue up.
    processes.stop("dlp-worker")
    processes.stop("hand-worker")
    targets = [
        Target(
            "dlp", stacks.dlp_url, "/api/v1/training/jobs", {"Authorization": f"Bearer {token}"}
        ),
        Target("hand-written", stacks.hand_url, "/jobs", {}),
    ]
    accept = asyncio.run(
        accept_rates(targets, payload, args.accept_requests, args.concurrency, args.accept_rounds)
    )
    return Results(dlp, hand, bare, accept, load_before)


def report(args: argparse.Namespace, results: Results) -> None:
    """Print the table and the last summary line."""

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:8.1f}" if values else f"{'-':>8}"

    print(
        f"{args.jobs} jobs per stack, one at a time, interleaved, settle {args.settle_ms:.0f} ms "
        f"(after {args.warmup_jobs} warm-up jobs each); {os.cpu_count()} cores, load average "
        f"{results.load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"{'submit -> running':<44}{'p50 ms':>8} {'p99 ms':>8}")
    rows = [
        ("dlp (started_at - created_at)", results.dlp.dispatch),
        ("hand-written (started_at - created_at)", results.hand.dispatch),
        ("bare Celery (send -> task start)", results.bare.dispatch),
        ("dlp client-observed (POST sent -> started)", results.dlp.client),
        ("hand-written client-observed", results.hand.client),
        ("dlp POST round trip", results.dlp.post),
        ("hand-written POST round trip", results.hand.post),
    ]
    for label, values in rows:
        print(f"  {label:<42}{ms(values, 0.5)} {ms(values, 0.99)}")
    if results.dlp.failed:
        print(f"  ({results.dlp.failed} dlp jobs failed after starting; their dispatch counts)")
    print(
        f"accepted jobs/s, concurrency {args.concurrency}, "
        f"{args.accept_requests} requests per round, best of {args.accept_rounds}"
    )
    best = {}
    for name, rounds in results.accept.items():
        best[name] = max(r.rate for r in rounds)
        shown = ", ".join(f"{r.rate:.0f}" for r in rounds)
        refused = sum(r.refused for r in rounds)
        print(f"  {name:<42}{best[name]:8.0f}   (rounds: {shown}; refused {refused})")
        first = next((r.first_refusal for r in rounds if r.first_refusal), None)
        if first:
            print(f"    first refusal: {first}")
    p50_ratio = percentile(results.dlp.dispatch, 0.5) / percentile(results.hand.dispatch, 0.5)
    accept_ratio = best["dlp"] / best["hand-written"]
    print(f"dispatch: p50_ratio={p50_ratio:.2f} accept_ratio={accept_ratio:.2f}")


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> int:
    """Parse options, set everything up, measure, report, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server to make a db on")
    parser.add_argument("--redis-url", default=REDIS_URL, help="a Redis database index (flushed!)")
    parser.add_argument("--jobs", type=int, default=200, help="measured jobs per stack")
    parser.add_argument("--warmup-jobs", type=int, default=3, help="unmeasured jobs per stack")
    parser.add_argument("--settle-ms", type=float, default=100.0, help="pause after each job")
    parser.add_argument("--accept-requests", type=int, default=2000, help="POSTs per round")
    parser.add_argument("--accept-rounds", type=int, default=3, help="rounds per API")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dlp-dispatch-")))
        stack.enter_context(flushed_redis(args.redis_url))
        database_url = stack.enter_context(temporary_database(args.postgres_url))
        processes = Processes(log_dir)
        stack.callback(processes.stop_all)
        try:
            results = run(args, processes, database_url)
        except Exception:
            print(processes.log_tails(), file=sys.stderr)
            raise
        processes.stop_all()
    report(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

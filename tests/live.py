"""Run ``dlp serve`` and ``dlp worker`` as real subprocesses, for tests and benchmarks.

Not a test module: the tests (through ``tests/conftest.py``) and the benchmarks import
``live_server``, ``start_worker`` and ``stop_process`` from here.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

READY_SECONDS = 60.0
WORKER_READY_SECONDS = 90
STOP_SECONDS = 30.0
LEFTOVER_SECONDS = 10.0
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class LiveServer:
    """A running ``dlp serve``: where it listens, its process and its log."""

    url: str
    pid: int
    log_path: Path
    data_dir: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the server's combined stdout and stderr."""
        return read_log_tail(self.log_path, chars)


def read_log_tail(log_path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log file ('' when it does not exist)."""
    try:
        return log_path.read_bytes()[-chars:].decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without inherited ``DLP_*`` settings, plus the data dir."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DLP_")}
    env["DLP_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def _wait_until_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll ``GET /health`` until it answers 200; raise with the log's tail otherwise."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dlp serve exited with {process.returncode} before it was healthy:\n"
                f"{read_log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"dlp serve not healthy within {READY_SECONDS:.0f}s:\n{read_log_tail(log_path)}"
    )


def stop_server(process: subprocess.Popen[bytes], grace: float = STOP_SECONDS) -> list[str]:
    """SIGTERM ``dlp serve`` (SIGKILL after ``grace`` s); the processes of its tree left alive.

    The embedded worker runs in a session of its own, so the whole tree is
    collected up front rather than relying on the process group.
    """
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _gone, alive = psutil.wait_procs(tree, timeout=LEFTOVER_SECONDS)
    leftovers = []
    for proc in alive:
        with suppress(psutil.Error):
            leftovers.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
    return leftovers


@contextmanager
def live_server(
    data_dir: Path,
    *extra_args: str,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[LiveServer]:
    """Start ``python -m dlp serve`` on a free port, yield it once healthy, then stop it.

    ``tls`` (a certificate and its key) serves https; the certificate is then the only
    one the health poll trusts.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = log_path or data_dir.parent / f"{data_dir.name}-serve-{port}.log"
    command = [sys.executable, "-m", "dlp", "serve", "--port", str(port), *extra_args]
    verify: ssl.SSLContext | bool = True
    if tls is not None:
        command += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        verify = ssl.create_default_context(cafile=str(tls[0]))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env=server_env(data_dir, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        pid=process.pid,
        log_path=log_path,
        data_dir=data_dir,
        process=process,
    )
    try:
        _wait_until_healthy(server.url, process, log_path, verify)
        yield server
    finally:
        leftovers = stop_server(process)
        assert not leftovers, (
            f"processes of dlp serve's group outlived it: {leftovers}\n{server.log_tail()}"
        )


def start_worker(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``python -m dlp worker`` and wait until Celery says it is ready."""
    full_env = {**os.environ, **env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dlp", "worker", "--loglevel", "INFO", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-3000:]}")
        if b" ready." in log_path.read_bytes():
            return process
        time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"worker not ready in time:\n{log_path.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

"""The ``dlp`` command: run the API, run workers, manage the database; the client commands
(login, datasets, train, jobs, models, predict, tune) come from ``dlp.cli.client_commands``."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import Annotated

import typer
from pydantic import ValidationError

from dlp.cli.client_commands import register_client_commands
from dlp.cli.output import EXIT_CODES_HELP
from dlp.config import Settings, get_settings
from dlp.ops.logging import configure_logging
from dlp.queue import ALL_QUEUES

app = typer.Typer(
    help="dlp: a self-hosted deep-learning platform.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

WORKER_STOP_SECONDS = 30


class EmbeddedWorker:
    """A ``dlp worker`` child process that is restarted if it dies."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True, name="dlp-worker")

    def start(self) -> None:
        """Start the worker and its supervisor."""
        self._process = self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl-C or SIGTERM aimed at `dlp serve` must not reach the
        # pool children mid-task; stop() asks the worker for a warm shutdown instead.
        return subprocess.Popen([sys.executable, "-m", "dlp", "worker"], start_new_session=True)

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            assert self._process is not None
            code = self._process.wait()
            if self._stopping.is_set():
                return
            typer.echo(
                f"dlp: embedded worker exited with {code}; restarting in {delay:.0f}s", err=True
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            self._process = self._spawn()

    def stop(self) -> None:
        """Ask the worker to finish its current task, then make sure it is gone."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _settings() -> Settings:
    """The settings from the environment; a bad ``DLP_*`` value ends the command cleanly."""
    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "_".join(str(part) for part in error["loc"]).upper()
            where = f"DLP_{field}: " if field else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"dlp: invalid setting {where}{message}", err=True)
        raise typer.Exit(2) from None


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not start a worker beside the API.")
    ] = False,
    workers: Annotated[int, typer.Option(help="API processes (uvicorn workers).")] = 1,
) -> None:
    """Apply migrations and run the API (with one embedded Celery worker unless --no-worker)."""
    import uvicorn

    from dlp.migrate import upgrade_database

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    settings.signing_key()
    upgrade_database(settings.sqlalchemy_url)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; turning that
    # into SystemExit lets the `finally` below stop the embedded worker cleanly.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    proxies = [proxy.strip() for proxy in settings.trusted_proxies.split(",") if proxy.strip()]
    worker = None if no_worker else EmbeddedWorker()
    if worker is not None:
        worker.start()
    try:
        uvicorn.run(
            "dlp.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            # Only listed proxies may say who the client is: rate limits count its address.
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies,
        )
    finally:
        if worker is not None:
            worker.stop()


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default DLP_WORKER_CONCURRENCY).")
    ] = None,
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume: training, tuning, batch.")
    ] = ",".join(ALL_QUEUES),
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker that takes jobs from the queues (all of them by default)."""
    from dlp.worker import run_worker

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - set(ALL_QUEUES))
    if unknown or not chosen:
        raise typer.BadParameter(
            f"unknown queue(s) {', '.join(unknown) or '(none)'}; known: {', '.join(ALL_QUEUES)}",
            param_hint="--queues",
        )
    run_worker(
        settings,
        concurrency=concurrency or settings.worker_concurrency,
        queues=chosen,
        loglevel=loglevel.upper(),
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the latest migration."""
    from dlp.migrate import upgrade_database

    settings = _settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    upgrade_database(settings.sqlalchemy_url)
    typer.echo(f"database at the latest migration ({time.perf_counter() - started:.1f}s)")


register_client_commands(app)

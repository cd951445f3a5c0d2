"""The ``dlp`` command: run the API, run workers, manage the database; the client commands
(login, datasets, train, jobs, models, predict, tune) come from ``dlp.cli.client_commands``."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from dlp.cli.client_commands import register_client_commands
from dlp.cli.output import EXIT_CODES_HELP
from dlp.config import Settings, get_settings
from dlp.ops.logging import configure_logging
from dlp.queue import ALL_QUEUES

if TYPE_CHECKING:
    from dlp.ops.worker_metrics import WorkerMetricsServer

app = typer.Typer(
    help="dlp: a self-hosted deep-learning platform.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
housekeeping_app = typer.Typer(help="Housekeeping commands.", no_args_is_help=True)
app.add_typer(housekeeping_app, name="housekeeping")
storage_app = typer.Typer(help="File store commands.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")
keys_app = typer.Typer(help="Encryption key commands.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

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
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain): serve https.", exists=True, dir_okay=False),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option(help="PEM private key of --ssl-certfile.", exists=True, dir_okay=False),
    ] = None,
) -> None:
    """Apply migrations and run the API (with one embedded Celery worker unless --no-worker)."""
    import uvicorn

    from dlp.migrate import upgrade_database

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter(
            "give both --ssl-certfile and --ssl-keyfile for https, or neither for http",
            param_hint="--ssl-certfile/--ssl-keyfile",
        )
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
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus /metrics on this port (default DLP_WORKER_METRICS_PORT; "
            "unset: none), on DLP_WORKER_METRICS_HOST.",
            min=0,
            max=65535,
        ),
    ] = None,
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
        metrics=_bind_worker_metrics(settings, metrics_port),
    )


def _bind_worker_metrics(settings: Settings, port: int | None) -> WorkerMetricsServer | None:
    """The worker's metrics endpoint, bound now so that a busy port stops the worker."""
    from dlp.ops.worker_metrics import WorkerMetricsServer

    port = settings.worker_metrics_port if port is None else port
    if port is None:
        return None
    host = settings.worker_metrics_host
    try:
        return WorkerMetricsServer(settings.resolved_data_dir, host=host, port=port)
    except OSError as exc:
        typer.echo(f"dlp: cannot serve worker metrics on {host}:{port}: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("worker-health")
def worker_health(
    name: Annotated[
        str | None,
        typer.Option(help="Check this worker (as the admin view names it), not this host's."),
    ] = None,
) -> None:
    """Exit 0 when a worker on this host (or --name) heartbeated within the job lease,
    else 1, saying why: a container's health probe."""
    import socket

    from sqlalchemy.exc import SQLAlchemyError

    from dlp.db import create_db_engine, create_session_factory, session_scope, utcnow
    from dlp.workers.service import worker_health as check_worker_health

    settings = _settings()
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(create_session_factory(engine)) as session:
            healthy, reason = check_worker_health(
                session,
                now=utcnow(),
                lease_seconds=settings.job_lease_seconds,
                hostname=socket.gethostname(),
                name=name,
            )
    except SQLAlchemyError as exc:
        healthy, reason = False, f"cannot read the workers table ({type(exc).__name__})"
    finally:
        engine.dispose()
    typer.echo(f"{'healthy' if healthy else 'unhealthy'}: {reason}", err=not healthy)
    raise typer.Exit(0 if healthy else 1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the latest migration."""
    from dlp.migrate import upgrade_database

    settings = _settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    upgrade_database(settings.sqlalchemy_url)
    typer.echo(f"database at the latest migration ({time.perf_counter() - started:.1f}s)")


@housekeeping_app.command("run")
def housekeeping_run() -> None:
    """Run one housekeeping pass now (spent tokens, orphaned files, old checkpoints,
    retention) and print what it did."""
    from dlp.db import utcnow
    from dlp.housekeeping.service import run_housekeeping
    from dlp.platform import build_platform

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    platform = build_platform(settings)
    try:
        report = run_housekeeping(platform, utcnow())
    finally:
        platform.close()
    for name, count in report.counts().items():
        typer.echo(f"{name.replace('_', ' ')}: {count}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random key for DLP_ENCRYPTION_KEY."""
    from dlp.storage.keyring import generate_key

    typer.echo(generate_key())


@storage_app.command("reencrypt")
def storage_reencrypt(
    prefix: Annotated[str, typer.Option(help="Only the files under this folder.")] = "orgs",
) -> None:
    """Rewrite every stored file not yet sealed with DLP_ENCRYPTION_KEY (files under
    DLP_ENCRYPTION_OLD_KEYS and plaintext ones) under it; files already on it are skipped,
    so an interrupted run is simply run again."""
    from dlp.platform import build_platform
    from dlp.storage.encrypted import EncryptedStore
    from dlp.storage.rotation import CURRENT, reencrypt_files

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    platform = build_platform(settings)
    try:
        if not isinstance(platform.store, EncryptedStore):
            typer.echo("dlp: DLP_ENCRYPTION_KEY is not set; nothing to encrypt with", err=True)
            raise typer.Exit(2)
        seen = 0

        def progress(key: str, outcome: str) -> None:
            nonlocal seen
            seen += 1
            if outcome != CURRENT:
                typer.echo(f"{key}: {outcome}")
            if seen % 100 == 0:
                typer.echo(f"{seen} files checked")

        report = reencrypt_files(platform.store, prefix, progress)
    finally:
        platform.close()
    for outcome, count in report.counts().items():
        typer.echo(f"{outcome}: {count}")
    for key, reason in report.failures.items():
        typer.echo(f"dlp: {key}: {reason}", err=True)
    if report.failures:
        raise typer.Exit(1)


register_client_commands(app)

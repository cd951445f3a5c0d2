"""``dlp train`` and ``dlp jobs list|show|metrics|watch|logs|cancel``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dlp.cli.credentials import authenticated_client
from dlp.cli.output import (
    EXIT_JOB_FAILED,
    EXIT_USAGE,
    JsonOption,
    LimitOption,
    OffsetOption,
    cli_errors,
    fail,
    print_fields,
    print_json,
    print_page,
    print_table,
    stderr,
    stdout,
    to_jsonable,
)
from dlp.cli.watch import follow_job
from dlp.client import Client, LogEvent, StatusEvent, TrainingJob

app = typer.Typer(help="Follow and manage training jobs.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="Training job id.")]


@cli_errors
def train(
    dataset: Annotated[str, typer.Option(help="Dataset id.")],
    target: Annotated[str | None, typer.Option(help="Column to predict (tables, texts).")] = None,
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    model: Annotated[str | None, typer.Option(help="auto (default), mlp, cnn or text.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default dataset-target).")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column (texts).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per step.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    priority: Annotated[str | None, typer.Option(help="low, normal or high.")] = None,
    devices: Annotated[int | None, typer.Option(min=1, help="Data-parallel devices.")] = None,
    device_type: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help='JSON file with more request fields, e.g. {"training": {"optimizer": "sgd"}}; '
            "the options above win.",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the job live; exit 4 unless it succeeds.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Queue a training job (and with --watch follow it until it ends)."""
    extra = _read_config(config)
    training = {
        **extra.get("training", {}),
        **_given(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed),
    }
    resources = {**extra.get("resources", {}), **_given(devices=devices, device_type=device_type)}
    with authenticated_client() as client:
        job = client.jobs.submit(
            dataset,
            task=task,
            target=target,
            name=name or extra.get("name"),
            text_column=text_column or extra.get("text_column"),
            model={**extra.get("model", {"type": "auto"}), **_given(type=model)},
            training=training or None,
            priority=priority or extra.get("priority"),
            resources=resources or None,
            webhook_url=extra.get("webhook_url"),
            webhook_secret=extra.get("webhook_secret"),
        )
        if not watch:
            if as_json:
                print_json(job)
            else:
                stdout.print(f"queued training job {job.id}", markup=False)
            return
        stderr.print(f"queued training job {job.id}", markup=False)
        _watch(client, job.id, as_json)


@app.command("list")
@cli_errors
def list_jobs(
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed, cancelled.")
    ] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """List the organization's training jobs, newest first."""
    with authenticated_client() as client:
        page = client.jobs.list(status=status, limit=limit, offset=offset)
    print_page(
        page,
        "training jobs",
        ["id", "name", "status", "epoch", "model", "created"],
        lambda j: [
            j.id,
            j.name,
            j.status,
            f"{j.progress.epoch}/{j.progress.total_epochs}",
            j.model_id,
            j.created_at,
        ],
        as_json=as_json,
    )


@app.command("show")
@cli_errors
def show(job_id: JobId, as_json: JsonOption = False) -> None:
    """Show a job: status, progress, final metrics, its model."""
    with authenticated_client() as client:
        job = client.jobs.get(job_id)
    if as_json:
        print_json(job)
    else:
        _show(job)


@app.command("metrics")
@cli_errors
def metrics(job_id: JobId, as_json: JsonOption = False) -> None:
    """Every metric value the job reported, oldest first."""
    with authenticated_client() as client:
        points = client.jobs.metrics(job_id)
    if as_json:
        print_json(points)
        return
    print_table(
        f"metrics of job {job_id}",
        ["epoch", "step", "name", "value"],
        ([p.epoch, p.step, p.name, p.value] for p in points),
    )


@app.command("watch")
@cli_errors
def watch(job_id: JobId, as_json: JsonOption = False) -> None:
    """Follow a job live until it ends; exit 4 unless it succeeds."""
    with authenticated_client() as client:
        _watch(client, job_id, as_json)


@app.command("logs")
@cli_errors
def logs(job_id: JobId, as_json: JsonOption = False) -> None:
    """Print the job's log lines and status changes as they happen, until it ends."""
    with authenticated_client() as client:
        for event in client.jobs.events(job_id):
            if as_json and isinstance(event, LogEvent | StatusEvent):
                typer.echo(json.dumps(to_jsonable(event)))
            elif isinstance(event, LogEvent):
                typer.echo(f"{_when(event.at)}{event.message}")
            elif isinstance(event, StatusEvent):
                error = f": {event.error_message}" if event.error_message else ""
                typer.echo(f"{_when(event.at)}status {event.status}{error}")


@app.command("cancel")
@cli_errors
def cancel(job_id: JobId) -> None:
    """Cancel a job: a queued one never starts, a running one stops within seconds."""
    with authenticated_client() as client:
        job = client.jobs.cancel(job_id)
    stdout.print(f"job {job.id} {job.status}", markup=False)


def _watch(client: Client, job_id: str, as_json: bool) -> None:
    job = follow_job(client, job_id, stderr if as_json else stdout)
    if as_json:
        print_json(job)
    else:
        _show(job)
    if job.status != "succeeded":
        fail(
            f"job {job.id} {job.status}: {job.error_message or 'no error message'}", EXIT_JOB_FAILED
        )


def _show(job: TrainingJob) -> None:
    print_fields(
        f"training job {job.id}",
        {
            "name": job.name,
            "status": job.status,
            "progress": f"{job.progress.epoch}/{job.progress.total_epochs} epochs",
            "dataset": job.dataset_id,
            "model": job.model_id,
            "error": job.error_message,
            "waiting": job.waiting_reason,
            "created": job.created_at,
            "started": job.started_at,
            "completed": job.completed_at,
            **{f"metric {name}": value for name, value in sorted(job.metrics.items())},
        },
    )


def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        extra = json.loads(path.read_text())
    except ValueError as exc:
        fail(f"--config {path} is not JSON: {exc}", EXIT_USAGE)
    if not isinstance(extra, dict):
        fail(f"--config {path} must hold a JSON object", EXIT_USAGE)
    return extra


def _given(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _when(at: Any) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} " if at is not None else ""

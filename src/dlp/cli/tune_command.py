"""``dlp tune``: start a hyperparameter study, and with --watch follow it by polling."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from dlp.cli.credentials import authenticated_client
from dlp.cli.output import (
    EXIT_JOB_FAILED,
    JsonOption,
    cli_errors,
    fail,
    print_fields,
    print_json,
    print_table,
    stderr,
    stdout,
)
from dlp.client import Client, Study

POLL_SECONDS = 2.0


@cli_errors
def tune(
    dataset: Annotated[str, typer.Option(help="Dataset id.")],
    target: Annotated[str | None, typer.Option(help="Column to predict.")] = None,
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    trials: Annotated[int | None, typer.Option(min=1, help="Most trials (default 20).")] = None,
    model: Annotated[str, typer.Option(help="Family to tune: auto, mlp, cnn or text.")] = "auto",
    metric: Annotated[str | None, typer.Option(help="Validation metric to optimise.")] = None,
    parallelism: Annotated[int | None, typer.Option(min=1, help="Trials at once.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs per trial.")] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Time budget in minutes.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name of the best trial.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column (texts).")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Poll until the study ends; exit 4 unless it succeeds.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a tuning study (and with --watch follow its trials until it ends)."""
    with authenticated_client() as client:
        study = client.studies.create(
            dataset,
            task=task,
            target=target,
            n_trials=trials,
            model={"type": model},
            metric=metric,
            parallelism=parallelism,
            training={"epochs": epochs} if epochs is not None else None,
            max_minutes=max_minutes,
            name=name,
            text_column=text_column,
        )
        if watch:
            stderr.print(f"started tuning study {study.id}", markup=False)
            study = _follow(client, study.id)
    if as_json:
        print_json(study)
    elif watch:
        _show(study)
    else:
        stdout.print(f"started tuning study {study.id}", markup=False)
    if watch and study.status != "succeeded":
        fail(f"study {study.id} {study.status}: {study.error_message or ''}", EXIT_JOB_FAILED)


def _follow(client: Client, study_id: str) -> Study:
    """Poll the study, printing trial counts when they change, until it ends."""
    last = ""
    while True:
        study = client.studies.get(study_id)
        counts = ", ".join(f"{state} {n}" for state, n in study.trial_counts.items() if n)
        line = f"study {study.status}: {counts or 'no trials yet'}"
        if line != last:
            stderr.print(line, markup=False)
            last = line
        if study.finished:
            return study
        time.sleep(POLL_SECONDS)


def _show(study: Study) -> None:
    best = study.best
    print_fields(
        f"tuning study {study.id}",
        {
            "name": study.name,
            "status": study.status,
            "metric": f"{study.metric} ({study.direction})",
            "trials": study.n_trials,
            "best value": best.value if best else None,
            "best params": best.params if best else None,
            "model": study.model_id,
            "error": study.error_message,
        },
    )
    print_table(
        "trials",
        ["number", "state", "value", "epochs", "params"],
        ([t.number, t.state, t.value, t.epochs, t.params] for t in study.trials),
    )

"""Celery tasks of the batch prediction domain: a few lines around the runner."""

from __future__ import annotations

from celery import Task

from dlp.batch.runner import run_next_batch_prediction
from dlp.queue import JobHint
from dlp.worker_state import worker_platform


def run_next(task: Task) -> None:
    """Run the best waiting batch prediction, if any (a hint that finds none is harmless)."""
    run_next_batch_prediction(
        worker_platform(),
        worker=str(task.request.hostname),
        hint=JobHint.from_task_request(task.request),
    )

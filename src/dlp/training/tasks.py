"""Celery tasks of the training domain: a few lines around the runner."""

from __future__ import annotations

from celery import Task

from dlp.queue import JobHint
from dlp.training.runner import run_next_training_job
from dlp.worker_state import job_capacity, worker_platform


def run_next(task: Task) -> None:
    """Train the best waiting job, if any (a hint that finds none is harmless)."""
    run_next_training_job(
        worker_platform(),
        worker=str(task.request.hostname),
        capacity=job_capacity(),
        hint=JobHint.from_task_request(task.request),
    )

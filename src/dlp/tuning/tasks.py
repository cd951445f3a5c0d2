"""Celery tasks of the tuning domain: a few lines around the runner."""

from __future__ import annotations

from celery import Task

from dlp.queue import JobHint
from dlp.tuning.runner import run_next_trial
from dlp.worker_state import job_capacity, worker_platform


def run_next(task: Task) -> None:
    """Run the best waiting trial, if any (a hint that finds none is harmless)."""
    run_next_trial(
        worker_platform(),
        worker=str(task.request.hostname),
        capacity=job_capacity(),
        hint=JobHint.from_task_request(task.request),
    )

"""Celery tasks of the training domain: a few lines around the runner."""

from __future__ import annotations

import uuid

from celery import Task

from dlp.training.runner import run_training_job
from dlp.worker_state import worker_platform


def run_job(task: Task, job_id: str) -> None:
    """Train job ``job_id``; safe to run twice (the claim lets only one run train)."""
    run_training_job(worker_platform(), uuid.UUID(job_id), worker=str(task.request.hostname))

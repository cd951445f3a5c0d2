"""Celery worker entry point: the app, its tasks, and per-process set-up."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from dlp.config import Settings
from dlp.queue import TRAINING_QUEUE, create_celery_app
from dlp.training import tasks as training_tasks
from dlp.training.service import RUN_TRAINING_TASK

ALL_QUEUES = (TRAINING_QUEUE,)


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app with every dlp task registered."""
    app = create_celery_app(settings)
    app.task(name=RUN_TRAINING_TASK, bind=True)(training_tasks.run_job)
    return app


def torch_threads_per_process(concurrency: int) -> int:
    """Cores divided among concurrent jobs, so two jobs never fight over one core."""
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


_concurrency = 1


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _configure_child(**_kwargs: Any) -> None:
    import torch

    torch.set_num_threads(torch_threads_per_process(_concurrency))
    # The first optimizer a process builds imports torch._dynamo (about a second):
    # pay it when the worker starts, not inside the first job's measured time.
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


def run_worker(settings: Settings, *, concurrency: int, queues: list[str], loglevel: str) -> None:
    """Run a Celery worker in this process until it is told to stop."""
    global _concurrency
    _concurrency = concurrency
    app = create_worker_app(settings)
    app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel}",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )

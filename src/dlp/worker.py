"""Celery worker entry point: the app, its tasks, and per-process set-up."""

from __future__ import annotations

import os
import socket
from typing import Any

import structlog
from billiard.process import current_process  # type: ignore[import-untyped]
from celery import Celery
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from dlp.batch import tasks as batch_tasks
from dlp.batch.kind import RUN_BATCH_TASK
from dlp.config import Settings, get_settings
from dlp.db import utcnow
from dlp.jobs.capacity import Capacity
from dlp.ml.hardware import gpu_slice, gpus_per_job, probe_hardware
from dlp.ops.tracing import require_tracing_extra, setup_tracing
from dlp.ops.worker_metrics import WorkerMetricsServer, forget_pool_process
from dlp.queue import create_celery_app
from dlp.training import tasks as training_tasks
from dlp.training.kind import RUN_TRAINING_TASK
from dlp.tuning import tasks as tuning_tasks
from dlp.tuning.kind import RUN_TRIAL_TASK
from dlp.worker_state import set_job_capacity, set_worker_tracing, worker_tracing
from dlp.workers.housekeeping import Housekeeper
from dlp.workers.service import WorkerIdentity

log = structlog.get_logger(__name__)
HARDWARE_PROBE_SECONDS = 120
TRACING_SERVICE = "dlp-worker"


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app with every dlp task registered."""
    app = create_celery_app(settings)
    app.task(name=RUN_TRAINING_TASK, bind=True)(training_tasks.run_next)
    app.task(name=RUN_BATCH_TASK, bind=True)(batch_tasks.run_next)
    app.task(name=RUN_TRIAL_TASK, bind=True)(tuning_tasks.run_next)
    return app


def torch_threads_per_process(concurrency: int) -> int:
    """Cores divided among concurrent jobs, so two jobs never fight over one core."""
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


def worker_name() -> str:
    """A name unique to this worker process, also on a host that runs several."""
    return f"dlp-{os.getpid()}@{socket.gethostname()}"


def worker_hardware(concurrency: int) -> dict[str, Any]:
    """This machine's CPU cores and GPUs, plus ``job_devices``: what one job may use."""
    hardware = probe_hardware(timeout_s=HARDWARE_PROBE_SECONDS)
    hardware["job_devices"] = {
        "cuda": gpus_per_job(concurrency, len(hardware["gpus"])),
        "cpu": hardware["cpu_cores"],
    }
    return hardware


def child_visible_devices(process_index: int, concurrency: int, gpu_ids: list[str]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for pool child ``process_index``, given the ids of the
    GPUs its parent sees: its own slice of them, or "" when it owns none."""
    return ",".join(gpu_ids[i] for i in gpu_slice(process_index, concurrency, len(gpu_ids)))


_concurrency = 1
_hardware: dict[str, Any] = {"cpu_cores": os.cpu_count() or 1, "gpus": []}


def _pin_devices(process_index: int) -> None:
    """Give this pool child its own GPUs (before anything initialises CUDA) and record
    what one of its jobs may use."""
    gpus = _hardware["gpus"]
    owned = 0
    if gpus:
        parent = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [i.strip() for i in parent.split(",")] if parent else [str(g["index"]) for g in gpus]
        pinned = child_visible_devices(process_index, _concurrency, ids[: len(gpus)])
        os.environ["CUDA_VISIBLE_DEVICES"] = pinned
        owned = len(pinned.split(",")) if pinned else 0
    set_job_capacity(Capacity(cuda=owned, cpu=int(_hardware["cpu_cores"])))


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _configure_child(**_kwargs: Any) -> None:
    _pin_devices(int(getattr(current_process(), "index", 0)))
    # Each pool child exports its own spans; the parent runs no task, so it starts no
    # export thread before it forks.
    set_worker_tracing(setup_tracing(get_settings(), TRACING_SERVICE))
    import torch

    torch.set_num_threads(torch_threads_per_process(_concurrency))
    # The first optimizer a process builds imports torch._dynamo (about a second):
    # pay it when the worker starts, not inside the first job's measured time.
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _forget_child(**_kwargs: Any) -> None:
    forget_pool_process(os.getpid())
    worker_tracing().shutdown()


def run_worker(
    settings: Settings,
    *,
    concurrency: int,
    queues: list[str],
    loglevel: str,
    metrics: WorkerMetricsServer | None = None,
) -> None:
    """Run a Celery worker in this process until it is told to stop (serving ``metrics``,
    already bound, once its pool is up)."""
    global _concurrency, _hardware
    require_tracing_extra(settings)
    _concurrency = concurrency
    _hardware = worker_hardware(concurrency)
    log.info("worker.hardware", **_hardware)
    name = worker_name()
    housekeeper = Housekeeper(
        settings,
        WorkerIdentity(
            name=name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(queues),
            concurrency=concurrency,
            started_at=utcnow(),
            hardware=_hardware,
        ),
    )
    # Started once the pool has forked its children, so they inherit no thread.
    worker_ready.connect(lambda **_: housekeeper.start(), weak=False)
    worker_shutdown.connect(lambda **_: housekeeper.stop(), weak=False)
    if metrics is not None:
        worker_ready.connect(lambda **_: metrics.start(), weak=False)
        worker_shutdown.connect(lambda **_: metrics.stop(), weak=False)
        log.info("worker.metrics", port=metrics.port, folder=str(metrics.folder))
    app = create_worker_app(settings)
    app.worker_main(
        [
            "worker",
            f"--hostname={name}",
            f"--loglevel={loglevel}",
            f"--concurrency={concurrency}",
            f"--queues={','.join(queues)}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )

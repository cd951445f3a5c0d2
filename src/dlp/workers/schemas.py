"""The admin view of queues, workers and running jobs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class QueueOut(BaseModel):
    """One Celery queue."""

    name: str
    depth: int | None = Field(description="Messages waiting in the broker; null if unreachable.")
    waiting_jobs: int = Field(description="Jobs the database says are ready to run.")


class GpuOut(BaseModel):
    """One CUDA GPU a worker sees."""

    index: int = Field(description="Its position among the GPUs the worker sees.")
    name: str
    memory_mb: int


class WorkerHardwareOut(BaseModel):
    """A worker's devices, and what one of its jobs may use."""

    cpu_cores: int
    gpus: list[GpuOut]
    job_devices: dict[str, int] = Field(
        description="Most devices one job may ask for, by device type: 'cuda' is the GPUs "
        "one pool process owns (GPUs are split among concurrent jobs), 'cpu' the cores."
    )


class WorkerOut(BaseModel):
    """One worker process and its last heartbeat."""

    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    last_heartbeat_at: datetime
    alive: bool = Field(description="Heartbeat within the job lease period.")
    hardware: WorkerHardwareOut | None = Field(description="Null for workers of older releases.")


class RunningJobOut(BaseModel):
    """A job some worker holds right now."""

    id: uuid.UUID
    kind: str = Field(description="'training job' or 'batch prediction'.")
    name: str
    organization_id: uuid.UUID
    queue: str
    priority: str
    worker: str | None
    attempts: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    progress: dict[str, int] = Field(
        description="Epochs of a training job; rows of a batch prediction."
    )


class QueuesOverview(BaseModel):
    """``GET /api/v1/admin/queues``."""

    queues: list[QueueOut]
    workers: list[WorkerOut]
    running_jobs: list[RunningJobOut]

"""What a worker process keeps for its tasks: its platform, built once from the
environment, its tracing, and the devices one job may use here."""

from __future__ import annotations

from functools import lru_cache

from dlp.config import get_settings
from dlp.jobs.capacity import Capacity, local_capacity
from dlp.ops.tracing import NO_TRACING, Tracing
from dlp.platform import Platform, build_platform

# Set by the worker in each pool child, once its GPUs are pinned; None elsewhere.
_job_capacity: Capacity | None = None
# Set by the worker in each pool child, before its first task builds the platform.
_tracing: Tracing = NO_TRACING


@lru_cache(maxsize=1)
def worker_platform() -> Platform:
    """This worker process's platform (database engine, store, queue), traced by its
    tracing."""
    return build_platform(get_settings(), _tracing)


def set_worker_tracing(tracing: Tracing) -> None:
    """Record the tracing of this process (the worker's pool child)."""
    global _tracing
    _tracing = tracing


def worker_tracing() -> Tracing:
    """This process's tracing: what the worker set, else none."""
    return _tracing


def set_job_capacity(capacity: Capacity) -> None:
    """Record the devices a job may use in this process (the worker's pool child)."""
    global _job_capacity
    _job_capacity = capacity


def job_capacity() -> Capacity:
    """The devices a job may use in this process: what the worker set, else this
    machine's cores and no GPU."""
    return _job_capacity or local_capacity()

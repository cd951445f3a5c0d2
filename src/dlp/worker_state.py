"""What a worker process keeps for its tasks: its platform, built once from the
environment, and the devices one job may use here."""

from __future__ import annotations

from functools import lru_cache

from dlp.config import get_settings
from dlp.jobs.capacity import Capacity, local_capacity
from dlp.platform import Platform, build_platform

# Set by the worker in each pool child, once its GPUs are pinned; None elsewhere.
_job_capacity: Capacity | None = None


@lru_cache(maxsize=1)
def worker_platform() -> Platform:
    """This worker process's platform (database engine, store, queue)."""
    return build_platform(get_settings())


def set_job_capacity(capacity: Capacity) -> None:
    """Record the devices a job may use in this process (the worker's pool child)."""
    global _job_capacity
    _job_capacity = capacity


def job_capacity() -> Capacity:
    """The devices a job may use in this process: what the worker set, else this
    machine's cores and no GPU."""
    return _job_capacity or local_capacity()

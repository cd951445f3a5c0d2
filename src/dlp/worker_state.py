"""The platform of a worker process, built once per process from the environment."""

from __future__ import annotations

from functools import lru_cache

from dlp.config import get_settings
from dlp.platform import Platform, build_platform


@lru_cache(maxsize=1)
def worker_platform() -> Platform:
    """This worker process's platform (database engine, store, queue)."""
    return build_platform(get_settings())

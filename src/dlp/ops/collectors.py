"""Prometheus collectors read at scrape time: the data directory's disk, and the
platform's jobs, queues and workers (from the database and the broker, at most once
per few seconds, so a scraper cannot hammer them)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dlp.db import session_scope, utcnow
from dlp.workers.service import PlatformSnapshot, platform_snapshot

if TYPE_CHECKING:
    from dlp.platform import Platform

log = structlog.get_logger(__name__)


class DiskCollector(Collector):
    """Free and total bytes of the disk that holds ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        """The disk's usage now (nothing while the folder cannot be read)."""
        try:
            usage = shutil.disk_usage(self.path)
        except OSError:
            return []
        return [
            GaugeMetricFamily(
                "dlp_data_dir_free_bytes",
                "Free bytes on the disk of the data directory.",
                value=usage.free,
            ),
            GaugeMetricFamily(
                "dlp_data_dir_size_bytes",
                "Size in bytes of the disk of the data directory.",
                value=usage.total,
            ),
        ]


class PlatformCollector(Collector):
    """Jobs by kind and status, queue depths, live workers and heartbeat ages, read anew
    when the last reading is older than ``ttl_seconds``."""

    def __init__(self, platform: Platform, *, ttl_seconds: float) -> None:
        self.platform = platform
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._metrics: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        """The latest reading, refreshed first when stale."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl_seconds:
                self._metrics = self._read()
                self._read_at = time.monotonic()
            return list(self._metrics)

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "dlp_platform_metrics_up",
            "1 when the last reading of jobs, queues and workers succeeded.",
        )
        try:
            with session_scope(self.platform.sessions) as session:
                snapshot = platform_snapshot(session, self.platform, utcnow())
        except Exception as exc:
            log.warning("metrics.platform_unavailable", error=f"{type(exc).__name__}: {exc}")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *_families(snapshot)]


def _families(snapshot: PlatformSnapshot) -> list[Metric]:
    jobs = GaugeMetricFamily(
        "dlp_jobs",
        "Jobs by kind (the queue they run from: training, tuning trials, batch "
        "predictions) and status.",
        labels=["queue", "status"],
    )
    for (queue, status), count in sorted(snapshot.jobs.items()):
        jobs.add_metric([queue, status], count)
    depth = GaugeMetricFamily(
        "dlp_queue_depth",
        "Hints waiting on each broker queue (absent while the broker does not answer).",
        labels=["queue"],
    )
    for queue, waiting in snapshot.queue_depths.items():
        if waiting is not None:
            depth.add_metric([queue], waiting)
    ages = GaugeMetricFamily(
        "dlp_worker_heartbeat_age_seconds",
        "Seconds since each worker seen in the last week last heartbeated.",
        labels=["worker"],
    )
    for worker, age in sorted(snapshot.heartbeat_ages.items()):
        ages.add_metric([worker], age)
    live = GaugeMetricFamily(
        "dlp_workers_live",
        "Workers that heartbeated within the job lease.",
        value=snapshot.live_workers,
    )
    return [jobs, depth, ages, live]

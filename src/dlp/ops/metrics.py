"""Prometheus metrics of the API process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.registry import Collector

from dlp.ops.collectors import DiskCollector, PlatformCollector

if TYPE_CHECKING:
    from dlp.platform import Platform

PLATFORM_METRICS_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class ServingMetrics:
    """The instruments the online-prediction engine reports to."""

    cache: Counter
    batch_requests: Histogram
    batch_rows: Histogram
    queue_wait: Histogram
    latency: Histogram


class ApiMetrics:
    """The API's own registry, so several apps in one process (tests) never collide.

    Besides its instruments it holds, read at scrape time: the process's CPU, memory and
    open files, the data directory's disk, and (once :meth:`watch` is given the
    platform) jobs, queues and workers from the database and the broker.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._watching: list[Collector] = []
        self.http_latency = Histogram(
            "dlp_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.model_cache = Counter(
            "dlp_model_cache_total",
            "Loaded-model cache events (hit, miss, eviction) by cache level.",
            ["level", "result"],
            registry=self.registry,
        )
        self.serving_batch_requests = Histogram(
            "dlp_serving_batch_requests",
            "Prediction requests coalesced into one model call.",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.serving_batch_rows = Histogram(
            "dlp_serving_batch_rows",
            "Rows in one model call of the online-prediction batcher.",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
        )
        self.serving_queue_wait = Histogram(
            "dlp_serving_queue_wait_seconds",
            "Time a prediction request waited for its batch to start.",
            registry=self.registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1),
        )
        self.prediction_latency = Histogram(
            "dlp_prediction_duration_seconds",
            "Time the prediction engine took to answer one request: loading the model on a "
            "cache miss, waiting for its batch, and the model call.",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )

    def serving(self) -> ServingMetrics:
        """The instruments of the online-prediction engine."""
        return ServingMetrics(
            cache=self.model_cache,
            batch_requests=self.serving_batch_requests,
            batch_rows=self.serving_batch_rows,
            queue_wait=self.serving_queue_wait,
            latency=self.prediction_latency,
        )

    def watch(self, platform: Platform, data_dir: Path) -> None:
        """Report the data directory's disk and the platform's jobs, queues and workers
        (instead of those of the platform watched before, if any)."""
        for collector in self._watching:
            self.registry.unregister(collector)
        self._watching = [
            DiskCollector(data_dir),
            PlatformCollector(platform, ttl_seconds=PLATFORM_METRICS_TTL_SECONDS),
        ]
        for collector in self._watching:
            self.registry.register(collector)

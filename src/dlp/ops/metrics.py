"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    """The API's own registry, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

"""What a worker's jobs report to Prometheus: jobs run by outcome, jobs running now, and
the training speed of the last epoch.

The instruments are made on first use, in the process that uses them: a worker serving
metrics (``dlp worker --metrics-port``) has put prometheus_client in multiprocess mode
before its pool children make theirs, so each child writes to its own file and the
parent adds them up. Elsewhere (the API, tests) they are in-memory and nobody scrapes
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Counter, Gauge


@dataclass(frozen=True)
class JobMetrics:
    """The instruments the job machinery reports to."""

    jobs: Counter
    running: Gauge
    training_samples_per_second: Gauge


@lru_cache(maxsize=1)
def job_metrics() -> JobMetrics:
    """This process's job instruments (unregistered: a worker's exposition reads them
    from the multiprocess files)."""
    return JobMetrics(
        jobs=Counter(
            "dlp_worker_jobs",
            "Job attempts a worker ran, by queue and outcome (finished: the job's own code "
            "gave it its end state; failed, cancelled, retried after a transient fault, or "
            "abandoned after its lease moved to another attempt).",
            ["queue", "outcome"],
            registry=None,
        ),
        running=Gauge(
            "dlp_worker_running_jobs",
            "Jobs this worker is running now, by queue.",
            ["queue"],
            registry=None,
            multiprocess_mode="livesum",
        ),
        training_samples_per_second=Gauge(
            "dlp_worker_training_samples_per_second",
            "Training rows per second of the last epoch a pool process completed "
            "(optimizer steps x batch size over the epoch's wall time, validation and "
            "checkpoint included; one rank of a data-parallel job).",
            registry=None,
            multiprocess_mode="mostrecent",
        ),
    )

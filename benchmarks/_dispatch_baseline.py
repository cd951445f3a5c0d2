"""The hand-written equivalent that ``benchmarks/dispatch.py`` holds dlp's dispatch to.

A bare FastAPI app whose ``POST /jobs`` (a plain ``def``, so it runs in the thread
pool as dlp's endpoints do) inserts one row into ``bench_jobs``, commits, then sends
``bench.mark_running`` with the row's id; and a Celery app whose task marks the row
running. Both timestamps are taken in Python (``datetime.now(UTC)``), as dlp takes
``created_at`` and ``started_at``. ``bench.record_delay`` is the bare-Celery
reference: it pushes "now - time of sending" onto a Redis list.

It is minimal on purpose: no authentication, no request validation, no dataset
lookup, and the message carries the row's id (the task updates that row by primary
key), where dlp authenticates, validates against the dataset and wakes a worker that
claims the best waiting job from the database.

The Celery settings are a copy of ``dlp.queue.create_celery_app``'s for a Redis broker
as of this writing (acks late, reject on worker lost, prefetch 1, a 12-hour visibility
timeout, no results, JSON only, the same connection and publish retries), and the
worker runs with ``dlp.worker.run_worker``'s flags (prefork, no gossip, mingle or
heartbeat). They are copied, not imported, so that the yardstick stays hand-written:
when dlp changes its queue settings, change them here too.

Configuration comes from the environment: ``BENCH_DATABASE_URL`` (a plain
``postgresql://`` URL) and ``BENCH_BROKER_URL`` (``redis://``). Run by
``benchmarks/dispatch.py``:

    python -m uvicorn benchmarks._dispatch_baseline:create_api --factory --port P
    python -m benchmarks._dispatch_baseline worker
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from fastapi import FastAPI, HTTPException, status
from sqlalchemy import Engine, create_engine, text

QUEUE = "bench"
MARK_RUNNING_TASK = "bench.mark_running"
RECORD_DELAY_TASK = "bench.record_delay"
DELAYS_KEY = "bench:delays"
"""The Redis list (in the broker's database) that ``bench.record_delay`` appends to."""

CREATE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_jobs (
    id uuid PRIMARY KEY,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz
)
"""
_INSERT = text(
    "INSERT INTO bench_jobs (id, status, created_at) VALUES (:id, 'queued', :created_at)"
)
_MARK_RUNNING = text(
    "UPDATE bench_jobs SET status = 'running', started_at = :started_at "
    "WHERE id = :id AND status = 'queued'"
)
_SELECT = text("SELECT status, created_at, started_at FROM bench_jobs WHERE id = :id")


def sqlalchemy_url(database_url: str) -> str:
    """A plain ``postgresql://`` URL with the psycopg 3 driver that dlp uses too."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in {"postgres", "postgresql"} else database_url


def create_db_engine(database_url: str) -> Engine:
    """A pooled engine sized like dlp's (10 + 20 overflow) for concurrent requests."""
    return create_engine(sqlalchemy_url(database_url), pool_size=10, max_overflow=20)


def create_celery_app(broker_url: str) -> Celery:
    """A Celery app with dlp's reliability settings, copied (see the module docstring)."""
    app = Celery("bench", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"visibility_timeout": 12 * 3600},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        # Only matters when the broker refuses a publish; copied to keep the sets equal.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def create_api() -> FastAPI:
    """The hand-written submit endpoint (uvicorn factory; reads ``BENCH_*``)."""
    engine = create_db_engine(os.environ["BENCH_DATABASE_URL"])
    celery = create_celery_app(os.environ["BENCH_BROKER_URL"])
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/jobs", status_code=status.HTTP_202_ACCEPTED)
    def submit_job() -> dict[str, str]:
        job_id = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(_INSERT, {"id": job_id, "created_at": datetime.now(UTC)})
        celery.send_task(MARK_RUNNING_TASK, args=[str(job_id)], queue=QUEUE)
        return {"id": str(job_id), "status": "queued"}

    @app.get("/jobs/{job_id}")
    def get_job(job_id: uuid.UUID) -> dict[str, Any]:
        with engine.connect() as connection:
            row = connection.execute(_SELECT, {"id": job_id}).one_or_none()
        if row is None:
            raise HTTPException(status_code=404)
        return {"id": str(job_id), "status": row[0], "created_at": row[1], "started_at": row[2]}

    return app


@lru_cache(maxsize=1)
def _worker_engine() -> Engine:
    # Built in the pool child on its first task, never shared across the fork.
    return create_db_engine(os.environ["BENCH_DATABASE_URL"])


@lru_cache(maxsize=1)
def _worker_redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_BROKER_URL"])


def mark_running(job_id: str) -> None:
    """Move the job's row from queued to running."""
    started_at = datetime.now(UTC)
    with _worker_engine().begin() as connection:
        connection.execute(_MARK_RUNNING, {"id": uuid.UUID(job_id), "started_at": started_at})


def record_delay(sent_at: float) -> None:
    """Append the seconds between sending and starting this task to ``DELAYS_KEY``."""
    delay = time.time() - sent_at
    _worker_redis().rpush(DELAYS_KEY, repr(delay))


def create_worker_app(broker_url: str) -> Celery:
    """The Celery app with both benchmark tasks registered."""
    app = create_celery_app(broker_url)
    app.task(name=MARK_RUNNING_TASK)(mark_running)
    app.task(name=RECORD_DELAY_TASK)(record_delay)
    return app


def run_worker(argv: list[str]) -> None:
    """Run one prefork worker on the bench queue, with ``dlp worker``'s flags."""
    app = create_worker_app(os.environ["BENCH_BROKER_URL"])
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            "--concurrency=1",
            f"--queues={QUEUE}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *argv,
        ]
    )


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        sys.exit("usage: python -m benchmarks._dispatch_baseline worker [celery worker options]")
    run_worker(sys.argv[2:])

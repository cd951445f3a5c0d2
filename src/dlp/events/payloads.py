"""The JSON events of a job's live stream, built in one place for publishers and streams.

Every event is a plain JSON-ready dict with a ``type``: ``status``, ``metric``
or ``log``. Workers publish exactly these; ``dlp.events.stream`` builds the same
ones from the database, so a follower cannot tell which source an event came from.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from dlp.db import utcnow
from dlp.training.models import JobMetric, TrainingJob
from dlp.training.schemas import TERMINAL_STATUSES

STATUS = "status"
METRIC = "metric"
LOG = "log"
EVENT_TYPES = frozenset({STATUS, METRIC, LOG})


def status_event(job: TrainingJob) -> dict[str, Any]:
    """The job's state: status, progress, final metrics, error and model, as of now."""
    return {
        "type": STATUS,
        "status": job.status,
        "progress": {"epoch": job.progress_epoch, "total_epochs": job.total_epochs},
        "metrics": {name: _finite(value) for name, value in (job.metrics or {}).items()},
        "error_message": job.error_message,
        "model_id": str(job.model_id) if job.model_id is not None else None,
        "at": _iso(_status_since(job)),
    }


def metric_event(row: JobMetric) -> dict[str, Any]:
    """One stored metric value; ``id`` is its row id, which orders and deduplicates events."""
    return {
        "type": METRIC,
        "id": row.id,
        "epoch": row.epoch,
        "step": row.step,
        "name": row.name,
        "value": _finite(row.value),
        "at": _iso(row.at),
    }


def log_event(message: str) -> dict[str, Any]:
    """A line of the job's log, stamped now."""
    return {"type": LOG, "message": message, "at": _iso(utcnow())}


def is_terminal(event: dict[str, Any]) -> bool:
    """True for a status event that ends the job (and with it the stream)."""
    return event.get("type") == STATUS and event.get("status") in TERMINAL_STATUSES


def _status_since(job: TrainingJob) -> datetime:
    if job.status in TERMINAL_STATUSES:
        moment = job.completed_at
    elif job.status == "running":
        moment = job.started_at
    else:
        moment = job.created_at
    return moment or utcnow()


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity: a diverged loss is sent as null rather than
    # as a token that browsers' JSON.parse rejects.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

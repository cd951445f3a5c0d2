"""Batch predictions as the shared job machinery sees them."""

from __future__ import annotations

from dlp.batch.models import BatchPrediction
from dlp.jobs.kind import JobKind
from dlp.queue import BATCH_QUEUE

RUN_BATCH_TASK = "dlp.batch.run_next"

BATCH_PREDICTIONS: JobKind[BatchPrediction] = JobKind(
    table=BatchPrediction,
    label="batch prediction",
    queue=BATCH_QUEUE,
    task_name=RUN_BATCH_TASK,
    progress=lambda job: {"rows_done": job.rows_done, "rows_total": job.rows_total},
)

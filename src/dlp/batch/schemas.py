"""Request and response bodies of the batch prediction endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dlp.batch.models import BatchPrediction
from dlp.training.schemas import JobStatus, Priority

OutputFormat = Literal["csv", "parquet"]


class BatchPredictionCreate(BaseModel):
    """``POST /api/v1/models/{id}/batch-predictions``."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID
    format: OutputFormat = Field(default="csv", description="Output file format.")
    include_inputs: bool = Field(
        default=False,
        description="Copy each input row's columns (an image's path and folder) into the "
        "output beside its prediction; otherwise rows are matched by their 0-based `row`.",
    )
    text_column: str | None = Field(
        default=None,
        max_length=255,
        description="Text models: the dataset column to read (default: the one trained on).",
    )
    priority: Priority = "normal"


class BatchProgress(BaseModel):
    """Rows predicted so far, of all rows."""

    rows_done: int
    rows_total: int


class BatchOutput(BaseModel):
    """The finished output file."""

    format: OutputFormat
    rows: int
    size_bytes: int
    download_url: str


class BatchPredictionOut(BaseModel):
    """A batch prediction job."""

    id: uuid.UUID
    status: JobStatus
    model_id: uuid.UUID | None
    model_name: str
    model_version: int
    dataset_id: uuid.UUID | None
    format: OutputFormat
    include_inputs: bool
    priority: Priority
    progress: BatchProgress
    output: BatchOutput | None = Field(description="Set once the job succeeded.")
    error_message: str | None
    attempts: int = Field(description="Tries so far (a lost worker or transient fault adds one).")
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_job(cls, job: BatchPrediction) -> BatchPredictionOut:
        """The API view of a job row."""
        output = None
        if job.status == "succeeded" and job.output_bytes is not None:
            output = BatchOutput(
                format=job.output_format,
                rows=job.rows_done,
                size_bytes=job.output_bytes,
                download_url=f"/api/v1/batch-predictions/{job.id}/download",
            )
        return cls(
            id=job.id,
            status=job.status,
            model_id=job.model_id,
            model_name=job.name,
            model_version=job.model_version,
            dataset_id=job.dataset_id,
            format=job.output_format,
            include_inputs=job.include_inputs,
            priority=job.priority,
            progress=BatchProgress(rows_done=job.rows_done, rows_total=job.rows_total),
            output=output,
            error_message=job.error_message,
            attempts=job.attempts,
            worker=job.worker,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )

"""Request and response bodies of the training endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dlp.ml.config import AutoModelConfig, ModelConfig, Task, TrainingConfig
from dlp.training.models import TrainingJob

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "pruned"]
# "pruned": a tuning trial its study's pruner stopped early (plain jobs never end so).
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "pruned"})
Priority = Literal["low", "normal", "high"]
ModelName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
ColumnName = Annotated[str, Field(min_length=1, max_length=255)]
MAX_JOB_DEVICES = 64


class Resources(BaseModel):
    """Devices a job asks for."""

    model_config = ConfigDict(extra="forbid")

    devices: int = Field(
        default=1,
        ge=1,
        le=MAX_JOB_DEVICES,
        description=(
            "Data-parallel processes (DistributedDataParallel): GPUs with cuda, "
            "processes sharing the worker's cores with cpu."
        ),
    )
    device_type: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: the worker's GPUs when it has any, else its CPU cores."
    )


class TrainingJobCreate(BaseModel):
    """What to train, on which dataset, and how."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID
    name: ModelName | None = Field(
        default=None,
        description="Model name the result is registered under; default: dataset-target.",
    )
    task: Task
    target: ColumnName | None = Field(
        default=None,
        description="Column to predict (tabular and text; image classes come from folders).",
    )
    text_column: ColumnName | None = Field(
        default=None, description="Column holding the text (text)."
    )
    model: ModelConfig = Field(default_factory=AutoModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    priority: Priority = "normal"
    resources: Resources = Field(default_factory=Resources)
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POSTed the job JSON, signed (X-DLP-Signature), when the job ends.",
    )
    webhook_secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=100,
        description="HMAC-SHA256 key for X-DLP-Signature; generated and shown once if absent.",
    )


class Progress(BaseModel):
    """How far a job got."""

    epoch: int
    total_epochs: int


class TrainingJobOut(BaseModel):
    """A training job."""

    id: uuid.UUID
    name: str
    status: JobStatus
    dataset_id: uuid.UUID | None
    config: dict[str, Any]
    priority: Priority
    progress: Progress
    metrics: dict[str, float]
    model_id: uuid.UUID | None
    error_message: str | None
    attempts: int = Field(description="Tries so far (a lost worker or transient fault adds one).")
    worker: str | None = Field(description="The worker running, or last running, the job.")
    webhook_url: str | None
    webhook_status: str | None
    study_id: uuid.UUID | None = Field(description="The tuning study this job is a trial of.")
    trial_number: int | None = Field(description="Its trial number in that study, once sampled.")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    waiting_reason: str | None = Field(
        default=None,
        description="Why a queued job waits when no live worker has the devices it asks for.",
    )

    @classmethod
    def from_job(cls, job: TrainingJob, waiting_reason: str | None = None) -> TrainingJobOut:
        """The API view of a job row (and why it waits, if it waits for devices)."""
        return cls(**job_fields(job), waiting_reason=waiting_reason)


class TrainingJobAccepted(TrainingJobOut):
    """A job just queued; ``webhook_secret`` is shown here only, once."""

    webhook_secret: str | None

    @classmethod
    def from_new_job(cls, job: TrainingJob) -> TrainingJobAccepted:
        """The answer to a submission: the job, plus its webhook secret this once."""
        return cls(**job_fields(job), webhook_secret=job.webhook_secret)


def job_fields(job: TrainingJob) -> dict[str, Any]:
    """The fields of :class:`TrainingJobOut` for a job row."""
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "dataset_id": job.dataset_id,
        "config": job.config,
        "priority": job.priority,
        "progress": Progress(epoch=job.progress_epoch, total_epochs=job.total_epochs),
        "metrics": job.metrics,
        "model_id": job.model_id,
        "error_message": job.error_message,
        "attempts": job.attempts,
        "worker": job.worker,
        "webhook_url": job.webhook_url,
        "webhook_status": job.webhook_status,
        "study_id": job.study_id,
        "trial_number": job.trial_number,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
    }


class MetricPoint(BaseModel):
    """One reported metric value."""

    epoch: int
    step: int
    name: str
    value: float
    at: datetime


class MetricList(BaseModel):
    """A job's metric history, oldest first."""

    items: list[MetricPoint]

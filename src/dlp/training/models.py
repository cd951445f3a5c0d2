"""Training jobs and their metric rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, utcnow
from dlp.jobs.models import LeasedJob


class TrainingJob(LeasedJob, Base):
    """One request to train a model, from queued to a terminal status."""

    __tablename__ = "training_jobs"

    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    # No foreign key: models.job_id points back here, and a deleted model
    # version should not erase which model a job once produced.
    model_id: Mapped[uuid.UUID | None]
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress_epoch: Mapped[int] = mapped_column(default=0)
    checkpoint_epoch: Mapped[int | None]
    total_epochs: Mapped[int]
    # ``config["resources"]`` as columns, so a worker claims only the jobs its devices fit.
    devices: Mapped[int] = mapped_column(default=1, server_default="1")
    device_type: Mapped[str] = mapped_column(String(10), default="auto", server_default="auto")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    webhook_status: Mapped[str | None] = mapped_column(String(20), index=True)
    webhook_attempts: Mapped[int] = mapped_column(default=0)
    webhook_next_at: Mapped[datetime | None]
    webhook_error: Mapped[str | None] = mapped_column(Text)
    # A tuning trial is a training job of a study; its Optuna trial number, sampled
    # parameters and objective value are mirrored here so reading a study needs no Optuna.
    study_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tuning_studies.id", ondelete="CASCADE"), index=True
    )
    trial_number: Mapped[int | None]
    trial_params: Mapped[dict[str, Any] | None]
    trial_value: Mapped[float | None] = mapped_column(Float)
    # A finished trial's model, stored but not registered: what registering it needs.
    trial_result: Mapped[dict[str, Any] | None]


class JobMetric(Base):
    """One metric value reported during training."""

    __tablename__ = "job_metrics"
    # Row ids order a job's live events: SQLite must never reuse the ids of rows a
    # resumed job deleted (PostgreSQL sequences never do).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    epoch: Mapped[int]
    step: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow)

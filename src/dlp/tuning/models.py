"""A tuning study: what to search, how far, and what it found."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, CreatedAt, UUIDPrimaryKey


class TuningStudy(UUIDPrimaryKey, CreatedAt, Base):
    """One search over a model family's hyperparameters on one dataset.

    Its trials are ``training_jobs`` rows pointing here; Optuna's own record of the
    study (samplers and pruners read it) lives in Optuna's tables under ``optuna_name``.
    """

    __tablename__ = "tuning_studies"
    __table_args__ = (
        Index("ix_tuning_studies_organization_id_created_at", "organization_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    config: Mapped[dict[str, Any]]
    optuna_name: Mapped[str] = mapped_column(String(64), unique=True)
    n_trials: Mapped[int]
    parallelism: Mapped[int]
    deadline_at: Mapped[datetime | None]
    best_job_id: Mapped[uuid.UUID | None]
    best_value: Mapped[float | None] = mapped_column(Float)
    model_id: Mapped[uuid.UUID | None]
    importances: Mapped[dict[str, Any] | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]

"""Batch prediction jobs."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base
from dlp.jobs.models import LeasedJob


class BatchPrediction(LeasedJob, Base):
    """One request to predict every row of a dataset with one model version.

    ``name`` is the model's name; the output lands in the file store under
    ``output_key`` once the job succeeded.
    """

    __tablename__ = "batch_predictions"

    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), index=True
    )
    model_version: Mapped[int]
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    output_format: Mapped[str] = mapped_column(String(10))
    include_inputs: Mapped[bool] = mapped_column(default=False)
    text_column: Mapped[str | None] = mapped_column(String(255))
    rows_total: Mapped[int] = mapped_column(BigInteger)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    output_key: Mapped[str | None] = mapped_column(String(500))
    output_bytes: Mapped[int | None] = mapped_column(BigInteger)

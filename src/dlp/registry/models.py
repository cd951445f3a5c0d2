"""The models table: each row is one numbered version of a named model."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, CreatedAt, JSONType, UUIDPrimaryKey, utcnow


class Model(UUIDPrimaryKey, CreatedAt, Base):
    """A trained model version: lineage, metrics, schema and its files' digests."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("organization_id", "name", "version"),
        Index("ix_models_organization_id_created_at", "organization_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    task: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    data_kind: Mapped[str] = mapped_column(String(20), default="tabular")
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input_schema: Mapped[list[Any]] = mapped_column(JSONType)
    classes: Mapped[list[Any] | None] = mapped_column(JSONType)
    files: Mapped[dict[str, Any]]
    file_prefix: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    dlp_version: Mapped[str] = mapped_column(String(20))
    quantization: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """The int8 report (``QuantizationOut``), or None before quantization."""
    serving_variant: Mapped[str] = mapped_column(String(10), default="fp32")
    """``fp32`` (the trained network) or ``int8`` (its quantized graph) answers predictions."""


class ModelAlias(Base):
    """A name (``production``, ``staging``, any) pointing at one version of a model."""

    __tablename__ = "model_aliases"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    # Indexed on its own: start-up warms every organization's ``production`` versions.
    alias: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    version: Mapped[int]
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrafficSplit(Base):
    """How a model name's registry predictions are shared between its versions."""

    __tablename__ = "model_traffic"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    weights: Mapped[dict[str, Any]]
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

"""The datasets table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, CreatedAt, UUIDPrimaryKey


class Dataset(UUIDPrimaryKey, CreatedAt, Base):
    """An uploaded file, its parsed profile and where its bytes live."""

    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_organization_id_created_at", "organization_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    file_format: Mapped[str] = mapped_column(String(20))
    file_key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    n_rows: Mapped[int | None] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)

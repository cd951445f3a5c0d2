"""Workers seen by the platform, with their last heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base, JSONType


class WorkerRecord(Base):
    """One ``dlp worker`` process, as it last reported itself."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    queues: Mapped[list[str]] = mapped_column(JSONType)
    concurrency: Mapped[int]
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    # CPU cores, GPUs and ``job_devices`` (what one job may use); null from older workers.
    hardware: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

"""The columns every claimable job table carries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from dlp.db import CreatedAt, UUIDPrimaryKey


class LeasedJob(UUIDPrimaryKey, CreatedAt):
    """Mixin: owner, name, status and priority, and the lease a worker holds while it runs the job.

    Every write a worker makes for the job is conditional on still holding
    ``lease_token``, which its heartbeat keeps fresh in ``heartbeat_at``. Lists of an
    organization's jobs, newest first, read the ``(organization_id, created_at)`` index.
    """

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:  # noqa: N805 - declared_attr takes the class
        """The index of an organization's jobs by age."""
        name = f"ix_{cls.__tablename__}_organization_id_created_at"  # type: ignore[attr-defined]
        return (Index(name, "organization_id", "created_at"),)

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr takes the class
        """The organization that owns the job."""
        return mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))

    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    error_message: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(255))
    lease_token: Mapped[uuid.UUID | None]
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    run_after: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

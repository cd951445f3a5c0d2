"""The one table of housekeeping: when each periodic pass last started, and where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dlp.db import Base


class HousekeepingRun(Base):
    """The last start of one periodic pass, claimed by one process of the installation.

    A process runs the pass only if its conditional UPDATE moved ``started_at`` forward:
    of many API processes and replicas, exactly one wins each interval.
    """

    __tablename__ = "housekeeping_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime]

"""Every query on the datasets table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dlp.datasets.models import Dataset
from dlp.repository import get_owned, paginate


def add(session: Session, dataset: Dataset) -> Dataset:
    """Insert a dataset row."""
    session.add(dataset)
    session.flush()
    return dataset


def get(session: Session, *, dataset_id: uuid.UUID, organization_id: uuid.UUID) -> Dataset | None:
    """The organization's dataset, or None."""
    return get_owned(session, Dataset, row_id=dataset_id, organization_id=organization_id)


def list_page(
    session: Session, *, organization_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Any], int]:
    """The organization's datasets, newest first."""
    statement = (
        select(Dataset)
        .where(Dataset.organization_id == organization_id)
        .order_by(Dataset.created_at.desc(), Dataset.id)
    )
    return paginate(session, statement, limit=limit, offset=offset)


def delete(session: Session, dataset: Dataset) -> None:
    """Delete a dataset row."""
    session.delete(dataset)
    session.flush()


def stored_bytes(session: Session, organization_id: uuid.UUID) -> int:
    """How many bytes the organization's uploads take."""
    total = session.scalar(
        select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
            Dataset.organization_id == organization_id
        )
    )
    return int(total or 0)

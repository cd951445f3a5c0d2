"""Every query on the models table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dlp.registry.models import Model
from dlp.repository import get_owned, paginate


def next_version(session: Session, *, organization_id: uuid.UUID, name: str) -> int:
    """One more than the highest version of ``name`` in the organization."""
    highest = session.scalar(
        select(func.max(Model.version)).where(
            Model.organization_id == organization_id, Model.name == name
        )
    )
    return (highest or 0) + 1


def add(session: Session, model: Model) -> Model:
    """Insert a model version row."""
    session.add(model)
    session.flush()
    return model


def get(session: Session, *, model_id: uuid.UUID, organization_id: uuid.UUID) -> Model | None:
    """The organization's model version, or None."""
    return get_owned(session, Model, row_id=model_id, organization_id=organization_id)


def list_page(
    session: Session, *, organization_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Any], int]:
    """The organization's model versions, newest first."""
    statement = (
        select(Model)
        .where(Model.organization_id == organization_id)
        .order_by(Model.created_at.desc(), Model.id)
    )
    return paginate(session, statement, limit=limit, offset=offset)


def delete(session: Session, model: Model) -> None:
    """Delete a model version row."""
    session.delete(model)
    session.flush()

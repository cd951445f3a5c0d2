"""Query helpers shared by every domain's repository."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

Row = TypeVar("Row")


def get_owned(
    session: Session, model: type[Row], *, row_id: uuid.UUID, organization_id: uuid.UUID
) -> Row | None:
    """The row with ``row_id`` if the organization owns it, else None."""
    statement = select(model).where(
        model.id == row_id,  # type: ignore[attr-defined]
        model.organization_id == organization_id,  # type: ignore[attr-defined]
    )
    row: Row | None = session.scalars(statement).first()
    return row


def paginate(
    session: Session, statement: Select[Any], *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """One page of ``statement``'s rows and the total count."""
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = list(session.scalars(statement.limit(limit).offset(offset)))
    return rows, total or 0

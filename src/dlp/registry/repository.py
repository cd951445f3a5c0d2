"""Every query on the models table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dlp.registry.models import Model, ModelAlias, TrafficSplit
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


def list_versions(session: Session, *, organization_id: uuid.UUID, name: str) -> list[Model]:
    """Every version of ``name``, newest first."""
    return list(
        session.scalars(
            select(Model)
            .where(Model.organization_id == organization_id, Model.name == name)
            .order_by(Model.version.desc())
        )
    )


def get_version(
    session: Session, *, organization_id: uuid.UUID, name: str, version: int
) -> Model | None:
    """Version ``version`` of ``name``, or None."""
    return session.scalar(
        select(Model).where(
            Model.organization_id == organization_id, Model.name == name, Model.version == version
        )
    )


def list_aliases(session: Session, *, organization_id: uuid.UUID, name: str) -> list[ModelAlias]:
    """The aliases of ``name``, by alias."""
    return list(
        session.scalars(
            select(ModelAlias)
            .where(ModelAlias.organization_id == organization_id, ModelAlias.name == name)
            .order_by(ModelAlias.alias)
        )
    )


def get_alias(
    session: Session, *, organization_id: uuid.UUID, name: str, alias: str
) -> ModelAlias | None:
    """One alias of ``name``, or None."""
    return session.get(ModelAlias, (organization_id, name, alias))


def put_alias(session: Session, alias: ModelAlias) -> ModelAlias:
    """Create or move an alias."""
    merged = session.merge(alias)
    session.flush()
    return merged


def delete_alias(session: Session, alias: ModelAlias) -> None:
    """Remove an alias."""
    session.delete(alias)
    session.flush()


def get_traffic(session: Session, *, organization_id: uuid.UUID, name: str) -> TrafficSplit | None:
    """The traffic split of ``name``, or None."""
    return session.get(TrafficSplit, (organization_id, name))


def put_traffic(session: Session, split: TrafficSplit) -> TrafficSplit:
    """Create or replace a traffic split."""
    merged = session.merge(split)
    session.flush()
    return merged


def delete_traffic(session: Session, split: TrafficSplit) -> None:
    """Remove a traffic split."""
    session.delete(split)
    session.flush()


def list_aliased_versions(session: Session, alias: str) -> list[Model]:
    """Every organization's versions that ``alias`` points at."""
    return list(
        session.scalars(
            select(Model)
            .join(
                ModelAlias,
                (ModelAlias.organization_id == Model.organization_id)
                & (ModelAlias.name == Model.name)
                & (ModelAlias.version == Model.version),
            )
            .where(ModelAlias.alias == alias)
        )
    )


def stored_bytes(session: Session, organization_id: uuid.UUID) -> int:
    """How many bytes the organization's model versions take: their trained files, plus
    the int8 graph of those that were quantized."""
    owned = Model.organization_id == organization_id
    trained = session.scalar(select(func.coalesce(func.sum(Model.size_bytes), 0)).where(owned))
    reports = session.scalars(
        select(Model.quantization).where(owned, Model.quantization.is_not(None))
    )
    int8 = sum(int(report.get("size_bytes_int8", 0)) for report in reports if report)
    return int(trained or 0) + int8

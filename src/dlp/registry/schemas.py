"""Response bodies of the model endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelOut(BaseModel):
    """One model version with its lineage and metrics."""

    id: uuid.UUID
    name: str
    version: int
    task: str
    type: str
    data_kind: str
    dataset_id: uuid.UUID | None
    job_id: uuid.UUID | None
    metrics: dict[str, float]
    evaluation: dict[str, Any] = Field(
        default_factory=dict,
        description="Validation-split details of the kept model, e.g. the confusion matrix.",
    )
    input_schema: list[dict[str, Any]]
    classes: list[Any] | None
    config: dict[str, Any]
    size_bytes: int
    dlp_version: str
    created_at: datetime


ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MAX_TRAFFIC_VERSIONS = 10


class AliasIn(BaseModel):
    """Where an alias should point."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class AliasOut(BaseModel):
    """An alias and the version it points at."""

    name: str
    alias: str
    version: int
    updated_at: datetime


class TrafficOut(BaseModel):
    """Registry predictions of ``name`` go to each version with probability weight / total."""

    name: str
    weights: dict[str, float]
    updated_at: datetime


class RegistryNameOut(BaseModel):
    """A model name: its versions (newest first), aliases and traffic split."""

    name: str
    versions: list[ModelOut]
    aliases: dict[str, int]
    traffic: dict[str, float] | None

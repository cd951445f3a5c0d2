"""Response bodies of the model endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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

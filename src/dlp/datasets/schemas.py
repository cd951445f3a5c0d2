"""Response bodies of the dataset endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    """A dataset and its profile."""

    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID
    name: str
    kind: str
    format: str
    status: str
    size_bytes: int
    n_rows: int | None
    schema_: dict[str, Any] = Field(
        alias="schema", description="Tabular: {columns: [{name, dtype, n_missing, n_unique}]}"
    )
    error_message: str | None = None
    created_at: datetime

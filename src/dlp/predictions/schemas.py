"""Request and response bodies of the prediction endpoint."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_INPUTS = 1000


class PredictRequest(BaseModel):
    """Rows to predict: one object of column values per row (tabular models)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(min_length=1, max_length=MAX_INPUTS)


class PredictResponse(BaseModel):
    """Predictions aligned with the inputs; probabilities aligned with ``classes``."""

    model_id: uuid.UUID
    model_version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None

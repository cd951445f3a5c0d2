"""Response bodies of the model endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ServingVariant = Literal["fp32", "int8"]


class QuantizationOut(BaseModel):
    """How the int8 variant scores against the trained (fp32) model on its validation rows."""

    mode: Literal["int8"]
    metric: Literal["val_accuracy", "val_rmse"]
    before: float
    after: float
    change: float = Field(description="after - before: up is better accuracy but worse RMSE.")
    validation_rows: int = Field(description="Validation rows scored (at most 50,000).")
    size_bytes_fp32: int = Field(description="Size of the fp32 ONNX graph.")
    size_bytes_int8: int = Field(description="Size of the int8 ONNX graph.")
    created_at: datetime


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
    quantization: QuantizationOut | None = Field(
        default=None, description="The int8 variant's report; null before quantization."
    )
    serving_variant: ServingVariant = Field(
        default="fp32", description="Which variant answers predictions."
    )


class ServingIn(BaseModel):
    """Which variant of a model version answers its predictions."""

    model_config = ConfigDict(extra="forbid")

    variant: ServingVariant


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

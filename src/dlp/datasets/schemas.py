"""Response bodies of the dataset endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class NumericHistogram(BaseModel):
    """Equal-width bins over a numeric column's exact range."""

    kind: Literal["numeric"]
    edges: list[float] = Field(description="Bin edges, from the minimum to the maximum")
    counts: list[int] = Field(description="Rows in each bin; they sum to the finite values")
    sampled: bool = Field(
        description="True when counts were scaled from a uniform sample of 10,000 values"
    )


class CategoricalHistogram(BaseModel):
    """A string column's most frequent values."""

    kind: Literal["categorical"]
    values: list[str] = Field(description="Up to 10 values, most frequent first")
    counts: list[int]
    other: int = Field(description="Present values outside the listed ones")
    exact: bool = Field(
        description="False when over 1,000 distinct values (or 1 MiB of their text) were "
        "seen: values first seen after that count only in `other`, so the list may miss one"
    )


Histogram = Annotated[NumericHistogram | CategoricalHistogram, Field(discriminator="kind")]


class ColumnOut(BaseModel):
    """One column of a tabular or text dataset."""

    model_config = ConfigDict(extra="allow")

    name: str
    dtype: str
    n_missing: int
    n_unique: int
    n_unique_exact: bool = True
    histogram: Histogram | None = Field(
        default=None, description="None for columns with no value to draw, and old profiles"
    )


class TabularSchema(BaseModel):
    """The columns of a tabular or text dataset."""

    model_config = ConfigDict(extra="allow")

    columns: list[ColumnOut] = []


class ImageSchema(BaseModel):
    """The classes of an image archive."""

    model_config = ConfigDict(extra="allow")

    classes: list[str]
    n_images: int
    class_counts: dict[str, int] = {}
    image_sizes: dict[str, list[int]] | None = Field(
        default=None, description="Widths and heights: {min, max, median: [width, height]}"
    )
    modes: dict[str, int] = Field(default={}, description="Images per PIL mode")


def _schema_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "image" if "classes" in value else "tabular"
    return "image" if isinstance(value, ImageSchema) else "tabular"


DatasetSchema = Annotated[
    Annotated[TabularSchema, Tag("tabular")] | Annotated[ImageSchema, Tag("image")],
    Discriminator(_schema_tag),
]


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
    schema_: DatasetSchema = Field(alias="schema")
    error_message: str | None = None
    created_at: datetime

"""Schemas shared by every domain: the list envelope and paging parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """The contract's list envelope."""

    items: list[Item]
    total: int
    limit: int
    offset: int

    @classmethod
    def build(
        cls, rows: Sequence[Any], total: int, params: PageParams, to_out: Callable[[Any], Item]
    ) -> Page[Item]:
        """The envelope for one page of rows, each turned into its API view."""
        return cls(
            items=[to_out(row) for row in rows],
            total=total,
            limit=params.limit,
            offset=params.offset,
        )


class PageParams(BaseModel):
    """``limit`` (default 50, max 200) and ``offset`` of a collection ``GET``."""

    limit: int = 50
    offset: int = 0


# Far past any real collection, and well inside the databases' 64-bit OFFSET.
MAX_OFFSET = 1_000_000_000


def page_params(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PageParams:
    """Read paging parameters from the query string."""
    return PageParams(limit=limit, offset=offset)

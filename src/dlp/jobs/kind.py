"""A ``JobKind`` tells the shared machinery about one table of jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, true

from dlp.events.bus import JobEvents
from dlp.jobs.capacity import Capacity
from dlp.jobs.models import LeasedJob

J = TypeVar("J", bound=LeasedJob)


def _nothing_to_do(*_args: object) -> None:
    return None


def _fits_anywhere(_capacity: Capacity) -> ColumnElement[bool]:
    return true()


@dataclass(frozen=True)
class JobKind(Generic[J]):
    """One kind of claimable job: its rows, the queue and task that run them, and four hooks.

    ``scope`` picks this kind's rows when several kinds share a table (tuning trials
    are training jobs that belong to a study, run from their own queue).

    ``progress`` says how far a running job got (for the admins' queue view);
    ``on_end`` runs in the transaction that gives a job its terminal status
    (training owes its webhook there); ``announce`` runs after a state change
    committed, with an optional log line, to tell live followers; ``fits`` picks
    the rows a worker process of a given :class:`Capacity` may claim.
    """

    table: type[J]
    label: str
    queue: str
    task_name: str
    progress: Callable[[J], dict[str, int]]
    on_end: Callable[[J, datetime], None] = _nothing_to_do
    announce: Callable[[JobEvents, J, str | None], None] = _nothing_to_do
    scope: ColumnElement[bool] = field(default_factory=true)
    fits: Callable[[Capacity], ColumnElement[bool]] = _fits_anywhere

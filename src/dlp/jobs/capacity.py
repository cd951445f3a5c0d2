"""Which jobs fit which worker: the one rule, for claiming, submitting and explaining a wait.

A job asks for ``devices`` of a ``device_type``; a worker's pool child can give a job
the GPUs it owns (``cuda``) or the machine's cores (``cpu``); ``auto`` means its GPUs
when it owns any, else its cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, or_

DEVICE_TYPES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Capacity:
    """What one job may use on a worker: the GPUs its process owns, and CPU cores."""

    cuda: int
    cpu: int

    @classmethod
    def from_job_devices(cls, job_devices: Mapping[str, Any]) -> Capacity:
        """From a heartbeat's ``hardware["job_devices"]``."""
        return cls(cuda=int(job_devices.get("cuda", 0)), cpu=int(job_devices.get("cpu", 1)))


def local_capacity() -> Capacity:
    """This process's capacity when no worker set one: its machine's cores, no GPU."""
    return Capacity(cuda=0, cpu=os.cpu_count() or 1)


def usable_devices(device_type: str, capacity: Capacity) -> int:
    """How many devices of ``device_type`` a job gets at ``capacity``."""
    if device_type == "cuda":
        return capacity.cuda
    if device_type == "cpu":
        return capacity.cpu
    return capacity.cuda or capacity.cpu


def fits(devices: int, device_type: str, capacity: Capacity) -> bool:
    """Whether a job asking ``devices`` of ``device_type`` can run at ``capacity``."""
    return devices <= usable_devices(device_type, capacity)


def fits_clause(
    devices: SQLColumnExpression[int], device_type: SQLColumnExpression[str], capacity: Capacity
) -> ColumnElement[bool]:
    """:func:`fits` as a SQL condition on a job table's columns."""
    return or_(
        *(
            and_(device_type == kind, devices <= usable_devices(kind, capacity))
            for kind in DEVICE_TYPES
        )
    )


def describe_request(devices: int, device_type: str) -> str:
    """``2 cuda devices``, in words."""
    what = "devices (GPUs, else CPU cores)" if device_type == "auto" else f"{device_type} devices"
    return f"{devices} {what}"


def shortfall(
    devices: int, device_type: str, workers: Sequence[tuple[str, Capacity | None]]
) -> str | None:
    """Why no worker of ``workers`` (name, capacity) can run the job; None when one can,
    when none is known, or when one's capacity is unknown (an older worker)."""
    if not workers or any(capacity is None for _, capacity in workers):
        return None
    known = [(name, capacity) for name, capacity in workers if capacity is not None]
    if any(fits(devices, device_type, capacity) for _, capacity in known):
        return None
    name, largest = max(known, key=lambda pair: usable_devices(device_type, pair[1]))
    return (
        f"no live worker has {describe_request(devices, device_type)}; "
        f"the largest has {usable_devices(device_type, largest)} (worker {name})"
    )

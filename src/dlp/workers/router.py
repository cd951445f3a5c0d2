"""Installation administration: the queues and the workers behind them."""

from __future__ import annotations

from fastapi import APIRouter

from dlp.db import utcnow
from dlp.dependencies import PlatformDep, SessionDep, SuperuserPrincipal
from dlp.workers import service
from dlp.workers.schemas import QueuesOverview

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/queues")
def queues(
    session: SessionDep,
    platform: PlatformDep,
    _admin: SuperuserPrincipal,
) -> QueuesOverview:
    """Queue depths, workers seen with their last heartbeat, and the running jobs."""
    return service.queues_overview(session, platform, utcnow())

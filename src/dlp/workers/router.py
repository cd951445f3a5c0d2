"""Installation administration: the queues and the workers behind them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dlp.auth.service import Principal
from dlp.db import utcnow
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep
from dlp.workers import service
from dlp.workers.schemas import QueuesOverview

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


async def require_superuser(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be the installation's superuser."""
    principal.require_superuser()
    return principal


@router.get("/queues")
def queues(
    session: SessionDep,
    platform: PlatformDep,
    _admin: Annotated[Principal, Depends(require_superuser)],
) -> QueuesOverview:
    """Queue depths, workers seen with their last heartbeat, and the running jobs."""
    return service.queues_overview(session, platform, utcnow())

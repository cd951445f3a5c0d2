"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from dlp.dependencies import PlatformDep
from dlp.ops.metrics import ApiMetrics

log = structlog.get_logger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


def _probe(name: str, check: Callable[[], Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:
        # The answer is public: the exception's text may name hosts, URLs or server
        # paths, so it goes to the log and the answer names only its kind.
        log.warning("ready.check_failed", check=name, error=f"{type(exc).__name__}: {exc}")
        return {
            "ok": False,
            "error": type(exc).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get("/ready", responses={503: {"description": "A dependency does not answer."}})
def ready(request: Request, platform: PlatformDep) -> JSONResponse:
    """200 when the database, the queue, the file store and Redis (when configured)
    answer, each with its latency; else 503 naming which not."""

    def database() -> None:
        with platform.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    checks = {
        "database": _probe("database", database),
        "queue": _probe("queue", platform.queue.check),
        "store": _probe("store", platform.store.check),
    }
    if platform.settings.redis_url:
        checks["redis"] = _probe("redis", platform.events.check)
    failing = [name for name, result in checks.items() if not result["ok"]]
    if not failing:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse(
        status_code=503,
        content={
            "status": "unavailable",
            "error": "service_unavailable",
            "message": f"not answering: {', '.join(failing)}",
            "request_id": request.state.request_id,
            "checks": checks,
        },
    )


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text exposition of this API process's metrics."""
    registry: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

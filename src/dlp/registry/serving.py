"""Predicting by model id or name, shared by every prediction endpoint and protocol.

Lookups on this hot path (which version a name serves, the version's row) are
cached per process for ``DLP_SERVING_LOOKUP_CACHE_SECONDS``; the process that moves
an alias or a traffic split forgets its entries at once, others within that time.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from dlp.auth.service import Principal
from dlp.cache import SingleFlightCache
from dlp.db import session_scope
from dlp.platform import Platform
from dlp.predictions.schemas import PredictResponse
from dlp.predictions.server import ModelServer
from dlp.registry import repository, service
from dlp.registry.models import Model

log = structlog.get_logger(__name__)


class ServingDirectory:
    """Finds the model row that serves a request, from a short-lived cache when it can."""

    def __init__(self, platform: Platform, ttl_seconds: float) -> None:
        self.platform = platform
        self._models: SingleFlightCache[tuple[uuid.UUID, Any], Model] = SingleFlightCache(
            ttl_seconds
        )
        self._weights: SingleFlightCache[tuple[uuid.UUID, str], dict[int, float]] = (
            SingleFlightCache(ttl_seconds)
        )

    async def by_id(self, principal: Principal, model_id: uuid.UUID) -> Model:
        """The organization's model version ``model_id`` (404 if it is not theirs)."""
        return await self._models.get_or_load(
            (principal.organization_id, model_id),
            lambda: self._read(
                lambda session: service.get_model_or_raise(session, principal, model_id)
            ),
        )

    async def by_name(
        self, principal: Principal, name: str, *, version: int | None = None
    ) -> Model:
        """The version of ``name`` that serves: ``version`` when given, else one drawn
        from the traffic split or the ``production`` alias."""
        organization_id = principal.organization_id
        if version is None:
            weights = await self._weights.get_or_load(
                (organization_id, name),
                lambda: self._read(
                    lambda session: service.serving_weights(session, principal, name)
                ),
            )
            version = service.pick_version(weights)
        chosen = version
        return await self._models.get_or_load(
            (organization_id, (name, chosen)),
            lambda: self._read(
                lambda session: service.version_or_raise(session, principal, name, chosen)
            ),
        )

    def forget(self, organization_id: uuid.UUID, *, name: str | None = None) -> None:
        """Drop what this process cached about ``name`` (or all of the organization's
        models), after an alias, traffic split or version changed."""
        self._weights.forget(lambda key: key[0] == organization_id and name in (None, key[1]))
        self._models.forget(lambda key: key[0] == organization_id)

    async def _read(self, query: Any) -> Any:
        def run() -> Any:
            with session_scope(self.platform.sessions) as session:
                return query(session)

        return await run_in_threadpool(run)


def directory(request: Request) -> ServingDirectory:
    """The process's serving directory."""
    found: ServingDirectory = request.app.state.serving_directory
    return found


async def predict(request: Request, model: Model, inputs: list[Any]) -> PredictResponse:
    """Run ``model`` on ``inputs`` through the process's model server."""
    server: ModelServer = request.app.state.model_server
    return await server.predict(model, inputs)


async def warm_production_versions(platform: Platform, server: ModelServer) -> None:
    """Load every ``production`` version into ``server`` (run beside start-up, not before it)."""

    def production() -> list[Model]:
        with session_scope(platform.sessions) as session:
            return repository.list_aliased_versions(session, service.PRODUCTION_ALIAS)

    try:
        models = await run_in_threadpool(production)
        await server.warm(models)
    except Exception as exc:
        # A model that cannot load now fails its own requests, with the reason.
        log.warning("serving.warm_failed", error=str(exc))
        return
    log.info("serving.warmed", models=len(models))

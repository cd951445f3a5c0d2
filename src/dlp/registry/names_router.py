"""Registry endpoints by model name: versions, aliases, traffic split.

``POST /api/v1/registry/{name}/predict`` is answered by ``dlp.predictions.lane``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response, status

from dlp.dependencies import (
    CurrentPrincipal,
    SessionDep,
    WriterPrincipal,
)
from dlp.registry import service, serving
from dlp.registry.schemas import AliasIn, AliasOut, RegistryNameOut, TrafficOut

router = APIRouter(prefix="/api/v1/registry", tags=["registry"])

ModelName = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/{name}/versions")
def list_versions(
    name: ModelName, session: SessionDep, principal: CurrentPrincipal
) -> RegistryNameOut:
    """The versions of a model name (newest first), its aliases and its traffic split."""
    return service.describe_name(session, principal, name)


@router.put("/{name}/aliases/{alias}")
def set_alias(
    name: ModelName,
    alias: Annotated[str, Path(min_length=1, max_length=64)],
    body: AliasIn,
    request: Request,
    session: SessionDep,
    principal: WriterPrincipal,
) -> AliasOut:
    """Point an alias (``production``, ``staging``, any name) at a version."""
    row = service.set_alias(session, principal, name, alias, body.version)
    serving.directory(request).forget(principal.organization_id, name=name)
    return AliasOut(name=name, alias=row.alias, version=row.version, updated_at=row.updated_at)


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(
    name: ModelName,
    alias: str,
    request: Request,
    session: SessionDep,
    principal: WriterPrincipal,
) -> Response:
    """Remove an alias."""
    service.remove_alias(session, principal, name, alias)
    serving.directory(request).forget(principal.organization_id, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/traffic")
def get_traffic(name: ModelName, session: SessionDep, principal: CurrentPrincipal) -> TrafficOut:
    """The traffic split of a model name."""
    split = service.get_traffic_or_raise(session, principal, name)
    return TrafficOut(name=name, weights=split.weights, updated_at=split.updated_at)


@router.put("/{name}/traffic")
def set_traffic(
    name: ModelName,
    weights: Annotated[dict[str, float], Body(examples=[{"1": 90, "2": 10}])],
    request: Request,
    session: SessionDep,
    principal: WriterPrincipal,
) -> TrafficOut:
    """Split registry predictions between versions by weight (A/B tests, gradual roll-outs)."""
    split = service.set_traffic(session, principal, name, weights)
    serving.directory(request).forget(principal.organization_id, name=name)
    return TrafficOut(name=name, weights=split.weights, updated_at=split.updated_at)


@router.delete("/{name}/traffic", status_code=status.HTTP_204_NO_CONTENT)
def delete_traffic(
    name: ModelName, request: Request, session: SessionDep, principal: WriterPrincipal
) -> Response:
    """Remove the traffic split: registry predictions go to ``production`` again."""
    service.clear_traffic(session, principal, name)
    serving.directory(request).forget(principal.organization_id, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Open Inference Protocol v2 endpoints and MLflow-style invocations, on the registry's models.

``{name}`` is a registry name of the caller's organization: without a version it is
served like ``POST /api/v1/registry/{name}/predict`` (traffic split, else ``production``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

import dlp
from dlp.db import session_scope
from dlp.dependencies import SERVING_SECURITY, PlatformDep, ServingPrincipal
from dlp.protocols import kserve, mlflow
from dlp.registry import service, serving

v2_router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])
mlflow_router = APIRouter(prefix="/api/v1/registry", tags=["registry"])

ModelName = Annotated[str, Path(min_length=1, max_length=100)]
Version = Annotated[int, Path(ge=1)]
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An Open Inference Protocol v2 request (JSON, or JSON followed by "
        "binary tensor data with the Inference-Header-Content-Length header).",
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["inputs"]}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@v2_router.get("")
async def server_metadata() -> dict[str, object]:
    """The server's name, version and protocol extensions."""
    return {"name": "dlp", "version": dlp.__version__, "extensions": []}


@v2_router.get("/health/live")
async def live() -> dict[str, bool]:
    """The process is up."""
    return {"live": True}


@v2_router.get("/health/ready")
async def ready() -> dict[str, bool]:
    """The server takes inference requests (``/ready`` checks the backends in depth)."""
    return {"ready": True}


async def _metadata(
    platform: PlatformDep, principal: ServingPrincipal, name: str, version: int | None
) -> kserve.ModelMetadata:
    def read() -> kserve.ModelMetadata:
        with session_scope(platform.sessions) as session:
            versions = service.versions_or_raise(session, principal, name)
            model = service.serving_version(session, principal, name, version=version)
            return kserve.model_metadata(model, [v.version for v in versions])

    return await run_in_threadpool(read)


@v2_router.get("/models/{name}", openapi_extra=SERVING_SECURITY)
async def model_metadata(
    name: ModelName, platform: PlatformDep, principal: ServingPrincipal
) -> kserve.ModelMetadata:
    """Inputs and outputs of the version that serves ``name``."""
    return await _metadata(platform, principal, name, None)


@v2_router.get("/models/{name}/versions/{version}", openapi_extra=SERVING_SECURITY)
async def version_metadata(
    name: ModelName, version: Version, platform: PlatformDep, principal: ServingPrincipal
) -> kserve.ModelMetadata:
    """Inputs and outputs of one version."""
    return await _metadata(platform, principal, name, version)


@v2_router.get("/models/{name}/ready", openapi_extra=SERVING_SECURITY)
async def model_ready(
    name: ModelName, request: Request, principal: ServingPrincipal
) -> dict[str, object]:
    """Whether ``name`` has a version to serve (404 or 409 when it does not)."""
    model = await serving.directory(request).by_name(principal, name)
    return {"name": name, "ready": True, "version": str(model.version)}


@v2_router.get("/models/{name}/versions/{version}/ready", openapi_extra=SERVING_SECURITY)
async def version_ready(
    name: ModelName, version: Version, request: Request, principal: ServingPrincipal
) -> dict[str, object]:
    """Whether the version exists and can serve."""
    await serving.directory(request).by_name(principal, name, version=version)
    return {"name": name, "ready": True, "version": str(version)}


async def _infer(
    request: Request, principal: ServingPrincipal, name: str, version: int | None
) -> Response:
    body = kserve.parse_request(await request.body(), request.headers.get(kserve.BINARY_HEADER))
    model = await serving.directory(request).by_name(principal, name, version=version)
    answer = await serving.predict(request, model, kserve.to_inputs(model, body))
    content, header_length = kserve.encode_response(
        kserve.to_response(model, answer, body), kserve.wants_binary(body)
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={kserve.BINARY_HEADER: str(header_length)},
    )


# The bodies are read by hand: JSON, or JSON followed by binary tensor data.
@v2_router.post("/models/{name}/infer", openapi_extra=INFER_BODY | SERVING_SECURITY)
async def infer(name: ModelName, request: Request, principal: ServingPrincipal) -> Response:
    """Inference on the version that serves ``name`` (traffic split, else ``production``)."""
    return await _infer(request, principal, name, None)


@v2_router.post(
    "/models/{name}/versions/{version}/infer", openapi_extra=INFER_BODY | SERVING_SECURITY
)
async def infer_version(
    name: ModelName, version: Version, request: Request, principal: ServingPrincipal
) -> Response:
    """Inference on one version."""
    return await _infer(request, principal, name, version)


@mlflow_router.post("/{name}/invocations", openapi_extra=SERVING_SECURITY)
async def invocations(
    name: ModelName, request: Request, principal: ServingPrincipal
) -> JSONResponse:
    """MLflow's scoring protocol: ``dataframe_split``, ``dataframe_records``, ``instances`` or
    ``inputs`` as JSON, or CSV; answers ``{"predictions": [...]}``. The serving version is
    in the ``X-DLP-Model-Version`` header."""
    model = await serving.directory(request).by_name(principal, name)
    inputs = mlflow.parse_body(model, await request.body(), request.headers.get("content-type", ""))
    answer = await serving.predict(request, model, inputs)
    return JSONResponse(
        {"predictions": answer.predictions},
        headers={"X-DLP-Model-Version": str(model.version)},
    )

"""Model endpoints: list, read, download, delete, quantize, choose the serving variant.

``POST /api/v1/models/{id}/predict`` is answered by ``dlp.predictions.lane``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from dlp.datasets import service as dataset_service
from dlp.dependencies import (
    CurrentPrincipal,
    PlatformDep,
    SessionDep,
    StoreDep,
    WriterPrincipal,
)
from dlp.predictions.server import ModelServer
from dlp.registry import quantization, service, serving
from dlp.registry.schemas import ModelOut, ServingIn
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/models", tags=["models"])


async def get_model_server(request: Request) -> ModelServer:
    """The process's model server (loaded-model cache and micro-batcher)."""
    server: ModelServer = request.app.state.model_server
    return server


ModelServerDep = Annotated[ModelServer, Depends(get_model_server)]


@router.get("")
def list_models(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageParams = Depends(page_params),
) -> Page[ModelOut]:
    """The organization's model versions, newest first."""
    rows, total = service.list_models(session, principal, limit=page.limit, offset=page.offset)
    return Page.build(rows, total, page, service.to_out)


@router.get("/{model_id}")
def get_model(model_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> ModelOut:
    """One model version with lineage and metrics."""
    return service.to_out(service.get_model_or_raise(session, principal, model_id))


@router.get("/{model_id}/download", response_class=StreamingResponse)
def download_model(
    model_id: uuid.UUID,
    session: SessionDep,
    store: StoreDep,
    principal: CurrentPrincipal,
    format: Annotated[Literal["safetensors", "onnx", "torchscript"], Query()] = "safetensors",
) -> Response:
    """The model's weights (safetensors), or its network as ONNX or TorchScript.

    ONNX and TorchScript take the encoded input and carry ``model.json`` (the
    preprocessing) inside: ONNX metadata ``dlp.manifest``, TorchScript extra file.
    """
    model = service.get_model_or_raise(session, principal, model_id)
    stem = f"{model.name}-v{model.version}"
    if format == "safetensors":
        return StreamingResponse(
            store.iter_chunks(f"{model.file_prefix}/model.safetensors"),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{stem}.safetensors"'},
        )
    data = service.export_model_file(store, model, format)
    filename = f"{stem}.{service.EXPORT_SUFFIXES[format]}"
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(
    model_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    server: ModelServerDep,
    principal: WriterPrincipal,
) -> Response:
    """Delete a model version and its files."""
    service.delete_model(session, store, principal, model_id)
    server.discard(model_id)
    serving.directory(request).forget(principal.organization_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{model_id}/quantize")
def quantize_model(
    model_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    server: ModelServerDep,
    principal: WriterPrincipal,
) -> ModelOut:
    """Make the version's int8 variant (dynamic quantization of MatMul/Gemm weights) and
    report its validation metric before and after, on up to 50,000 validation rows.

    Quantizing again replaces the earlier int8 file and report. 409 when the version's
    dataset was deleted; 422 when the model cannot be exported to ONNX.
    """
    model = quantization.quantize_model_version(
        session,
        platform.store,
        principal,
        model_id,
        limits=dataset_service.archive_limits(platform.settings),
    )
    server.discard(model_id)
    serving.directory(request).forget(principal.organization_id)
    return service.to_out(model)


@router.put("/{model_id}/serving")
def set_serving_variant(
    model_id: uuid.UUID,
    body: ServingIn,
    request: Request,
    session: SessionDep,
    server: ModelServerDep,
    principal: WriterPrincipal,
) -> ModelOut:
    """Answer the version's predictions with its ``fp32`` network or its ``int8`` graph
    (409 before it was quantized). The int8 graph skips the fp32 parity check."""
    model = quantization.set_serving_variant(session, principal, model_id, body.variant)
    server.discard(model_id)
    serving.directory(request).forget(principal.organization_id)
    return service.to_out(model)

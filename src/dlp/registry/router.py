"""Model endpoints: list, read, download, delete, predict."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from dlp.dependencies import CurrentPrincipal, SessionDep, StoreDep, WriterPrincipal
from dlp.predictions import service as prediction_service
from dlp.predictions.schemas import PredictRequest, PredictResponse
from dlp.registry import service
from dlp.registry.schemas import ModelOut
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/models", tags=["models"])


def get_model_cache(request: Request) -> prediction_service.ModelCache:
    """The process's loaded-model cache."""
    cache: prediction_service.ModelCache = request.app.state.model_cache
    return cache


ModelCacheDep = Annotated[prediction_service.ModelCache, Depends(get_model_cache)]


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


@router.post("/{model_id}/predict")
def predict(
    model_id: uuid.UUID,
    body: PredictRequest,
    session: SessionDep,
    store: StoreDep,
    cache: ModelCacheDep,
    principal: CurrentPrincipal,
) -> PredictResponse:
    """Predict up to 1,000 rows; each row is an object of column values."""
    model = service.get_model_or_raise(session, principal, model_id)
    return prediction_service.predict(cache, store, model, body)


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
    session: SessionDep,
    store: StoreDep,
    cache: ModelCacheDep,
    principal: WriterPrincipal,
) -> Response:
    """Delete a model version and its files."""
    service.delete_model(session, store, principal, model_id)
    cache.discard(model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

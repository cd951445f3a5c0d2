"""Dataset endpoints: streamed upload, list, get, download, delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dlp.auth.service import Principal
from dlp.datasets import service
from dlp.datasets.schemas import DatasetOut
from dlp.datasets.upload import ReceivedUpload, receive_upload
from dlp.db import session_scope
from dlp.dependencies import (
    CurrentPrincipal,
    PlatformDep,
    SessionDep,
    StoreDep,
    StreamingWriterPrincipal,
    WriterPrincipal,
)
from dlp.organizations.quotas import UploadLimit
from dlp.platform import Platform
from dlp.schemas import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                        "kind": {"type": "string", "enum": ["tabular", "text", "image"]},
                    },
                }
            }
        },
    }
}


def _record_upload(
    platform: Platform, principal: Principal, dataset_id: uuid.UUID, upload: ReceivedUpload
) -> DatasetOut:
    # Anything that goes wrong after the bytes landed removes them again.
    try:
        name, kind = service.check_name_and_kind(
            upload.fields.get("name"), upload.fields.get("kind"), upload.filename
        )
        profile = service.profile_file(
            platform.store,
            platform.settings,
            upload.key,
            file_format=service.file_format_of(upload.filename),
            kind=kind,
        )
        with session_scope(platform.sessions) as session:
            dataset = service.create_dataset(
                session,
                platform.settings,
                principal,
                dataset_id=dataset_id,
                name=name,
                kind=kind,
                key=upload.key,
                size_bytes=upload.size_bytes,
                profile=profile,
            )
            return service.to_out(dataset)
    except BaseException:
        platform.store.delete_prefix(service.dataset_prefix(principal.organization_id, dataset_id))
        raise


def _upload_limit(platform: Platform, principal: Principal) -> UploadLimit:
    with session_scope(platform.sessions) as session:
        return service.upload_limit(session, platform.settings, principal)


@router.post("", status_code=status.HTTP_201_CREATED, openapi_extra=_UPLOAD_BODY)
async def upload_dataset(
    request: Request, platform: PlatformDep, principal: StreamingWriterPrincipal
) -> DatasetOut:
    """Upload a CSV/Parquet table or a .zip of images (multipart field ``file``).

    The body is streamed to the store, then validated and profiled; anything
    refused leaves nothing behind. The file may be as large as the upload limit and
    the organization's storage quota both allow.
    """
    limit = await run_in_threadpool(_upload_limit, platform, principal)
    dataset_id = uuid.uuid4()
    upload = await receive_upload(
        request,
        store=platform.store,
        key_for=lambda filename: service.storage_key(
            principal.organization_id, dataset_id, filename
        ),
        max_bytes=limit.max_bytes,
        too_large=limit.refusal,
    )
    return await run_in_threadpool(_record_upload, platform, principal, dataset_id, upload)


@router.get("")
def list_datasets(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageParams = Depends(page_params),
) -> Page[DatasetOut]:
    """The organization's datasets, newest first."""
    rows, total = service.list_datasets(session, principal, limit=page.limit, offset=page.offset)
    return Page.build(rows, total, page, service.to_out)


@router.get("/{dataset_id}")
def get_dataset(
    dataset_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> DatasetOut:
    """One dataset with its profile."""
    return service.to_out(service.get_dataset_or_raise(session, principal, dataset_id))


@router.get("/{dataset_id}/download", response_class=StreamingResponse)
def download_dataset(
    dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: CurrentPrincipal
) -> StreamingResponse:
    """The original bytes of the upload."""
    dataset = service.get_dataset_or_raise(session, principal, dataset_id)
    media_type = "text/csv" if dataset.file_format == "csv" else "application/octet-stream"
    filename = f"{dataset.id}.{dataset.file_format}"
    return StreamingResponse(
        service.iter_dataset_bytes(store, dataset),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(dataset.size_bytes),
        },
    )


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: WriterPrincipal
) -> Response:
    """Delete a dataset and its files."""
    service.delete_dataset(session, store, principal, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Batch prediction endpoints: submit (under the model), list, read, cancel, download, delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import StreamingResponse

from dlp.batch import service
from dlp.batch.schemas import BatchPredictionCreate, BatchPredictionOut
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep, StoreDep, WriterPrincipal
from dlp.schemas import Page, PageParams, page_params
from dlp.training.schemas import JobStatus

router = APIRouter(tags=["batch predictions"])
PREFIX = "/api/v1/batch-predictions"


@router.post("/api/v1/models/{model_id}/batch-predictions", status_code=status.HTTP_202_ACCEPTED)
def submit(
    model_id: uuid.UUID,
    body: BatchPredictionCreate,
    session: SessionDep,
    platform: PlatformDep,
    principal: WriterPrincipal,
) -> BatchPredictionOut:
    """Queue a batch prediction of every row of a dataset; poll it, then download."""
    job = service.submit(
        session, platform.queue, principal, model_id, body, settings=platform.settings
    )
    return BatchPredictionOut.from_job(job)


@router.get(PREFIX)
def list_jobs(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: JobStatus | None = None,
    model_id: uuid.UUID | None = None,
    page: PageParams = Depends(page_params),
) -> Page[BatchPredictionOut]:
    """The organization's batch predictions, newest first (``?status=``, ``?model_id=``)."""
    rows, total = service.list_jobs(
        session, principal, status=status, model_id=model_id, limit=page.limit, offset=page.offset
    )
    return Page.build(rows, total, page, BatchPredictionOut.from_job)


@router.get(PREFIX + "/{job_id}")
def get_job(
    job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> BatchPredictionOut:
    """One batch prediction: status, rows done, and its output once it succeeded."""
    return BatchPredictionOut.from_job(service.get_or_raise(session, principal, job_id))


@router.post(PREFIX + "/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
def cancel(
    job_id: uuid.UUID, session: SessionDep, principal: WriterPrincipal
) -> BatchPredictionOut:
    """Cancel: a queued job never starts, a running one stops after its current chunk."""
    return BatchPredictionOut.from_job(service.cancel(session, principal, job_id))


@router.get(PREFIX + "/{job_id}/download", response_class=StreamingResponse)
def download(
    job_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: CurrentPrincipal
) -> StreamingResponse:
    """The output file (CSV or Parquet), streamed; 409 until the job succeeded."""
    output = service.output_or_raise(session, principal, job_id)
    return StreamingResponse(
        store.iter_chunks(output.key),
        media_type=output.media_type,
        headers={"Content-Disposition": f'attachment; filename="{output.filename}"'},
    )


@router.delete(PREFIX + "/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(
    job_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: WriterPrincipal
) -> Response:
    """Delete an ended batch prediction and its output; 409 while it is queued or running."""
    service.delete(session, store, principal, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

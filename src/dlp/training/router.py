"""Training endpoints: submit, list, read, metrics, cancel."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, status

from dlp.db import utcnow
from dlp.dependencies import CurrentPrincipal, PlatformDep, SessionDep, WriterPrincipal
from dlp.schemas import Page, PageParams, page_params
from dlp.training import service
from dlp.training.schemas import (
    JobStatus,
    MetricList,
    MetricPoint,
    TrainingJobAccepted,
    TrainingJobCreate,
    TrainingJobOut,
)
from dlp.tuning import service as tuning_service

router = APIRouter(prefix="/api/v1/training/jobs", tags=["training"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def submit_job(
    body: TrainingJobCreate, session: SessionDep, platform: PlatformDep, principal: WriterPrincipal
) -> TrainingJobAccepted:
    """Queue a training job; poll it, or follow its events, until it ends."""
    job = service.submit_job(
        session,
        platform.queue,
        principal,
        body,
        settings=platform.settings,
        allow_private_webhooks=platform.settings.webhook_allow_private,
        lease_seconds=platform.settings.job_lease_seconds,
    )
    return TrainingJobAccepted.from_new_job(job)


@router.get("")
def list_jobs(
    session: SessionDep,
    platform: PlatformDep,
    principal: CurrentPrincipal,
    status: JobStatus | None = None,
    page: PageParams = Depends(page_params),
) -> Page[TrainingJobOut]:
    """The organization's jobs, newest first (``?status=`` filters)."""
    rows, total = service.list_jobs(
        session, principal, status=status, limit=page.limit, offset=page.offset
    )
    reasons = service.waiting_reasons(
        session, rows, now=utcnow(), lease_seconds=platform.settings.job_lease_seconds
    )
    return Page.build(
        rows, total, page, lambda job: TrainingJobOut.from_job(job, reasons.get(job.id))
    )


@router.get("/{job_id}")
def get_job(
    job_id: uuid.UUID, session: SessionDep, platform: PlatformDep, principal: CurrentPrincipal
) -> TrainingJobOut:
    """One job: status, progress, final metrics, the model it produced, and why it
    waits when no live worker has the devices it asks for."""
    job = service.get_job_or_raise(session, principal, job_id)
    reasons = service.waiting_reasons(
        session, [job], now=utcnow(), lease_seconds=platform.settings.job_lease_seconds
    )
    return TrainingJobOut.from_job(job, reasons.get(job.id))


@router.get("/{job_id}/metrics")
def get_metrics(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> MetricList:
    """Every metric the job reported, oldest first."""
    rows = service.list_metrics(session, principal, job_id)
    return MetricList(
        items=[
            MetricPoint(epoch=r.epoch, step=r.step, name=r.name, value=r.value, at=r.at)
            for r in rows
        ]
    )


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
def cancel_job(
    job_id: uuid.UUID, session: SessionDep, platform: PlatformDep, principal: WriterPrincipal
) -> TrainingJobOut:
    """Cancel a job: a queued one never starts, a running one stops within seconds.

    Cancelling a tuning trial tops its study's trials in flight back up to its
    parallelism (the cancelled trial still counts toward ``n_trials``).
    """
    job = service.cancel_job(session, platform.events, principal, job_id)
    if job.study_id is not None:
        tuning_service.advance_study(session, platform, job.study_id, utcnow())
    return TrainingJobOut.from_job(job)

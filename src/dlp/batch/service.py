"""Business rules of batch predictions on the API side: submit, read, list, cancel, delete.

This module stays free of PyTorch; the worker's side lives in ``runner``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth.service import Principal
from dlp.batch import repository
from dlp.batch.kind import BATCH_PREDICTIONS
from dlp.batch.models import BatchPrediction
from dlp.batch.schemas import BatchPredictionCreate
from dlp.config import Settings
from dlp.datasets import service as dataset_service
from dlp.datasets.models import Dataset
from dlp.db import run_after_commit, utcnow
from dlp.errors import ConflictError, NotFoundError, ValidationError
from dlp.jobs import repository as jobs_repository
from dlp.organizations import quotas
from dlp.queue import JobQueue
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.storage import FileStore
from dlp.training.schemas import TERMINAL_STATUSES

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def output_prefix(organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """The store folder of one batch prediction's output."""
    return f"orgs/{organization_id}/batch-predictions/{job_id}"


def text_column_for(model: Model, request: BatchPredictionCreate) -> str | None:
    """The dataset column a text model reads: the request's, else the one it was trained on."""
    if model.data_kind != "text":
        if request.text_column is not None:
            raise ValidationError("'text_column' applies to text models only")
        return None
    column = request.text_column or model.config.get("text_column")
    if not isinstance(column, str):
        raise ValidationError("'text_column' is required: name the dataset column holding text")
    return column


def check_dataset_fits(model: Model, dataset: Dataset, text_column: str | None) -> None:
    """Refuse a dataset the model cannot read, naming what is missing."""
    if dataset.status != "ready":
        raise ValidationError(f"dataset {dataset.id} is {dataset.status}, not ready")
    if dataset.kind != model.data_kind:
        raise ValidationError(
            f"model {model.name!r} v{model.version} predicts on {model.data_kind} data; "
            f"dataset {dataset.id} is {dataset.kind}"
        )
    columns = {column["name"]: column for column in dataset.profile.get("columns", [])}
    if text_column is not None:
        column = columns.get(text_column)
        if column is None:
            raise ValidationError(f"dataset {dataset.id} has no column {text_column!r}")
        if column["dtype"] != "string":
            raise ValidationError(
                f"column {text_column!r} holds {column['dtype']} values, not text"
            )
        return
    if dataset.kind == "tabular":
        missing = [field["name"] for field in model.input_schema if field["name"] not in columns]
        if missing:
            raise ValidationError(
                f"dataset {dataset.id} lacks column {missing[0]!r}, which model "
                f"{model.name!r} v{model.version} needs"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )


def submit(
    session: Session,
    queue: JobQueue,
    principal: Principal,
    model_id: uuid.UUID,
    request: BatchPredictionCreate,
    *,
    settings: Settings,
) -> BatchPrediction:
    """Validate, store the job as queued, and wake a worker once committed; refused over
    the organization's concurrent-jobs quota."""
    model = registry_service.get_model_or_raise(session, principal, model_id)
    dataset = dataset_service.get_dataset_or_raise(session, principal, request.dataset_id)
    text_column = text_column_for(model, request)
    check_dataset_fits(model, dataset, text_column)
    quotas.reserve_job_slot(session, settings, principal.organization_id)
    job = repository.add(
        session,
        BatchPrediction(
            organization_id=principal.organization_id,
            created_by=principal.user.id,
            name=model.name,
            model_id=model.id,
            model_version=model.version,
            dataset_id=dataset.id,
            status="queued",
            priority=request.priority,
            output_format=request.format,
            include_inputs=request.include_inputs,
            text_column=text_column,
            rows_total=dataset.n_rows or 0,
        ),
    )
    queue.wake_after_commit(
        session, BATCH_PREDICTIONS.task_name, queue=BATCH_PREDICTIONS.queue, job_id=job.id
    )
    return job


def get_or_raise(session: Session, principal: Principal, job_id: uuid.UUID) -> BatchPrediction:
    """The organization's job; 404 for one that is missing or another tenant's."""
    job = repository.get(session, job_id=job_id, organization_id=principal.organization_id)
    if job is None:
        raise NotFoundError("batch prediction", job_id)
    return job


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    status: str | None,
    model_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[BatchPrediction], int]:
    """A page of the organization's batch predictions."""
    return repository.list_page(
        session,
        organization_id=principal.organization_id,
        status=status,
        model_id=model_id,
        limit=limit,
        offset=offset,
    )


def cancel(session: Session, principal: Principal, job_id: uuid.UUID) -> BatchPrediction:
    """Cancel a queued job at once, or ask a running one to stop after its current chunk."""
    job = get_or_raise(session, principal, job_id)
    if job.status in TERMINAL_STATUSES:
        raise ConflictError(f"the batch prediction already ended ({job.status})")
    if not jobs_repository.cancel_if_queued(session, BatchPrediction, job.id, utcnow()):
        job.cancel_requested = True
    session.flush()
    session.refresh(job)
    return job


def delete(session: Session, store: FileStore, principal: Principal, job_id: uuid.UUID) -> None:
    """Delete an ended job and, once that commits, its output."""
    job = get_or_raise(session, principal, job_id)
    if job.status not in TERMINAL_STATUSES:
        raise ConflictError(f"the batch prediction is {job.status}: cancel it first")
    prefix = output_prefix(job.organization_id, job.id)
    repository.delete(session, job)
    audit.record_act(
        session,
        principal,
        "batch_prediction.deleted",
        target_type="batch_prediction",
        target_id=job.id,
        model_id=str(job.model_id),
    )
    run_after_commit(session, lambda: store.delete_prefix(prefix))


@dataclass(frozen=True)
class OutputFile:
    """Where a finished job's output lies, and how to send it."""

    key: str
    media_type: str
    filename: str


def output_or_raise(session: Session, principal: Principal, job_id: uuid.UUID) -> OutputFile:
    """The finished output; 409 while the job has none."""
    job = get_or_raise(session, principal, job_id)
    if job.status != "succeeded":
        raise ConflictError(
            f"the batch prediction is {job.status}; its output exists once it succeeded"
        )
    if job.output_key is None:  # housekeeping deleted it, and said why
        raise ConflictError(job.error_message or "the batch prediction's output was deleted")
    return OutputFile(
        key=job.output_key,
        media_type=MEDIA_TYPES[job.output_format],
        filename=f"predictions-{job.id}.{job.output_format}",
    )

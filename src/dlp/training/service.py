"""Business rules of training jobs on the API side: submit, read, list, cancel.

This module stays free of PyTorch; the worker's side lives in ``runner``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dlp.auth.service import Principal
from dlp.config import Settings
from dlp.datasets import service as dataset_service
from dlp.datasets.models import Dataset
from dlp.db import run_after_commit, utcnow
from dlp.errors import ConflictError, NotFoundError, ValidationError
from dlp.events.bus import JobEvents
from dlp.events.payloads import status_event
from dlp.jobs import repository as jobs_repository
from dlp.jobs.capacity import shortfall
from dlp.ml.config import FAMILIES_BY_KIND
from dlp.organizations import quotas
from dlp.queue import TRAINING_QUEUE, TUNING_QUEUE, JobQueue
from dlp.training import repository
from dlp.training.kind import RUN_TRAINING_TASK
from dlp.training.models import JobMetric, TrainingJob
from dlp.training.schemas import (
    TERMINAL_STATUSES,
    JobStatus,
    TrainingJobCreate,
)
from dlp.webhooks.delivery import schedule_webhook
from dlp.webhooks.signing import new_secret
from dlp.webhooks.ssrf import check_webhook_url
from dlp.workers import service as workers_service

MAX_CLASSES = 1000
NUMERIC_DTYPES = {"int64", "float64", "bool"}


def default_model_name(dataset: Dataset, target: str) -> str:
    """``<dataset stem>-<target>``, reduced to the characters model names allow."""
    stem = dataset.name.rsplit(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{target}").strip("-.") or "model"
    return name[:100]


def validate_against_dataset(request: TrainingJobCreate, dataset: Dataset) -> None:
    """Refuse configs that cannot work on this dataset, naming the problem."""
    if dataset.status != "ready":
        raise ValidationError(f"dataset {dataset.id} is {dataset.status}, not ready")
    if request.model.type not in FAMILIES_BY_KIND[dataset.kind]:  # type: ignore[index]
        allowed = " or ".join(repr(t) for t in FAMILIES_BY_KIND[dataset.kind])  # type: ignore[index]
        raise ValidationError(
            f"model type {request.model.type!r} does not fit a {dataset.kind} dataset; "
            f"use {allowed}"
        )
    if dataset.kind == "image":
        _validate_image_job(request, dataset)
        return
    columns = {column["name"]: column for column in dataset.profile.get("columns", [])}
    if request.target is None:
        raise ValidationError(
            f"'target' is required: name the column of dataset {dataset.id} to predict"
        )
    target = _column(columns, request.target, dataset, "target")
    if dataset.kind == "text":
        if request.text_column is None:
            raise ValidationError("'text_column' is required for a text dataset")
        text = _column(columns, request.text_column, dataset, "text_column")
        if text["dtype"] != "string":
            raise ValidationError(
                f"text_column '{request.text_column}' holds {text['dtype']} values, not text"
            )
        if request.text_column == request.target:
            raise ValidationError("text_column and target must be different columns")
    elif request.text_column is not None:
        raise ValidationError("'text_column' applies to text datasets only")
    if len(columns) < 2:
        raise ValidationError("the dataset needs at least one feature column besides the target")
    if request.task == "regression" and target["dtype"] not in NUMERIC_DTYPES:
        raise ValidationError(
            f"regression needs a numeric target; column '{request.target}' is {target['dtype']}"
        )
    if request.task == "classification":
        _check_class_count(int(target.get("n_unique", 0)), f"'{request.target}'")


def _validate_image_job(request: TrainingJobCreate, dataset: Dataset) -> None:
    if request.task != "classification":
        raise ValidationError("image datasets train classifiers: use task 'classification'")
    if request.target is not None or request.text_column is not None:
        raise ValidationError(
            "an image dataset's classes are its folders: leave 'target' and 'text_column' out"
        )
    _check_class_count(len(dataset.profile.get("classes", [])), "the archive")


def _column(
    columns: dict[str, dict[str, Any]], name: str, dataset: Dataset, field: str
) -> dict[str, Any]:
    column = columns.get(name)
    if column is None:
        raise ValidationError(
            f"{field} column '{name}' is not in dataset {dataset.id} "
            f"(columns: {', '.join(list(columns)[:20])})"
        )
    return column


def _check_class_count(n_unique: int, source: str) -> None:
    if n_unique < 2:
        raise ValidationError(f"classification needs at least 2 classes; {source} has {n_unique}")
    if n_unique > MAX_CLASSES:
        raise ValidationError(
            f"{source} has {n_unique} distinct values, over {MAX_CLASSES} classes: "
            "use task 'regression' for a continuous target"
        )


def submit_job(
    session: Session,
    queue: JobQueue,
    principal: Principal,
    request: TrainingJobCreate,
    *,
    settings: Settings,
    allow_private_webhooks: bool,
    lease_seconds: float,
) -> TrainingJob:
    """Validate, store the job as queued, and wake a worker once committed.

    A job no live worker has the devices for is refused (while no worker is known,
    any job is accepted: it waits for one), and so is one over the organization's
    concurrent-jobs quota.
    """
    dataset = dataset_service.get_dataset_or_raise(session, principal, request.dataset_id)
    validate_against_dataset(request, dataset)
    resources = request.resources
    live = workers_service.live_capacities(session, now=utcnow(), lease_seconds=lease_seconds)
    reason = shortfall(resources.devices, resources.device_type, live.get(TRAINING_QUEUE, []))
    if reason is not None:
        raise ValidationError(
            f"resources.devices={resources.devices} ({resources.device_type}): {reason}"
        )
    webhook_secret = None
    if request.webhook_url is not None:
        check_webhook_url(request.webhook_url, allow_private=allow_private_webhooks)
        webhook_secret = request.webhook_secret or new_secret()
    elif request.webhook_secret is not None:
        raise ValidationError("'webhook_secret' needs a 'webhook_url'")
    name = request.name or default_model_name(dataset, request.target or "classes")
    quotas.reserve_job_slot(session, settings, principal.organization_id)
    job = repository.add(
        session,
        TrainingJob(
            organization_id=principal.organization_id,
            created_by=principal.user.id,
            dataset_id=dataset.id,
            name=name,
            status="queued",
            priority=request.priority,
            config=request.model_dump(
                mode="json", exclude={"dataset_id", "name", "webhook_url", "webhook_secret"}
            ),
            total_epochs=request.training.epochs,
            devices=resources.devices,
            device_type=resources.device_type,
            webhook_url=request.webhook_url,
            webhook_secret=webhook_secret,
        ),
    )
    queue.wake_after_commit(session, RUN_TRAINING_TASK, queue=TRAINING_QUEUE, job_id=job.id)
    return job


def get_job_or_raise(session: Session, principal: Principal, job_id: uuid.UUID) -> TrainingJob:
    """The organization's job; 404 for one that is missing or another tenant's."""
    job = repository.get(session, job_id=job_id, organization_id=principal.organization_id)
    if job is None:
        raise NotFoundError("training job", job_id)
    return job


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    status: JobStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[TrainingJob], int]:
    """A page of the organization's jobs."""
    return repository.list_page(
        session,
        organization_id=principal.organization_id,
        status=status,
        limit=limit,
        offset=offset,
    )


def waiting_reasons(
    session: Session, jobs: Sequence[TrainingJob], *, now: datetime, lease_seconds: float
) -> dict[uuid.UUID, str]:
    """Why each queued job of ``jobs`` that no live worker can run waits, by job id."""
    queued = [job for job in jobs if job.status == "queued"]
    if not queued:
        return {}
    live = workers_service.live_capacities(session, now=now, lease_seconds=lease_seconds)
    reasons = {}
    for job in queued:
        queue = TRAINING_QUEUE if job.study_id is None else TUNING_QUEUE
        reason = shortfall(job.devices, job.device_type, live.get(queue, []))
        if reason is not None:
            reasons[job.id] = reason
    return reasons


def list_metrics(session: Session, principal: Principal, job_id: uuid.UUID) -> list[JobMetric]:
    """A job's metric history."""
    job = get_job_or_raise(session, principal, job_id)
    return repository.list_metrics(session, job.id)


def cancel_job(
    session: Session, events: JobEvents, principal: Principal, job_id: uuid.UUID
) -> TrainingJob:
    """Cancel a queued job at once, or ask a running one to stop at its next check."""
    job = get_job_or_raise(session, principal, job_id)
    if job.status in TERMINAL_STATUSES:
        raise ConflictError(f"the job already ended ({job.status})")
    now = utcnow()
    if jobs_repository.cancel_if_queued(session, TrainingJob, job.id, now):
        session.refresh(job)
        schedule_webhook(job, now)
        event = status_event(job)
        run_after_commit(session, lambda: events.publish(job.id, event))
    else:
        job.cancel_requested = True
    session.flush()
    session.refresh(job)
    return job

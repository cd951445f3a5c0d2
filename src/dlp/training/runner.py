"""The worker's side of a training job: train it and register the model.

``dlp.jobs.runner`` claims the job under a lease and decides what a failure
means; every write here is conditional on still holding that lease.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from dlp.datasets import service as dataset_service
from dlp.datasets.models import Dataset
from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.events.payloads import log_event
from dlp.jobs import lifecycle
from dlp.jobs.capacity import Capacity
from dlp.jobs.lease import Lease
from dlp.jobs.runner import JobCancelled, run_next_job
from dlp.ml.artifact import RunOptions, TrainedModel, train_tabular
from dlp.ml.config import TrainingConfig, model_config_adapter
from dlp.ml.device import release_device_memory, resolve_device
from dlp.ml.images import train_images
from dlp.ml.text import train_text
from dlp.ml.trainer import TrainingCancelled
from dlp.platform import Platform
from dlp.queue import JobHint
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.training import repository
from dlp.training.kind import TRAINING_JOBS
from dlp.training.models import TrainingJob
from dlp.training.progress import JobProgress, checkpoint_key, checkpoint_prefix

if TYPE_CHECKING:
    import torch

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """What the worker needs to know of a job, read once when it starts."""

    job_id: uuid.UUID
    organization_id: uuid.UUID
    created_by: uuid.UUID | None
    dataset_id: uuid.UUID
    name: str
    config: dict[str, Any]
    checkpoint_epoch: int | None


def run_next_training_job(
    platform: Platform,
    *,
    worker: str,
    capacity: Capacity | None = None,
    hint: JobHint | None = None,
) -> uuid.UUID | None:
    """Claim the best waiting job that fits ``capacity`` (default: this machine's cores,
    no GPU) and train it to a terminal status (or back to the queue after a transient
    fault). Returns the job's id; None when none was waiting."""
    return run_next_job(
        platform,
        TRAINING_JOBS,
        worker=worker,
        work=lambda lease: _run(platform, lease, worker),
        capacity=capacity,
        hint=hint,
    )


def _run(platform: Platform, lease: Lease[TrainingJob], worker: str) -> None:
    spec = start_job(platform, lease, worker)
    try:
        trained = train_job(platform, spec, lease, job_progress(platform, spec, lease))
    except TrainingCancelled as exc:
        raise JobCancelled from exc
    _register(platform, spec, trained, lease)
    log.info("training.succeeded", job_id=str(spec.job_id), metrics=trained.metrics)


def start_job(platform: Platform, lease: Lease[TrainingJob], worker: str) -> JobSpec:
    """Read the claimed job and tell its followers it started (or resumed)."""
    spec = _load_spec(platform, lease)
    if spec is None:
        raise DLPError("the job's dataset was deleted")
    devices, device = _placement(spec)
    log.info(
        "training.started",
        job_id=str(spec.job_id),
        resume_after_epoch=spec.checkpoint_epoch,
        devices=devices,
        device_type=device.type,
    )
    platform.events.publish(lease.job_id, log_event(_start_message(worker, spec)))
    return spec


def _load_spec(platform: Platform, lease: Lease[TrainingJob]) -> JobSpec | None:
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        spec = None
        if job.dataset_id is not None:
            spec = JobSpec(
                job_id=job.id,
                organization_id=job.organization_id,
                created_by=job.created_by,
                dataset_id=job.dataset_id,
                name=job.name,
                config=dict(job.config),
                checkpoint_epoch=job.checkpoint_epoch,
            )
    lease.kind.announce(platform.events, job, None)
    return spec


def job_progress(platform: Platform, spec: JobSpec, lease: Lease[TrainingJob]) -> JobProgress:
    """The callback that records a job's metrics and checkpoints and notices a cancel."""
    return JobProgress(
        platform.sessions,
        platform.store,
        platform.events,
        lease=lease,
        organization_id=spec.organization_id,
        tracing=platform.tracing,
    )


def train_job(
    platform: Platform, spec: JobSpec, lease: Lease[TrainingJob], callback: JobProgress
) -> TrainedModel:
    """Train the job's model on its dataset, resuming from its last checkpoint if any."""
    with session_scope(platform.sessions) as session:
        dataset = dataset_service.get_dataset(
            session, dataset_id=spec.dataset_id, organization_id=spec.organization_id
        )
        if dataset is None:
            raise DLPError("the job's dataset was deleted")
    devices, device = _placement(spec)
    run = RunOptions(
        device=device,
        resume_from=_resume_point(platform, spec, lease),
        devices=devices,
    )
    try:
        return _train(platform, spec, dataset, callback, run)
    finally:
        release_device_memory()


def _train(
    platform: Platform, spec: JobSpec, dataset: Dataset, callback: JobProgress, run: RunOptions
) -> TrainedModel:
    config = spec.config
    model = model_config_adapter.validate_python(config["model"])
    training = TrainingConfig.model_validate(config["training"])
    if dataset.kind == "image":
        with dataset_service.open_dataset_file(platform.store, dataset) as handle:
            return train_images(
                handle,
                model=model,
                training=training,
                callback=callback,
                limits=dataset_service.archive_limits(platform.settings),
                run=run,
            )
    # The table is handed over without a local name so training can drop it once encoded.
    if dataset.kind == "text":
        return train_text(
            dataset_service.load_table(platform.store, dataset),
            text_column=str(config["text_column"]),
            target=str(config["target"]),
            task=config["task"],
            model=model,
            training=training,
            callback=callback,
            run=run,
        )
    return train_tabular(
        dataset_service.load_table(platform.store, dataset),
        target=str(config["target"]),
        task=config["task"],
        model=model,
        training=training,
        callback=callback,
        run=run,
    )


def _resume_point(platform: Platform, spec: JobSpec, lease: Lease[TrainingJob]) -> bytes | None:
    """The last checkpoint of an interrupted run of this job, its later metrics dropped."""
    epoch = spec.checkpoint_epoch
    blob = None
    if epoch is not None:
        key = checkpoint_key(spec.organization_id, spec.job_id, epoch)
        if platform.store.exists(key):
            blob = platform.store.read_bytes(key)
        else:
            log.warning("training.checkpoint_missing", job_id=str(spec.job_id), epoch=epoch)
            epoch = None
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        repository.delete_metrics_after(session, spec.job_id, epoch or 0)
        job.checkpoint_epoch = epoch
        job.progress_epoch = epoch or 0
    return blob


def _register(
    platform: Platform, spec: JobSpec, trained: TrainedModel, lease: Lease[TrainingJob]
) -> None:
    model_id = uuid.uuid4()
    prefix = registry_service.model_prefix(spec.organization_id, model_id)
    digests = registry_service.store_model_files(platform.store, prefix, trained.files)
    try:
        with session_scope(platform.sessions) as session:
            job = lease.load(session)
            model = registry_service.register_version(
                session,
                Model(
                    id=model_id,
                    organization_id=spec.organization_id,
                    created_by=spec.created_by,
                    name=spec.name,
                    task=trained.task,
                    type=trained.model_type,
                    data_kind=trained.data_kind,
                    dataset_id=spec.dataset_id,
                    job_id=spec.job_id,
                    config=spec.config,
                    metrics=trained.metrics,
                    evaluation=trained.evaluation,
                    input_schema=trained.input_schema,
                    classes=trained.classes,
                    files=digests,
                    file_prefix=prefix,
                    size_bytes=sum(len(data) for data in trained.files.values()),
                ),
            )
            job.model_id = model.id
            job.metrics = trained.metrics
            job.checkpoint_epoch = None
            lifecycle.end_job(TRAINING_JOBS, job, "succeeded", None, utcnow())
    except BaseException:
        platform.store.delete_prefix(prefix)
        raise
    TRAINING_JOBS.announce(platform.events, job, None)
    platform.store.delete_prefix(checkpoint_prefix(spec.organization_id, spec.job_id))


def _placement(spec: JobSpec) -> tuple[int, torch.device]:
    """How many processes the job trains on, and on which device."""
    resources = spec.config.get("resources") or {}
    return int(resources.get("devices", 1)), resolve_device(resources.get("device_type", "auto"))


def _start_message(worker: str, spec: JobSpec) -> str:
    devices, device = _placement(spec)
    where = worker if devices == 1 else f"{worker} as {devices} {device.type} processes"
    if spec.checkpoint_epoch is None:
        return f"started on {where}"
    return f"resumed on {where} from the checkpoint of epoch {spec.checkpoint_epoch}"

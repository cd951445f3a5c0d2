"""The worker's side of a training job: claim it, train it, register the model.

Each step runs in its own short transaction, so the API sees progress while the
job trains, and a crash leaves the job in the last state it reached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from dlp.config import Settings
from dlp.datasets import service as dataset_service
from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.ml.artifact import RunOptions, TrainedModel, train_tabular
from dlp.ml.config import TrainingConfig, model_config_adapter
from dlp.ml.device import resolve_device
from dlp.ml.image_archive import ArchiveLimits
from dlp.ml.images import train_images
from dlp.ml.text import train_text
from dlp.ml.trainer import TrainingCancelled
from dlp.platform import Platform
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.training import repository
from dlp.training.models import TrainingJob
from dlp.training.progress import JobProgress, checkpoint_key, checkpoint_prefix, load_job

log = structlog.get_logger(__name__)
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class _JobSpec:
    job_id: uuid.UUID
    organization_id: uuid.UUID
    created_by: uuid.UUID | None
    dataset_id: uuid.UUID
    name: str
    config: dict[str, Any]
    checkpoint_epoch: int | None


def run_training_job(platform: Platform, job_id: uuid.UUID, *, worker: str) -> None:
    """Train one queued job to a terminal status; a job that is not queued is left alone."""
    logger = log.bind(job_id=str(job_id), worker=worker)
    with session_scope(platform.sessions) as session:
        if not repository.claim(session, job_id, worker=worker, at=utcnow()):
            logger.info("training.skipped", reason="not queued")
            return
        job = load_job(session, job_id)
        if job.dataset_id is None:
            _finish(job, "failed", "the job's dataset was deleted")
            return
        spec = _JobSpec(
            job_id=job.id,
            organization_id=job.organization_id,
            created_by=job.created_by,
            dataset_id=job.dataset_id,
            name=job.name,
            config=dict(job.config),
            checkpoint_epoch=job.checkpoint_epoch,
        )
    logger.info("training.started", resume_after_epoch=spec.checkpoint_epoch)
    try:
        trained = _train(platform, spec)
    except TrainingCancelled:
        _finish_in_new_transaction(platform, job_id, "cancelled", None)
        logger.info("training.cancelled")
        return
    except DLPError as exc:
        _finish_in_new_transaction(platform, job_id, "failed", exc.message)
        logger.info("training.failed", error=exc.message)
        return
    except Exception as exc:
        logger.exception("training.crashed")
        _finish_in_new_transaction(platform, job_id, "failed", _one_line(exc))
        return
    try:
        _register(platform, spec, trained)
    except Exception as exc:
        logger.exception("training.register_failed")
        _finish_in_new_transaction(platform, job_id, "failed", _one_line(exc))
        return
    logger.info("training.succeeded", metrics=trained.metrics)


def _train(platform: Platform, spec: _JobSpec) -> TrainedModel:
    with session_scope(platform.sessions) as session:
        dataset = dataset_service.get_dataset(
            session, dataset_id=spec.dataset_id, organization_id=spec.organization_id
        )
        if dataset is None:
            raise DLPError("the job's dataset was deleted")
    config = spec.config
    model = model_config_adapter.validate_python(config["model"])
    training = TrainingConfig.model_validate(config["training"])
    resources = config.get("resources") or {}
    run = RunOptions(
        device=resolve_device(resources.get("device_type", "auto")),
        resume_from=_resume_point(platform, spec),
    )
    callback = JobProgress(
        platform.sessions,
        platform.store,
        job_id=spec.job_id,
        organization_id=spec.organization_id,
    )
    if dataset.kind == "image":
        with dataset_service.open_dataset_file(platform.store, dataset) as handle:
            return train_images(
                handle,
                model=model,
                training=training,
                callback=callback,
                limits=archive_limits(platform.settings),
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


def _resume_point(platform: Platform, spec: _JobSpec) -> bytes | None:
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
        repository.delete_metrics_after(session, spec.job_id, epoch or 0)
        job = load_job(session, spec.job_id)
        job.checkpoint_epoch = epoch
        job.progress_epoch = epoch or 0
    return blob


def archive_limits(settings: Settings) -> ArchiveLimits:
    """The image-archive limits uploads were checked against, for training to honour too."""
    return ArchiveLimits(
        max_entries=settings.max_archive_entries,
        max_uncompressed_bytes=settings.max_archive_uncompressed_mb * 2**20,
        max_compression_ratio=settings.max_compression_ratio,
        max_image_pixels=settings.max_image_pixels,
    )


def _register(platform: Platform, spec: _JobSpec, trained: TrainedModel) -> None:
    model_id = uuid.uuid4()
    prefix = registry_service.model_prefix(spec.organization_id, model_id)
    digests = registry_service.store_model_files(platform.store, prefix, trained.files)
    try:
        with session_scope(platform.sessions) as session:
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
            job = load_job(session, spec.job_id)
            job.model_id = model.id
            job.metrics = trained.metrics
            job.checkpoint_epoch = None
            _finish(job, "succeeded", None)
    except BaseException:
        platform.store.delete_prefix(prefix)
        raise
    platform.store.delete_prefix(checkpoint_prefix(spec.organization_id, spec.job_id))


def _finish(job: TrainingJob, status: str, error: str | None) -> None:
    job.status = status
    job.error_message = error
    job.completed_at = utcnow()


def _finish_in_new_transaction(
    platform: Platform, job_id: uuid.UUID, status: str, error: str | None
) -> None:
    with session_scope(platform.sessions) as session:
        _finish(load_job(session, job_id), status, error)


def _one_line(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"internal error during training: {type(exc).__name__}: {first}".rstrip(": ")
    return text[:MAX_ERROR_LENGTH]

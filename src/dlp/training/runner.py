"""The worker's side of a training job: claim it, train it, register the model.

Each step runs in its own short transaction, so the API sees progress while the
job trains, and a crash leaves the job in the last state it reached. The claim
takes a lease; every later write is conditional on still holding it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from dlp.config import Settings
from dlp.datasets import service as dataset_service
from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.events.payloads import log_event, status_event
from dlp.faults import is_transient
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
from dlp.training import lifecycle, repository
from dlp.training.lease import Lease, LeaseLostError
from dlp.training.progress import JobProgress, checkpoint_key, checkpoint_prefix, load_leased

log = structlog.get_logger(__name__)
MAX_ERROR_LENGTH = 500
# Recording a retry needs the database, which may be the very thing that is away.
RECORD_RETRY_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class _JobSpec:
    job_id: uuid.UUID
    organization_id: uuid.UUID
    created_by: uuid.UUID | None
    dataset_id: uuid.UUID
    name: str
    config: dict[str, Any]
    checkpoint_epoch: int | None


def run_next_training_job(platform: Platform, *, worker: str) -> uuid.UUID | None:
    """Claim the best waiting job and train it to a terminal status (or back to the
    queue after a transient fault). Returns the job's id; None when none was waiting."""
    token = uuid.uuid4()
    with session_scope(platform.sessions) as session:
        job_id = repository.claim_next(session, worker=worker, lease_token=token, now=utcnow())
    if job_id is None:
        log.info("training.nothing_waiting", worker=worker)
        return None
    lease = Lease(
        platform.sessions, job_id, token, interval=platform.settings.job_heartbeat_seconds
    )
    with lease:
        _run_claimed(platform, lease, worker)
    return job_id


def _run_claimed(platform: Platform, lease: Lease, worker: str) -> None:
    logger = log.bind(job_id=str(lease.job_id), worker=worker)
    try:
        spec = _load_spec(platform, lease)
        if spec is None:
            _end(platform, lease, "failed", "the job's dataset was deleted")
            return
        logger.info("training.started", resume_after_epoch=spec.checkpoint_epoch)
        platform.events.publish(lease.job_id, log_event(_start_message(worker, spec)))
        trained = _train(platform, spec, lease)
        _register(platform, spec, trained, lease)
    except LeaseLostError:
        logger.warning("training.abandoned", reason="the job's lease moved to another attempt")
    except TrainingCancelled:
        _end(platform, lease, "cancelled", None)
        logger.info("training.cancelled")
    except DLPError as exc:
        _end(platform, lease, "failed", exc.message)
        logger.info("training.failed", error=exc.message)
    except Exception as exc:
        if is_transient(exc):
            logger.warning("training.transient_fault", error=_first_line(exc))
            _retry_or_fail(platform, lease, _first_line(exc))
            return
        logger.exception("training.crashed")
        _end(platform, lease, "failed", _one_line(exc))
    else:
        logger.info("training.succeeded", metrics=trained.metrics)


def _load_spec(platform: Platform, lease: Lease) -> _JobSpec | None:
    with session_scope(platform.sessions) as session:
        job = load_leased(session, lease)
        spec = None
        if job.dataset_id is not None:
            spec = _JobSpec(
                job_id=job.id,
                organization_id=job.organization_id,
                created_by=job.created_by,
                dataset_id=job.dataset_id,
                name=job.name,
                config=dict(job.config),
                checkpoint_epoch=job.checkpoint_epoch,
            )
    platform.events.publish(job.id, status_event(job))
    return spec


def _train(platform: Platform, spec: _JobSpec, lease: Lease) -> TrainedModel:
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
        resume_from=_resume_point(platform, spec, lease),
    )
    callback = JobProgress(
        platform.sessions,
        platform.store,
        platform.events,
        lease=lease,
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


def _resume_point(platform: Platform, spec: _JobSpec, lease: Lease) -> bytes | None:
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
        job = load_leased(session, lease)
        repository.delete_metrics_after(session, spec.job_id, epoch or 0)
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


def _register(platform: Platform, spec: _JobSpec, trained: TrainedModel, lease: Lease) -> None:
    model_id = uuid.uuid4()
    prefix = registry_service.model_prefix(spec.organization_id, model_id)
    digests = registry_service.store_model_files(platform.store, prefix, trained.files)
    try:
        with session_scope(platform.sessions) as session:
            job = load_leased(session, lease)
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
            lifecycle.end_job(job, "succeeded", None, utcnow())
    except BaseException:
        platform.store.delete_prefix(prefix)
        raise
    platform.events.publish(job.id, status_event(job))
    platform.store.delete_prefix(checkpoint_prefix(spec.organization_id, spec.job_id))


def _end(platform: Platform, lease: Lease, status: str, error: str | None) -> None:
    """Give the job its terminal status, if this attempt still holds it."""
    try:
        with session_scope(platform.sessions) as session:
            job = load_leased(session, lease)
            lifecycle.end_job(job, status, error, utcnow())
    except LeaseLostError:
        log.warning("training.end_refused", job_id=str(lease.job_id), status=status)
        return
    platform.events.publish(job.id, status_event(job))


def _retry_or_fail(platform: Platform, lease: Lease, reason: str) -> None:
    """Re-queue the job with backoff (or fail it after its last try), retrying the write
    itself while the fault lasts; if it never gets through, the lease expires and the
    reaper re-queues the job instead."""
    settings = platform.settings
    for delay in RECORD_RETRY_DELAYS:
        time.sleep(delay)
        try:
            with session_scope(platform.sessions) as session:
                job = load_leased(session, lease)
                again = lifecycle.retry_or_fail(
                    job,
                    f"transient fault: {reason}",
                    now=utcnow(),
                    max_attempts=settings.job_max_attempts,
                    backoff_seconds=settings.job_retry_backoff_seconds,
                )
            if again:
                platform.events.publish(
                    job.id, log_event(f"transient fault ({reason}); retrying at {job.run_after}")
                )
            platform.events.publish(job.id, status_event(job))
            return
        except LeaseLostError:
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("training.retry_not_recorded", job_id=str(lease.job_id), error=str(exc))
    log.warning("training.left_to_reaper", job_id=str(lease.job_id))


def _start_message(worker: str, spec: _JobSpec) -> str:
    if spec.checkpoint_epoch is None:
        return f"started on {worker}"
    return f"resumed on {worker} from the checkpoint of epoch {spec.checkpoint_epoch}"


def _first_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}".rstrip(": ")[:MAX_ERROR_LENGTH]


def _one_line(exc: Exception) -> str:
    return f"internal error during training: {_first_line(exc)}"[:MAX_ERROR_LENGTH]

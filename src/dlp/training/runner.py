"""The worker's side of a training job: claim it, train it, register the model.

Each step runs in its own short transaction, so the API sees progress while the
job trains, and a crash leaves the job in the last state it reached.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session, sessionmaker

from dlp.datasets import service as dataset_service
from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.ml.artifact import TrainedModel, train_tabular
from dlp.ml.config import TrainingConfig, model_config_adapter
from dlp.ml.trainer import TrainingCallback, TrainingCancelled
from dlp.platform import Platform
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.training import repository
from dlp.training.models import JobMetric, TrainingJob

log = structlog.get_logger(__name__)
CANCEL_POLL_SECONDS = 2.0
MAX_ERROR_LENGTH = 500


class DatabaseProgress(TrainingCallback):
    """Writes each epoch's metrics to the job and notices cancellation requests."""

    def __init__(self, sessions: sessionmaker[Session], job_id: uuid.UUID) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self._cancel_requested = False
        self._last_poll = time.monotonic()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Store the epoch's metrics and progress in one transaction."""
        at = utcnow()
        with session_scope(self.sessions) as session:
            repository.add_metrics(
                session,
                [
                    JobMetric(
                        job_id=self.job_id, epoch=epoch, step=epoch, name=name, value=value, at=at
                    )
                    for name, value in metrics.items()
                ],
            )
            job = _load(session, self.job_id)
            job.progress_epoch = epoch
            job.metrics = metrics
            self._cancel_requested = job.cancel_requested
        self._last_poll = time.monotonic()

    def should_stop(self) -> bool:
        """True once someone asked to cancel (polled at most every few seconds)."""
        if not self._cancel_requested and time.monotonic() - self._last_poll > CANCEL_POLL_SECONDS:
            with session_scope(self.sessions) as session:
                self._cancel_requested = _load(session, self.job_id).cancel_requested
            self._last_poll = time.monotonic()
        return self._cancel_requested


@dataclass(frozen=True)
class _JobSpec:
    job_id: uuid.UUID
    organization_id: uuid.UUID
    created_by: uuid.UUID | None
    dataset_id: uuid.UUID
    name: str
    config: dict[str, object]


def _load(session: Session, job_id: uuid.UUID) -> TrainingJob:
    job = repository.get_for_worker(session, job_id)
    if job is None:
        raise DLPError(f"training job {job_id} vanished")
    return job


def run_training_job(platform: Platform, job_id: uuid.UUID, *, worker: str) -> None:
    """Train one queued job to a terminal status; a job that is not queued is left alone."""
    logger = log.bind(job_id=str(job_id), worker=worker)
    with session_scope(platform.sessions) as session:
        if not repository.claim(session, job_id, worker=worker, at=utcnow()):
            logger.info("training.skipped", reason="not queued")
            return
        job = _load(session, job_id)
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
        )
    logger.info("training.started")
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
    table = dataset_service.load_table(platform.store, dataset)
    config = spec.config
    return train_tabular(
        table,
        target=str(config["target"]),
        task=config["task"],  # type: ignore[arg-type]
        model=model_config_adapter.validate_python(config["model"]),
        training=TrainingConfig.model_validate(config["training"]),
        callback=DatabaseProgress(platform.sessions, spec.job_id),
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
                    dataset_id=spec.dataset_id,
                    job_id=spec.job_id,
                    config=spec.config,
                    metrics=trained.metrics,
                    input_schema=trained.input_schema,
                    classes=trained.classes,
                    files=digests,
                    file_prefix=prefix,
                    size_bytes=sum(len(data) for data in trained.files.values()),
                ),
            )
            job = _load(session, spec.job_id)
            job.model_id = model.id
            job.metrics = trained.metrics
            _finish(job, "succeeded", None)
    except BaseException:
        platform.store.delete_prefix(prefix)
        raise


def _finish(job: TrainingJob, status: str, error: str | None) -> None:
    job.status = status
    job.error_message = error
    job.completed_at = utcnow()


def _finish_in_new_transaction(
    platform: Platform, job_id: uuid.UUID, status: str, error: str | None
) -> None:
    with session_scope(platform.sessions) as session:
        _finish(_load(session, job_id), status, error)


def _one_line(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"internal error during training: {type(exc).__name__}: {first}".rstrip(": ")
    return text[:MAX_ERROR_LENGTH]

"""The worker's side of a tuning trial: sample its parameters, train it as a training
job that reports each epoch to the study's pruner, and record how it ended.

``dlp.jobs.runner`` claims the trial under a lease and turns failures into states,
exactly as for a training job. A retried trial (its worker was lost) keeps its
Optuna trial and parameters and resumes from its last checkpoint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
import pydantic
import structlog

from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.faults import is_transient
from dlp.jobs import lifecycle
from dlp.jobs.capacity import Capacity
from dlp.jobs.lease import Lease, LeaseLostError
from dlp.jobs.runner import JobCancelled, run_next_job
from dlp.ml.artifact import TrainedModel
from dlp.ml.trainer import TrainingCancelled
from dlp.platform import Platform
from dlp.queue import JobHint
from dlp.registry import service as registry_service
from dlp.training.models import TrainingJob
from dlp.training.progress import JobProgress, checkpoint_prefix
from dlp.training.runner import JobSpec, start_job, train_job
from dlp.tuning import engine, service
from dlp.tuning.kind import TUNING_TRIALS
from dlp.tuning.models import TuningStudy
from dlp.tuning.space import apply_params, parse_space

log = structlog.get_logger(__name__)


class TrialPruned(Exception):  # noqa: N818 - the name of the state the trial ends in
    """The study's pruner stopped the trial after ``epoch``, at objective ``value``."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned after epoch {epoch}")
        self.epoch = epoch
        self.value = value


@dataclass(frozen=True)
class _Trial:
    study_id: uuid.UUID
    organization_id: uuid.UUID
    config: dict[str, Any]
    study: optuna.Study
    number: int
    handle: optuna.trial.Trial | None
    deadline: datetime | None


def run_next_trial(
    platform: Platform,
    *,
    worker: str,
    capacity: Capacity | None = None,
    hint: JobHint | None = None,
) -> uuid.UUID | None:
    """Claim the best waiting trial that fits ``capacity`` and run it to an end; then
    move its study along."""
    job_id = run_next_job(
        platform,
        TUNING_TRIALS,
        worker=worker,
        work=lambda lease: _run(platform, lease, worker),
        capacity=capacity,
        hint=hint,
    )
    if job_id is not None:
        try:
            _after_trial(platform, job_id)
        except Exception as exc:
            # Housekeeping advances every running study soon anyway.
            log.warning("tuning.advance_failed", job_id=str(job_id), error=str(exc))
    return job_id


def _after_trial(platform: Platform, job_id: uuid.UUID) -> None:
    """Advance the trial's study; after a completed trial, refresh its importances (a
    study that ends gets them from every trial, in the transaction that ends it)."""
    with session_scope(platform.sessions) as session:
        job = session.get(TrainingJob, job_id)
        if job is None or job.study_id is None:
            return
        completed, study_id = job.status == "succeeded", job.study_id

    def importances(study: TuningStudy) -> dict[str, float] | None:
        return engine.importances(engine.load_study(platform.settings, study.optuna_name))

    # A transaction of its own that locks the study before it reads anything.
    with session_scope(platform.sessions) as session:
        study = service.advance_study(
            session, platform, study_id, utcnow(), importances=importances
        )
        if completed and study is not None and study.status == "running":
            found = importances(study)
            if found is not None:
                study.importances = found


class TrialProgress(JobProgress):
    """A training job's callback that also reports each epoch's objective to the pruner
    and stops the trial once the study's time budget is spent."""

    def __init__(self, platform: Platform, lease: Lease[TrainingJob], trial: _Trial) -> None:
        super().__init__(
            platform.sessions,
            platform.store,
            platform.events,
            lease=lease,
            organization_id=trial.organization_id,
            tracing=platform.tracing,
        )
        self.trial = trial
        self.metric = str(trial.config["metric"])
        self.stop_reason: str | None = None
        self.metrics: dict[str, float] = {}

    def on_epoch_complete(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Record the epoch, then ask the pruner whether this trial is worth going on."""
        super().on_epoch_complete(epoch, step, metrics)
        self.metrics = dict(metrics)
        value = metrics.get(self.metric)
        handle = self.trial.handle
        if handle is not None and value is not None and engine.report(handle, value, epoch):
            raise TrialPruned(epoch, value)

    def should_stop(self) -> bool:
        """True once the trial was cancelled or the study's deadline passed."""
        if super().should_stop():
            return True
        deadline = self.trial.deadline
        if deadline is not None and utcnow() >= deadline:
            self.stop_reason = service.OUT_OF_TIME
            return True
        return False


def _run(platform: Platform, lease: Lease[TrainingJob], worker: str) -> None:
    trial = _prepare(platform, lease)
    callback = TrialProgress(platform, lease, trial)
    try:
        spec = start_job(platform, lease, worker)
        trained = train_job(platform, spec, lease, callback)
    except TrialPruned as pruned:
        engine.tell(trial.study, trial.number, "pruned")
        _end_pruned(platform, lease, trial, pruned, callback.metrics)
        return
    except TrainingCancelled as exc:
        engine.tell(trial.study, trial.number, "fail")
        raise JobCancelled(callback.stop_reason or "") from exc
    except LeaseLostError:
        raise
    except Exception as exc:
        if not is_transient(exc):
            engine.tell(trial.study, trial.number, "fail")
        raise
    value = trained.metrics[trial.config["metric"]]
    engine.tell(trial.study, trial.number, "complete", value)
    _end_complete(platform, spec, lease, trained, value)


def _prepare(platform: Platform, lease: Lease[TrainingJob]) -> _Trial:
    """The trial's study and Optuna trial; a new trial samples its parameters into the job."""
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        study = session.get(TuningStudy, job.study_id)
        if study is None or study.status != "running":
            raise JobCancelled(f"its study is {study.status if study else 'deleted'}")
        if study.deadline_at is not None and utcnow() >= study.deadline_at:
            raise JobCancelled(service.OUT_OF_TIME)
        config = {**study.config, "n_trials": study.n_trials}
        study_id, name, deadline = study.id, study.optuna_name, study.deadline_at
        organization_id = study.organization_id
        number, job_config = job.trial_number, dict(job.config)
    optuna_study = engine.open_study(platform.settings, config, name, salt=str(lease.job_id))
    if number is not None:
        handle = engine.reopen(platform.settings, optuna_study, number)
        return _Trial(study_id, organization_id, config, optuna_study, number, handle, deadline)
    handle, params = engine.ask(optuna_study, parse_space(config["search_space"]))
    try:
        model, training = apply_params(
            config["family"], config["model"], config["training"], params
        )
        with session_scope(platform.sessions) as session:
            job = lease.load(session)
            job.trial_number = handle.number
            job.trial_params = params
            job.config = {**job_config, "model": model, "training": training}
            job.total_epochs = int(training["epochs"])
    except pydantic.ValidationError as exc:
        engine.tell(optuna_study, handle.number, "fail")
        problem = exc.errors()[0]["msg"]
        raise DLPError(f"the sampled parameters {params} make no valid config: {problem}") from exc
    except BaseException:
        engine.tell(optuna_study, handle.number, "fail")
        raise
    log.info("tuning.trial_started", study_id=str(study_id), number=handle.number, params=params)
    return _Trial(study_id, organization_id, config, optuna_study, handle.number, handle, deadline)


def _end_pruned(
    platform: Platform,
    lease: Lease[TrainingJob],
    trial: _Trial,
    pruned: TrialPruned,
    metrics: dict[str, float],
) -> None:
    message = (
        f"pruned by the study's {trial.config['pruner']} pruner after epoch {pruned.epoch} "
        f"({trial.config['metric']} {pruned.value:.4g})"
    )
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        job.metrics = metrics
        job.trial_value = pruned.value
        job.checkpoint_epoch = None
        lifecycle.end_job(TUNING_TRIALS, job, "pruned", message, utcnow())
    TUNING_TRIALS.announce(platform.events, job, message)
    platform.store.delete_prefix(checkpoint_prefix(job.organization_id, job.id))


def _end_complete(
    platform: Platform,
    spec: JobSpec,
    lease: Lease[TrainingJob],
    trained: TrainedModel,
    value: float,
) -> None:
    """Store the trial's model, unregistered: the study registers its best one at the end."""
    model_id = uuid.uuid4()
    prefix = registry_service.model_prefix(spec.organization_id, model_id)
    digests = registry_service.store_model_files(platform.store, prefix, trained.files)
    try:
        with session_scope(platform.sessions) as session:
            job = lease.load(session)
            job.metrics = trained.metrics
            job.trial_value = value
            job.checkpoint_epoch = None
            job.trial_result = {
                "model_id": str(model_id),
                "file_prefix": prefix,
                "files": digests,
                "size_bytes": sum(len(data) for data in trained.files.values()),
                "task": trained.task,
                "model_type": trained.model_type,
                "data_kind": trained.data_kind,
                "evaluation": trained.evaluation,
                "input_schema": trained.input_schema,
                "classes": trained.classes,
            }
            lifecycle.end_job(TUNING_TRIALS, job, "succeeded", None, utcnow())
    except BaseException:
        platform.store.delete_prefix(prefix)
        raise
    TUNING_TRIALS.announce(platform.events, job, None)
    platform.store.delete_prefix(checkpoint_prefix(spec.organization_id, spec.job_id))

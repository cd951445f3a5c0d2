"""Business rules of tuning studies: create, read, cancel, and move a study along.

A study keeps ``parallelism`` trial jobs in flight until it has made ``n_trials``
(or its time budget ran out); when the last one ends, the best completed trial's
model is registered. ``advance_study`` does all of that under the study's row lock,
so the API, any number of workers and their housekeeping may call it at any time.
It needs no Optuna: trials mirror their parameters and values into their jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from dlp.auth.service import Principal
from dlp.datasets import service as dataset_service
from dlp.db import run_after_commit, session_scope, utcnow
from dlp.errors import ConflictError, NotFoundError, ValidationError
from dlp.ml.config import AutoModelConfig, DataKind
from dlp.organizations import quotas
from dlp.platform import Platform
from dlp.queue import TUNING_QUEUE
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.training import repository as training_repository
from dlp.training.models import TrainingJob
from dlp.training.schemas import TrainingJobCreate
from dlp.training.service import default_model_name, validate_against_dataset
from dlp.tuning import repository
from dlp.tuning.kind import RUN_TRIAL_TASK
from dlp.tuning.models import TuningStudy
from dlp.tuning.schemas import MAXIMIZED, StudyCreate, best_trial
from dlp.tuning.space import Family, check_space, default_model, default_space

log = structlog.get_logger(__name__)

FAMILY_FOR_KIND: dict[DataKind, Family] = {"tabular": "mlp", "image": "cnn", "text": "text"}
METRICS_FOR_TASK = {
    "classification": ("val_loss", "val_accuracy", "val_f1"),
    "regression": ("val_loss", "val_rmse", "val_mae", "val_r2"),
}
ACTIVE = ("queued", "running")
OUT_OF_TIME = "the study's time budget ran out"
STUDY_CANCELLED = "the study was cancelled"


def create_study(
    session: Session, platform: Platform, principal: Principal, request: StudyCreate
) -> TuningStudy:
    """Validate the request against its dataset, store the study and queue its first trials.

    A running study takes one slot of the organization's concurrent-jobs quota, whatever
    its parallelism."""
    dataset = dataset_service.get_dataset_or_raise(session, principal, request.dataset_id)
    validate_against_dataset(
        TrainingJobCreate(
            dataset_id=request.dataset_id,
            task=request.task,
            target=request.target,
            text_column=request.text_column,
            model=request.model,
            training=request.training,
        ),
        dataset,
    )
    kind: DataKind = dataset.kind  # type: ignore[assignment]
    family = FAMILY_FOR_KIND[kind]
    metric, direction = _objective(request)
    if isinstance(request.model, AutoModelConfig):
        model = default_model(family)
    else:
        model = request.model.model_dump(mode="json")
    training = request.training.model_copy(update={"early_stopping_metric": metric})
    training_config = training.model_dump(mode="json")
    space = request.search_space
    if space is None:
        space = default_space(family, n_rows=dataset.n_rows or 0)
    check_space(family, space, model, training_config)
    quotas.reserve_job_slot(session, platform.settings, principal.organization_id)
    now = utcnow()
    study_id = uuid.uuid4()
    study = repository.add(
        session,
        TuningStudy(
            id=study_id,
            organization_id=principal.organization_id,
            created_by=principal.user.id,
            dataset_id=dataset.id,
            name=request.name or default_model_name(dataset, request.target or "classes"),
            status="running",
            config={
                "task": request.task,
                "target": request.target,
                "text_column": request.text_column,
                "family": family,
                "model": model,
                "training": training_config,
                "metric": metric,
                "direction": direction,
                "pruner": request.pruner,
                "max_minutes": request.max_minutes,
                "search_space": {name: spec.model_dump() for name, spec in space.items()},
                "seed": request.seed,
                "priority": request.priority,
            },
            optuna_name=f"dlp-{study_id}",
            n_trials=request.n_trials,
            parallelism=request.parallelism,
            deadline_at=(
                now + timedelta(minutes=request.max_minutes) if request.max_minutes else None
            ),
        ),
    )
    advance_study(session, platform, study.id, now)
    return study


def _objective(request: StudyCreate) -> tuple[str, str]:
    metric = request.metric or ("val_accuracy" if request.task == "classification" else "val_rmse")
    if metric not in METRICS_FOR_TASK[request.task]:
        raise ValidationError(
            f"metric {metric!r} does not measure {request.task}; "
            f"use one of {', '.join(METRICS_FOR_TASK[request.task])}"
        )
    direction = "maximize" if metric in MAXIMIZED else "minimize"
    if request.direction is not None and request.direction != direction:
        raise ValidationError(f"{metric} is to {direction[:-1]}e: direction must be {direction}")
    return metric, direction


def get_study_or_raise(session: Session, principal: Principal, study_id: uuid.UUID) -> TuningStudy:
    """The organization's study; 404 for one that is missing or another tenant's."""
    study = repository.get(session, study_id=study_id, organization_id=principal.organization_id)
    if study is None:
        raise NotFoundError("tuning study", study_id)
    return study


def trials_of(session: Session, studies: list[TuningStudy]) -> dict[uuid.UUID, list[TrainingJob]]:
    """Each study's trial jobs."""
    return repository.trials(session, [study.id for study in studies])


def list_studies(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[TuningStudy], int]:
    """A page of the organization's studies, newest first."""
    return repository.list_page(
        session, organization_id=principal.organization_id, limit=limit, offset=offset
    )


def cancel_study(
    session: Session, platform: Platform, principal: Principal, study_id: uuid.UUID
) -> TuningStudy:
    """Cancel the queued trials, ask running ones to stop, and end the study ``cancelled``."""
    study = get_study_or_raise(session, principal, study_id)
    if study.status != "running":
        raise ConflictError(f"the study already ended ({study.status})")
    now = utcnow()
    # Trial rows first, then the study's: whoever holds a study's lock never waits for a trial's.
    repository.cancel_queued_trials(session, study.id, now, reason=STUDY_CANCELLED)
    repository.request_cancel_of_running_trials(session, study.id)
    locked = repository.lock(session, study.id)
    if locked is not None and locked.status == "running":
        locked.status = "cancelled"
        locked.completed_at = now
    advance_study(session, platform, study.id, now)
    session.refresh(study)
    return study


Importances = Callable[[TuningStudy], dict[str, float] | None]
"""Reads a study's parameter importances from Optuna (the workers pass one in)."""


def advance_study(
    session: Session,
    platform: Platform,
    study_id: uuid.UUID,
    now: datetime,
    *,
    importances: Importances | None = None,
) -> TuningStudy | None:
    """Top the study up to ``parallelism`` trials in flight, or end it once its last
    trial ended (with its final ``importances`` when given); for an ended study, delete
    the models of trials that lost."""
    study = repository.lock(session, study_id)
    if study is None:
        return None
    if study.status == "running":
        trials = repository.trials(session, [study.id])[study.id]
        out_of_time = study.deadline_at is not None and now >= study.deadline_at
        if out_of_time and repository.cancel_queued_trials(
            session, study.id, now, reason=OUT_OF_TIME
        ):
            session.expire_all()
            trials = repository.trials(session, [study.id])[study.id]
        active = sum(job.status in ACTIVE for job in trials)
        room = 0 if out_of_time else min(study.parallelism - active, study.n_trials - len(trials))
        for _ in range(max(room, 0)):
            trial = training_repository.add(session, _new_trial(study))
            platform.queue.wake_after_commit(
                session, RUN_TRIAL_TASK, queue=TUNING_QUEUE, job_id=trial.id
            )
        if active == 0 and room <= 0:
            _finish(session, study, trials, now)
            final = importances(study) if importances and study.status == "succeeded" else None
            if final is not None:
                study.importances = final
    if study.status != "running":
        _discard_losing_models(session, platform, study)
    return study


def advance_running_studies(platform: Platform, now: datetime) -> int:
    """Advance every running study (housekeeping: trials the reaper ended, budgets spent)."""
    with session_scope(platform.sessions) as session:
        study_ids = repository.running_study_ids(session)
    for study_id in study_ids:
        with session_scope(platform.sessions) as session:
            advance_study(session, platform, study_id, now)
    return len(study_ids)


def _new_trial(study: TuningStudy) -> TrainingJob:
    config = study.config
    return TrainingJob(
        organization_id=study.organization_id,
        created_by=study.created_by,
        dataset_id=study.dataset_id,
        name=study.name,
        status="queued",
        priority=config["priority"],
        config={
            "task": config["task"],
            "target": config["target"],
            "text_column": config["text_column"],
            "model": config["model"],
            "training": config["training"],
            "priority": config["priority"],
            "resources": {"devices": 1, "device_type": "auto"},
        },
        total_epochs=config["training"]["epochs"],
        devices=1,
        device_type="auto",
        study_id=study.id,
    )


def _finish(session: Session, study: TuningStudy, trials: list[TrainingJob], now: datetime) -> None:
    best = best_trial(trials, maximize=study.config["direction"] == "maximize")
    study.completed_at = now
    if best is None or not best.trial_result:
        states = sorted({job.status for job in trials})
        study.status = "failed"
        study.error_message = f"no trial completed ({len(trials)} ended: {', '.join(states)})"
        log.info("tuning.study_failed", study_id=str(study.id))
        return
    model = registry_service.register_version(session, _model_of(study, best, best.trial_result))
    best.model_id = model.id
    study.status = "succeeded"
    study.best_job_id = best.id
    study.best_value = best.trial_value
    study.model_id = model.id
    log.info("tuning.study_succeeded", study_id=str(study.id), model_id=str(model.id))


def _model_of(study: TuningStudy, job: TrainingJob, result: dict[str, Any]) -> Model:
    return Model(
        id=uuid.UUID(result["model_id"]),
        organization_id=study.organization_id,
        created_by=study.created_by,
        name=study.name,
        task=result["task"],
        type=result["model_type"],
        data_kind=result["data_kind"],
        dataset_id=job.dataset_id,
        job_id=job.id,
        config=job.config,
        metrics=job.metrics,
        evaluation=result["evaluation"],
        input_schema=result["input_schema"],
        classes=result["classes"],
        files=result["files"],
        file_prefix=result["file_prefix"],
        size_bytes=result["size_bytes"],
    )


def _discard_losing_models(session: Session, platform: Platform, study: TuningStudy) -> None:
    prefixes = []
    for job in repository.unregistered_trial_results(session, study.id):
        prefixes.append(str((job.trial_result or {})["file_prefix"]))
        job.trial_result = None
    if prefixes:
        store = platform.store

        def delete_files() -> None:
            for prefix in prefixes:
                store.delete_prefix(prefix)

        run_after_commit(session, delete_files)

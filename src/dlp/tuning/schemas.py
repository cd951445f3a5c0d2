"""Request and response bodies of the tuning endpoints."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dlp.ml.config import AutoModelConfig, ModelConfig, MonitorMetric, Task, TrainingConfig
from dlp.training.models import TrainingJob
from dlp.training.schemas import ColumnName, ModelName, Priority
from dlp.tuning.models import TuningStudy
from dlp.tuning.space import SearchSpace

StudyStatus = Literal["running", "succeeded", "failed", "cancelled"]
Direction = Literal["maximize", "minimize"]
Pruner = Literal["hyperband", "successive_halving", "median", "none"]
TrialState = Literal["waiting", "running", "complete", "pruned", "fail", "cancelled"]

MAXIMIZED: frozenset[str] = frozenset({"val_accuracy", "val_f1", "val_r2"})
TRIAL_STATES: dict[str, TrialState] = {
    "queued": "waiting",
    "running": "running",
    "succeeded": "complete",
    "pruned": "pruned",
    "failed": "fail",
    "cancelled": "cancelled",
}


def _trial_training() -> TrainingConfig:
    return TrainingConfig(epochs=50, early_stopping_patience=10)


class StudyCreate(BaseModel):
    """What to tune, on which dataset, and how much to spend."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID
    name: ModelName | None = Field(
        default=None,
        description="Model name the best trial is registered under; default: dataset-target.",
    )
    task: Task
    target: ColumnName | None = Field(default=None, description="Column to predict.")
    text_column: ColumnName | None = Field(default=None, description="Column holding the text.")
    model: ModelConfig = Field(
        default_factory=AutoModelConfig,
        description="The family to tune ({'type': 'mlp'|'cnn'|'text'}, other fields fixed for "
        "every trial) or {'type': 'auto'}: dlp picks the family and space from the dataset.",
    )
    n_trials: int = Field(default=20, ge=1, le=1000, description="Most trials to run.")
    metric: MonitorMetric | None = Field(
        default=None,
        description="Validation metric to optimise; default val_accuracy (classification) "
        "or val_rmse (regression).",
    )
    direction: Direction | None = Field(
        default=None, description="Follows from the metric; given, it must agree with it."
    )
    search_space: SearchSpace | None = Field(
        default=None,
        description='{"<param>": {"type": "float"|"int", "low", "high", "log"} or '
        '{"type": "categorical", "choices": [...]}}; default: the family\'s space.',
    )
    parallelism: int = Field(default=2, ge=1, le=64, description="Trials running at once.")
    max_minutes: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 60,
        allow_inf_nan=False,
        description="Time budget: no trial starts after it, running ones are stopped.",
    )
    pruner: Pruner = Field(
        default="hyperband", description="Stops weak trials early from their per-epoch metric."
    )
    training: TrainingConfig = Field(
        default_factory=_trial_training,
        description="Each trial's training loop; tuned parameters override its fields.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds the sampler.")
    priority: Priority = "normal"


class TrialOut(BaseModel):
    """One trial: its training job, sampled parameters and objective value."""

    number: int | None = Field(description="Optuna's trial number; null until the trial starts.")
    job_id: uuid.UUID
    state: TrialState
    params: dict[str, Any] | None
    value: float | None
    epochs: int
    worker: str | None
    error_message: str | None
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_job(cls, job: TrainingJob) -> TrialOut:
        """The trial view of a trial's training job."""
        return cls(
            number=job.trial_number,
            job_id=job.id,
            state=TRIAL_STATES[job.status],
            params=job.trial_params,
            value=job.trial_value,
            epochs=job.progress_epoch,
            worker=job.worker,
            error_message=job.error_message,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class BestTrial(BaseModel):
    """The best completed trial so far."""

    number: int | None
    job_id: uuid.UUID
    params: dict[str, Any] | None
    value: float | None
    model_id: uuid.UUID | None = Field(description="Its registered model, once the study ends.")


class StudyOut(BaseModel):
    """A study, without its trials (as listed)."""

    id: uuid.UUID
    name: str
    status: StudyStatus
    dataset_id: uuid.UUID | None
    task: Task
    target: str | None
    family: str
    metric: str
    direction: Direction
    n_trials: int
    parallelism: int
    pruner: Pruner
    max_minutes: float | None
    search_space: dict[str, Any]
    trial_counts: dict[str, int]
    best: BestTrial | None
    importances: dict[str, float] | None = Field(
        description="Parameter importances (Optuna's PED-ANOVA) once 4 trials completed."
    )
    model_id: uuid.UUID | None
    error_message: str | None
    created_at: datetime
    deadline_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def build(cls, study: TuningStudy, trials: list[TrainingJob]) -> StudyOut:
        """The API view of a study and its trial jobs."""
        return cls(**_study_fields(study, trials))


class StudyDetail(StudyOut):
    """A study with every trial."""

    trials: list[TrialOut]

    @classmethod
    def build(cls, study: TuningStudy, trials: list[TrainingJob]) -> StudyDetail:
        """The API view of a study and its trial jobs, trials included."""
        ordered = sorted(trials, key=_trial_order)
        return cls(**_study_fields(study, trials), trials=[TrialOut.from_job(t) for t in ordered])


def _trial_order(job: TrainingJob) -> tuple[int, datetime]:
    number = job.trial_number if job.trial_number is not None else 1 << 30
    return number, job.created_at


def _study_fields(study: TuningStudy, trials: list[TrainingJob]) -> dict[str, Any]:
    config = study.config
    counts: dict[str, int] = dict.fromkeys(TRIAL_STATES.values(), 0)
    for job in trials:
        counts[TRIAL_STATES[job.status]] += 1
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "dataset_id": study.dataset_id,
        "task": config["task"],
        "target": config.get("target"),
        "family": config["family"],
        "metric": config["metric"],
        "direction": config["direction"],
        "n_trials": study.n_trials,
        "parallelism": study.parallelism,
        "pruner": config["pruner"],
        "max_minutes": config.get("max_minutes"),
        "search_space": config["search_space"],
        "trial_counts": counts,
        "best": _best(study, trials),
        "importances": study.importances,
        "model_id": study.model_id,
        "error_message": study.error_message,
        "created_at": study.created_at,
        "deadline_at": study.deadline_at,
        "completed_at": study.completed_at,
    }


def _best(study: TuningStudy, trials: list[TrainingJob]) -> BestTrial | None:
    job = best_trial(trials, maximize=study.config["direction"] == "maximize")
    if job is None:
        return None
    return BestTrial(
        number=job.trial_number,
        job_id=job.id,
        params=job.trial_params,
        value=job.trial_value,
        model_id=job.model_id,
    )


def best_trial(trials: list[TrainingJob], *, maximize: bool) -> TrainingJob | None:
    """The completed trial with the best value.

    Accuracy on a small validation split ties often (many trials score 1.0 on wine's
    36 rows): among equals the lowest validation loss wins, the more confident model,
    then the earliest trial.
    """
    done = [job for job in trials if job.status == "succeeded" and job.trial_value is not None]
    if not done:
        return None
    sign = -1.0 if maximize else 1.0

    def rank(job: TrainingJob) -> tuple[float, float, int]:
        loss = (job.metrics or {}).get("val_loss")
        return (
            sign * (job.trial_value or 0.0),
            loss if isinstance(loss, float) and math.isfinite(loss) else math.inf,
            job.trial_number or 0,
        )

    return min(done, key=rank)

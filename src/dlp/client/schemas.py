"""What the SDK's calls return: small pydantic models of the contract's JSON.

They accept fields the server adds later (``extra="allow"``) and name only what the
SDK and the CLI use; ``model_dump(mode="json", by_alias=True)`` gives back the JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    from dlp.client.training import TrainingJobs

TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled", "pruned"})
TERMINAL_STUDY_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class Result(BaseModel):
    """Base of every result: lenient about fields it does not know."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), populate_by_name=True)


Item = TypeVar("Item", bound=Result)


class Page(Result, Generic[Item]):
    """One page of a collection: ``items`` and where they sit in the whole."""

    items: list[Item]
    total: int
    limit: int
    offset: int


class User(Result):
    """A user, as seen in the current organization."""

    id: str
    username: str
    email: str
    role: str
    organization_id: str
    is_superuser: bool = False
    created_at: datetime


class TokenPair(Result):
    """An access token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105
    expires_in: int


class ApiKey(Result):
    """A new API key; ``key`` is shown this once."""

    id: str
    name: str
    key: str
    scope: str = "write"
    created_at: datetime
    expires_at: datetime | None = None


class ApiKeyInfo(Result):
    """An API key as listed: never the key itself."""

    id: str
    name: str
    scope: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Organization(Result):
    """An organization, with your role in it; ``quotas`` (null: unlimited) and ``usage``
    come with the current one."""

    id: str
    name: str
    is_personal: bool
    role: str | None = None
    created_at: datetime | None = None
    quotas: dict[str, int | None] | None = None
    usage: dict[str, int] | None = None


class Invitation(Result):
    """An invitation to an organization; ``token`` only when it was just made."""

    id: str
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    token: str | None = None


class Dataset(Result):
    """An uploaded dataset and its profile."""

    id: str
    name: str
    kind: str
    status: str
    size_bytes: int
    n_rows: int | None = None
    format: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    error_message: str | None = None
    created_at: datetime


class Progress(Result):
    """Epochs done of a training job."""

    epoch: int = 0
    total_epochs: int = 0


class TrainingJob(Result):
    """A training job: status, progress, final metrics and the model it produced."""

    id: str
    name: str | None = None
    status: str
    dataset_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    priority: str | None = None
    progress: Progress = Field(default_factory=Progress)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    model_id: str | None = None
    error_message: str | None = None
    study_id: str | None = None
    trial_number: int | None = None
    waiting_reason: str | None = None
    webhook_secret: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    _jobs: TrainingJobs | None = PrivateAttr(default=None)

    @property
    def finished(self) -> bool:
        """True once the job reached a terminal status."""
        return self.status in TERMINAL_JOB_STATUSES

    def wait(self, timeout: float | None = None) -> TrainingJob:
        """Block until the job ends (see ``client.jobs.wait``) and return its final state."""
        return self._client().wait(self.id, timeout=timeout)

    def events(self) -> Iterator[JobEvent]:
        """Follow the job's live events until its terminal status."""
        return self._client().events(self.id)

    def refresh(self) -> TrainingJob:
        """The job's current state."""
        return self._client().get(self.id)

    def cancel(self) -> TrainingJob:
        """Cancel the job."""
        return self._client().cancel(self.id)

    def _client(self) -> TrainingJobs:
        if self._jobs is None:
            raise RuntimeError("this job was not fetched through a dlp Client")
        return self._jobs


class MetricPoint(Result):
    """One metric value a job reported."""

    epoch: int
    step: int
    name: str
    value: float | None
    at: datetime


class ModelVersion(Result):
    """A model version with its lineage and metrics."""

    id: str
    name: str
    version: int
    task: str
    type: str
    data_kind: str | None = None
    dataset_id: str | None = None
    job_id: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    input_schema: list[dict[str, Any]] = Field(default_factory=list)
    classes: list[Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    size_bytes: int | None = None
    created_at: datetime


class Prediction(Result):
    """Predictions aligned with the inputs; probabilities aligned with ``classes``."""

    model_id: str
    model_version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None


class RegistryName(Result):
    """A model name: its versions (newest first), aliases and traffic split."""

    name: str
    versions: list[ModelVersion]
    aliases: dict[str, int] = Field(default_factory=dict)
    traffic: dict[str, float] | None = None


class Alias(Result):
    """An alias of a model name and the version it points at."""

    name: str
    alias: str
    version: int
    updated_at: datetime


class Traffic(Result):
    """A traffic split: version -> weight."""

    name: str
    weights: dict[str, float]
    updated_at: datetime


class Trial(Result):
    """One trial of a tuning study."""

    number: int | None = None
    job_id: str
    state: str
    params: dict[str, Any] | None = None
    value: float | None = None
    epochs: int = 0
    error_message: str | None = None


class BestTrial(Result):
    """The best completed trial of a study so far."""

    number: int | None = None
    job_id: str
    params: dict[str, Any] | None = None
    value: float | None = None
    model_id: str | None = None


class Study(Result):
    """A tuning study; ``trials`` is empty in listings."""

    id: str
    name: str
    status: str
    dataset_id: str | None = None
    task: str
    target: str | None = None
    metric: str
    direction: str
    n_trials: int
    trial_counts: dict[str, int] = Field(default_factory=dict)
    best: BestTrial | None = None
    model_id: str | None = None
    error_message: str | None = None
    trials: list[Trial] = Field(default_factory=list)
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the study reached a terminal status."""
        return self.status in TERMINAL_STUDY_STATUSES


class BatchProgress(Result):
    """Rows predicted so far, of all rows."""

    rows_done: int
    rows_total: int


class BatchPrediction(Result):
    """A batch prediction job over a whole dataset."""

    id: str
    status: str
    model_id: str | None = None
    model_name: str
    model_version: int
    dataset_id: str | None = None
    format: str
    progress: BatchProgress
    output: dict[str, Any] | None = None
    error_message: str | None = None
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the batch prediction reached a terminal status."""
        return self.status in TERMINAL_JOB_STATUSES


class QueuesOverview(Result):
    """The installation's queues, workers and running jobs (superuser only)."""

    queues: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    running_jobs: list[dict[str, Any]]


class StatusEvent(Result):
    """A job's state changed (the first event of every stream is one too)."""

    type: Literal["status"]
    status: str
    progress: Progress = Field(default_factory=Progress)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    error_message: str | None = None
    model_id: str | None = None
    at: datetime | None = None

    @property
    def terminal(self) -> bool:
        """True when this status ends the job (and the stream)."""
        return self.status in TERMINAL_JOB_STATUSES


class MetricEvent(Result):
    """A metric value the job reported; ``id`` orders them."""

    type: Literal["metric"]
    id: int = 0
    epoch: int
    step: int
    name: str
    value: float | None
    at: datetime | None = None


class LogEvent(Result):
    """A line of the job's log."""

    type: Literal["log"]
    message: str
    at: datetime | None = None


JobEvent = StatusEvent | MetricEvent | LogEvent

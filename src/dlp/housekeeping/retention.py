"""What is kept of jobs' files, and for how long: checkpoints and batch outputs.

A training run keeps one checkpoint, its last (each one also carries the best epoch's
weights); older ones are left behind only when a worker died between writing a new
checkpoint and deleting the one before. Pruning keeps, of a job's checkpoints:

- queued or running: the one the job points at and the last ``KEEP_WHILE_RUNNING``
  (a resumed attempt needs the last);
- failed or cancelled: the last and the best epoch's (by the job's early-stopping metric);
- succeeded or pruned: none (the model is stored; the runner deletes them itself).

Files younger than the grace period are never pruned. Retention (an organization's
``retention_days``, else ``DLP_RETENTION_DAYS``) deletes, once a job ended that many
days ago, all its checkpoints and a batch prediction's output; datasets and registered
models are never deleted by retention.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from dlp.housekeeping import repository
from dlp.housekeeping.files import Folder
from dlp.jobs.repository import ACTIVE_STATUSES
from dlp.ml.config import TrainingConfig
from dlp.ml.trainer import HIGHER_IS_BETTER
from dlp.storage import FileStore
from dlp.training.models import TrainingJob

log = structlog.get_logger(__name__)

KEEP_WHILE_RUNNING = 2
MODEL_STORED = frozenset({"succeeded", "pruned"})
_CHECKPOINT = re.compile(r"/checkpoints/epoch-(\d+)\.safetensors$")
_DEFAULT_MONITOR = str(TrainingConfig.model_fields["early_stopping_metric"].default)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each organization keeps what retention covers."""

    now: datetime
    default_days: int | None
    own_days: dict[uuid.UUID, int]

    def ended_before(self, organization_id: uuid.UUID) -> datetime | None:
        """Jobs of the organization that ended before this are past retention; None:
        kept forever."""
        days = self.own_days.get(organization_id, self.default_days)
        return None if days is None else self.now - timedelta(days=days)

    def expired(self, organization_id: uuid.UUID, status: str, ended_at: datetime | None) -> bool:
        """Whether a job that ended at ``ended_at`` is past its organization's retention."""
        before = self.ended_before(organization_id)
        if before is None or status in ACTIVE_STATUSES or ended_at is None:
            return False
        return ended_at < before


def load_policy(session: Session, *, now: datetime, default_days: int | None) -> RetentionPolicy:
    """The retention in force now."""
    return RetentionPolicy(now, default_days, repository.retention_days(session))


def prune_checkpoints(
    session: Session,
    store: FileStore,
    folders: list[Folder],
    policy: RetentionPolicy,
    *,
    older_than: datetime,
) -> int:
    """Delete the checkpoints pruning or retention gives up; returns how many files."""
    jobs = {job.id: job for job in repository.training_jobs(session, [f.row_id for f in folders])}
    deleted = 0
    for folder in folders:
        job = jobs.get(folder.row_id)
        if job is None:  # an orphan: the orphan pass decides
            continue
        checkpoints = {
            int(match.group(1)): stored
            for stored in folder.files
            if (match := _CHECKPOINT.search(stored.key))
        }
        if policy.expired(job.organization_id, job.status, job.completed_at):
            doomed = list(checkpoints.values())
        else:
            kept = _kept_epochs(session, job, sorted(checkpoints))
            doomed = [
                stored
                for epoch, stored in checkpoints.items()
                if epoch not in kept and stored.modified_at < older_than
            ]
        for stored in doomed:
            store.delete_prefix(stored.key)
        deleted += len(doomed)
    return deleted


def _kept_epochs(session: Session, job: TrainingJob, epochs: list[int]) -> set[int | None]:
    if job.status in ACTIVE_STATUSES:
        return {job.checkpoint_epoch, *epochs[-KEEP_WHILE_RUNNING:]}
    if job.status in MODEL_STORED:
        return set()
    last = epochs[-1] if epochs else None
    return {job.checkpoint_epoch, last, best_epoch(session, job)}


def best_epoch(session: Session, job: TrainingJob) -> int | None:
    """The epoch the job's early-stopping metric liked best (the first, on a tie), from
    its recorded metrics; None before any was recorded."""
    training = job.config.get("training") or {}
    metric = str(training.get("early_stopping_metric") or _DEFAULT_MONITOR)
    values = repository.metric_by_epoch(session, job.id, metric)
    if not values:
        return None
    pick = max if metric in HIGHER_IS_BETTER else min
    return pick(values, key=values.__getitem__)


def expire_batch_outputs(
    session: Session, store: FileStore, folders: list[Folder], policy: RetentionPolicy
) -> list[uuid.UUID]:
    """Delete the outputs of batch predictions past retention; the ids of those deleted
    (their rows are updated by :func:`forget_batch_outputs`, in a transaction of its own)."""
    by_id = {folder.row_id: folder for folder in folders}
    expired = []
    for job in repository.batch_predictions(session, by_id):
        if policy.expired(job.organization_id, job.status, job.completed_at):
            store.delete_prefix(by_id[job.id].prefix)
            expired.append(job.id)
    return expired


def forget_batch_outputs(session: Session, ids: list[uuid.UUID]) -> int:
    """Record that these batch predictions' outputs were deleted; returns how many."""
    reason = "its output was deleted: it is older than the organization's retention"
    return sum(repository.clear_batch_output(session, job_id, reason=reason) for job_id in ids)

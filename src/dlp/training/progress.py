"""The worker's training callback: metrics, checkpoints and cancellation, all durable.

Each report runs in its own short transaction, so the API sees progress while a
job trains and a crash loses at most the epoch in flight. Every write is fenced by
the job's lease: once the job was taken from this attempt, the next write raises
``LeaseLostError`` instead.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy.orm import Session, sessionmaker

from dlp.db import session_scope, utcnow
from dlp.events.bus import JobEvents
from dlp.events.payloads import metric_event
from dlp.jobs.lease import Lease
from dlp.jobs.metrics import job_metrics
from dlp.ml.trainer import TrainingCallback
from dlp.ops.tracing import NO_TRACING, Tracing
from dlp.storage import FileStore
from dlp.training import repository
from dlp.training.models import JobMetric, TrainingJob

CANCEL_POLL_SECONDS = 2.0
STEP_REPORT_SECONDS = 2.0


def checkpoint_prefix(organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """The store folder of a job's training checkpoints."""
    return f"orgs/{organization_id}/jobs/{job_id}/checkpoints"


def checkpoint_key(organization_id: uuid.UUID, job_id: uuid.UUID, epoch: int) -> str:
    """Where the checkpoint taken after ``epoch`` lives."""
    return f"{checkpoint_prefix(organization_id, job_id)}/epoch-{epoch:05d}.safetensors"


class JobProgress(TrainingCallback):
    """Stores metrics per epoch (and running loss every few seconds), checkpoints each
    epoch to the file store, notices cancellation requests and a lost lease, and reports
    each epoch's training speed to the worker's metrics and each epoch to ``tracing``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: FileStore,
        events: JobEvents,
        *,
        lease: Lease[TrainingJob],
        organization_id: uuid.UUID,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.events = events
        self.lease = lease
        self.job_id = lease.job_id
        self.organization_id = organization_id
        self.tracing = tracing
        self._cancel_requested = False
        self._last_poll = time.monotonic()
        self._last_step_report = 0.0
        self._batch_size = 0
        self._epoch_started = time.monotonic()
        self._epoch_started_ns = time.time_ns()

    def _add_metrics(
        self, epoch: int, step: int, metrics: dict[str, float], *, progress: bool = False
    ) -> None:
        at = utcnow()
        with session_scope(self.sessions) as session:
            job = self.lease.load(session)
            rows = [
                JobMetric(job_id=self.job_id, epoch=epoch, step=step, name=name, value=value, at=at)
                for name, value in metrics.items()
            ]
            repository.add_metrics(session, rows)
            if progress:
                job.progress_epoch = epoch
                job.metrics = metrics
            self._cancel_requested = job.cancel_requested
        self._last_poll = time.monotonic()
        for row in rows:
            self.events.publish(self.job_id, metric_event(row))

    def on_step(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Record the running loss and learning rate, at most every few seconds."""
        now = time.monotonic()
        if now - self._last_step_report < STEP_REPORT_SECONDS:
            return
        self._last_step_report = now
        self._add_metrics(
            epoch, step, {f"running_{name}": value for name, value in metrics.items()}
        )

    def on_train_start(self, total_epochs: int) -> None:
        """Read the batch size (a tuning trial's is sampled) and start the epoch clock."""
        with session_scope(self.sessions) as session:
            training = self.lease.load(session).config.get("training") or {}
        self._batch_size = int(training.get("batch_size") or 0)
        self._epoch_started = time.monotonic()
        self._epoch_started_ns = time.time_ns()

    def on_epoch_complete(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Report the epoch's speed and trace it; store its metrics and the job's progress
        in one transaction."""
        now = time.monotonic()
        elapsed, self._epoch_started = now - self._epoch_started, now
        started_ns, self._epoch_started_ns = self._epoch_started_ns, time.time_ns()
        # ``step`` counts optimizer steps since the first epoch, the same number each epoch.
        samples = step / epoch * self._batch_size if self._batch_size and epoch > 0 else None
        if samples is not None and elapsed > 0:
            job_metrics().training_samples_per_second.set(samples / elapsed)
        self.tracing.record_epoch(
            job_id=self.job_id,
            epoch=epoch,
            samples=None if samples is None else round(samples),
            started_ns=started_ns,
        )
        self._add_metrics(epoch, step, metrics, progress=True)

    def on_checkpoint(self, checkpoint: bytes, epoch: int) -> None:
        """Write the checkpoint, point the job at it, then drop the one before."""
        self.store.write_bytes(checkpoint_key(self.organization_id, self.job_id, epoch), checkpoint)
        with session_scope(self.sessions) as session:
            job = self.lease.load(session)
            previous = job.checkpoint_epoch
            job.checkpoint_epoch = epoch
        if previous is not None and previous != epoch:
            self.store.delete_prefix(checkpoint_key(self.organization_id, self.job_id, previous))

    def should_stop(self) -> bool:
        """True once someone asked to cancel (polled at most every few seconds).

        Raises ``LeaseLostError`` once the heartbeat found the job taken away.
        """
        if self.lease.lost:
            raise self.lease.lost_error()
        if not self._cancel_requested and time.monotonic() - self._last_poll > CANCEL_POLL_SECONDS:
            with session_scope(self.sessions) as session:
                self._cancel_requested = self.lease.load(session).cancel_requested
            self._last_poll = time.monotonic()
        return self._cancel_requested

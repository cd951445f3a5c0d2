"""Training jobs as the shared job machinery sees them."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from dlp.events.bus import JobEvents
from dlp.events.payloads import log_event, status_event
from dlp.jobs.capacity import Capacity, fits_clause
from dlp.jobs.kind import JobKind
from dlp.queue import TRAINING_QUEUE
from dlp.training.models import TrainingJob
from dlp.webhooks.delivery import schedule_webhook

RUN_TRAINING_TASK = "dlp.training.run_next"


def _announce(events: JobEvents, job: TrainingJob, message: str | None) -> None:
    """Tell the job's live followers its new state (after a log line, if any)."""
    if message is not None:
        events.publish(job.id, log_event(message))
    events.publish(job.id, status_event(job))


def fits_training_job(capacity: Capacity) -> ColumnElement[bool]:
    """The training jobs (and tuning trials) a worker process of ``capacity`` can run."""
    return fits_clause(TrainingJob.devices, TrainingJob.device_type, capacity)


TRAINING_JOBS: JobKind[TrainingJob] = JobKind(
    table=TrainingJob,
    label="training job",
    queue=TRAINING_QUEUE,
    task_name=RUN_TRAINING_TASK,
    progress=lambda job: {"epoch": job.progress_epoch, "total_epochs": job.total_epochs},
    on_end=schedule_webhook,
    announce=_announce,
    scope=TrainingJob.study_id.is_(None),
    fits=fits_training_job,
)

"""Tuning trials as the shared job machinery sees them: training jobs of a study,
claimed from the tuning queue."""

from __future__ import annotations

from dlp.jobs.kind import JobKind
from dlp.queue import TUNING_QUEUE
from dlp.training.kind import TRAINING_JOBS
from dlp.training.models import TrainingJob

RUN_TRIAL_TASK = "dlp.tuning.run_next"

TUNING_TRIALS: JobKind[TrainingJob] = JobKind(
    table=TrainingJob,
    label="tuning trial",
    queue=TUNING_QUEUE,
    task_name=RUN_TRIAL_TASK,
    progress=TRAINING_JOBS.progress,
    announce=TRAINING_JOBS.announce,
    scope=TrainingJob.study_id.is_not(None),
    fits=TRAINING_JOBS.fits,
)

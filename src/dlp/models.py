"""Every table, imported in one place so metadata and Alembic see them all."""

from dlp.audit.models import AuditEvent
from dlp.auth.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    RefreshToken,
    Role,
    User,
)
from dlp.batch.models import BatchPrediction
from dlp.datasets.models import Dataset
from dlp.housekeeping.models import HousekeepingRun
from dlp.registry.models import Model, ModelAlias, TrafficSplit
from dlp.training.models import JobMetric, TrainingJob
from dlp.tuning.models import TuningStudy
from dlp.workers.models import WorkerRecord

__all__ = [
    "ApiKey",
    "AuditEvent",
    "BatchPrediction",
    "Dataset",
    "HousekeepingRun",
    "Invitation",
    "JobMetric",
    "Membership",
    "Model",
    "ModelAlias",
    "Organization",
    "RefreshToken",
    "Role",
    "TrafficSplit",
    "TrainingJob",
    "TuningStudy",
    "User",
    "WorkerRecord",
]

"""Every table, imported in one place so metadata and Alembic see them all."""

from dlp.auth.models import ApiKey, Membership, Organization, RefreshToken, Role, User
from dlp.batch.models import BatchPrediction
from dlp.datasets.models import Dataset
from dlp.registry.models import Model, ModelAlias, TrafficSplit
from dlp.training.models import JobMetric, TrainingJob
from dlp.tuning.models import TuningStudy
from dlp.workers.models import WorkerRecord

__all__ = [
    "ApiKey",
    "BatchPrediction",
    "Dataset",
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

"""The quota rules of organizations: how much storage and how many concurrent jobs.

A quota is the organization's own value (``organizations.max_storage_bytes`` and
``max_concurrent_jobs``, set by the installation's superuser) or, when that is None,
the settings' default (``DLP_ORG_MAX_STORAGE_MB``, ``DLP_ORG_MAX_CONCURRENT_JOBS``);
None there too means unlimited.

Storage used is what the organization's datasets, model versions (their files and
int8 graphs) and batch prediction outputs take. Training checkpoints (deleted when a
job ends) and the models of tuning trials not yet registered are not counted.

Active jobs are queued or running training jobs, batch predictions and tuning
studies: a running study counts as one job, whatever its parallelism, and its trials
are not counted on their own.

Checks that decide run under the organization's row lock (:func:`lock`), so two
simultaneous submissions cannot both take the last slot.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from dlp.auth.models import Organization
from dlp.batch import repository as batch_repository
from dlp.config import Settings
from dlp.datasets import repository as dataset_repository
from dlp.errors import ConflictError, NotFoundError, PayloadTooLargeError
from dlp.organizations import repository
from dlp.registry import repository as registry_repository
from dlp.training import repository as training_repository
from dlp.tuning import repository as tuning_repository


@dataclass(frozen=True)
class Quotas:
    """An organization's limits in force; None is unlimited (kept forever, for retention)."""

    max_storage_bytes: int | None
    max_concurrent_jobs: int | None
    retention_days: int | None


@dataclass(frozen=True)
class Usage:
    """What an organization uses now."""

    storage_bytes: int
    active_jobs: int


@dataclass(frozen=True)
class UploadLimit:
    """The most bytes one upload may bring, and what to say to one that brings more."""

    max_bytes: int
    refusal: str


def quotas_of(organization: Organization, settings: Settings) -> Quotas:
    """The organization's own quotas, or the settings' defaults where it has none."""
    default_storage = settings.org_max_storage_mb
    storage = organization.max_storage_bytes
    if storage is None and default_storage is not None:
        storage = default_storage * 2**20
    jobs = organization.max_concurrent_jobs
    if jobs is None:
        jobs = settings.org_max_concurrent_jobs
    retention = organization.retention_days
    if retention is None:
        retention = settings.retention_days
    return Quotas(max_storage_bytes=storage, max_concurrent_jobs=jobs, retention_days=retention)


def storage_used(session: Session, organization_id: uuid.UUID) -> int:
    """Bytes the organization's datasets, model versions and batch outputs take."""
    return (
        dataset_repository.stored_bytes(session, organization_id)
        + registry_repository.stored_bytes(session, organization_id)
        + batch_repository.stored_bytes(session, organization_id)
    )


def active_jobs(session: Session, organization_id: uuid.UUID) -> int:
    """Queued or running training jobs and batch predictions, plus running studies."""
    return (
        training_repository.count_active_outside_studies(session, organization_id)
        + tuning_repository.count_running(session, organization_id)
        + batch_repository.count_active(session, organization_id)
    )


def usage_of(session: Session, organization_id: uuid.UUID) -> Usage:
    """What the organization uses now."""
    return Usage(
        storage_bytes=storage_used(session, organization_id),
        active_jobs=active_jobs(session, organization_id),
    )


def lock(session: Session, organization_id: uuid.UUID) -> Organization:
    """The organization, locked until the transaction ends."""
    organization = repository.lock(session, organization_id)
    if organization is None:
        raise NotFoundError("organization", organization_id)
    return organization


def upload_limit(session: Session, settings: Settings, organization_id: uuid.UUID) -> UploadLimit:
    """The smaller of the upload limit and the storage quota's room, for a streamed upload
    to stop at (:func:`reserve_storage` checks again, under the lock, once it landed)."""
    upload_refusal = f"the upload is over the {settings.max_upload_mb} MB upload limit"
    quota = _quotas(session, settings, organization_id).max_storage_bytes
    if quota is None:
        return UploadLimit(settings.max_upload_bytes, upload_refusal)
    used = storage_used(session, organization_id)
    room = max(quota - used, 0)
    if room >= settings.max_upload_bytes:
        return UploadLimit(settings.max_upload_bytes, upload_refusal)
    return UploadLimit(room, _storage_refusal(quota, used))


def reserve_storage(
    session: Session, settings: Settings, organization_id: uuid.UUID, size_bytes: int
) -> None:
    """Refuse (413) ``size_bytes`` more that would not fit the organization's storage
    quota, deciding under its lock; the caller records them in the same transaction."""
    if _quotas(session, settings, organization_id).max_storage_bytes is None:
        return
    quota = quotas_of(lock(session, organization_id), settings).max_storage_bytes
    if quota is None:
        return
    used = storage_used(session, organization_id)
    if used + size_bytes > quota:
        raise PayloadTooLargeError(_storage_refusal(quota, used))


def reserve_job_slot(session: Session, settings: Settings, organization_id: uuid.UUID) -> None:
    """Refuse (409) one more job when the organization's concurrent-jobs quota is reached,
    deciding under its lock; the caller adds the job in the same transaction."""
    if _quotas(session, settings, organization_id).max_concurrent_jobs is None:
        return
    limit = quotas_of(lock(session, organization_id), settings).max_concurrent_jobs
    if limit is None:
        return
    active = active_jobs(session, organization_id)
    if active >= limit:
        raise ConflictError(
            f"the organization's concurrent-jobs quota is {limit} and {active} "
            f"{'job is' if active == 1 else 'jobs are'} queued or running; "
            "wait for one to end or cancel one"
        )


def _quotas(session: Session, settings: Settings, organization_id: uuid.UUID) -> Quotas:
    # Unlocked: requests of an organization without a quota (the default) never queue
    # behind one another on its row.
    organization = repository.get(session, organization_id)
    if organization is None:
        raise NotFoundError("organization", organization_id)
    return quotas_of(organization, settings)


def _storage_refusal(quota: int, used: int) -> str:
    return (
        f"the upload would exceed the organization's storage quota of {quota:,} bytes "
        f"({used:,} used, {max(quota - used, 0):,} left)"
    )

"""Stored files against the rows they belong to, in both directions.

Every file lives under ``orgs/<organization>/<kind>/<row id>/``. A folder whose row is
gone is an orphan (a crash between deleting a row and its files, or between writing
files and saving their row): it is deleted once its newest file is older than the grace
period, so an upload or a training run that writes its files before committing its row
is never raced. A row whose file is gone is never deleted (it is the user's record): a
dataset is marked ``failed`` with the reason, a model version is reported in the log.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from dlp.batch.models import BatchPrediction
from dlp.datasets.models import Dataset
from dlp.housekeeping import repository
from dlp.registry.models import Model
from dlp.storage import FileStore, StoredFile
from dlp.training.models import TrainingJob

log = structlog.get_logger(__name__)

ROOT = "orgs"
# The folder kinds under an organization, and the table holding their rows.
KINDS: dict[str, type[Any]] = {
    "datasets": Dataset,
    "models": Model,
    "jobs": TrainingJob,
    "batch-predictions": BatchPrediction,
}
MISSING_DATASET_FILE = "its file is missing from the file store"


@dataclass
class Folder:
    """The files of one row: ``orgs/<organization_id>/<kind>/<row_id>/``."""

    organization_id: str
    kind: str
    row_id: uuid.UUID
    files: list[StoredFile] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """The folder's key prefix."""
        return f"{ROOT}/{self.organization_id}/{self.kind}/{self.row_id}"

    @property
    def newest(self) -> datetime:
        """When a file of the folder was last written."""
        return max(stored.modified_at for stored in self.files)


@dataclass
class Listing:
    """Every key of the store under ``orgs/``, grouped by the row it belongs to."""

    keys: set[str]
    folders: dict[str, list[Folder]]

    def of_kind(self, kind: str) -> list[Folder]:
        """The folders of one kind."""
        return self.folders.get(kind, [])


def list_store(store: FileStore) -> Listing:
    """Walk the store once; keys outside the ``orgs/<org>/<kind>/<uuid>/`` layout are
    left out of the folders (and so never deleted)."""
    keys: set[str] = set()
    by_prefix: dict[str, Folder] = {}
    for stored in store.iter_keys(ROOT):
        keys.add(stored.key)
        parts = stored.key.split("/")
        if len(parts) < 5 or parts[2] not in KINDS:
            continue
        try:
            row_id = uuid.UUID(parts[3])
        except ValueError:
            continue
        prefix = "/".join(parts[:4])
        folder = by_prefix.get(prefix)
        if folder is None:
            folder = by_prefix[prefix] = Folder(parts[1], parts[2], row_id)
        folder.files.append(stored)
    folders: dict[str, list[Folder]] = defaultdict(list)
    for folder in by_prefix.values():
        folders[folder.kind].append(folder)
    return Listing(keys=keys, folders=dict(folders))


def rows_present(session: Session, kind: str, folders: Iterable[Folder]) -> set[uuid.UUID]:
    """The row ids of ``folders`` that still have a row (or, for models, that a tuning
    trial still holds unregistered)."""
    present = repository.existing_ids(session, KINDS[kind], {f.row_id for f in folders})
    if kind == "models":
        present |= repository.unregistered_trial_model_ids(session)
    return present


def delete_orphans(
    store: FileStore, folders: list[Folder], present: set[uuid.UUID], *, older_than: datetime
) -> int:
    """Delete the folders without a row whose newest file is older than ``older_than``;
    returns how many."""
    deleted = 0
    for folder in folders:
        if folder.row_id in present or folder.newest >= older_than:
            continue
        store.delete_prefix(folder.prefix)
        log.info("housekeeping.orphan_deleted", prefix=folder.prefix, files=len(folder.files))
        deleted += 1
    return deleted


def flag_missing_files(session: Session, listing: Listing, *, created_before: datetime) -> int:
    """Mark ready datasets whose file is gone ``failed``; returns how many.

    Only rows created before ``created_before`` (before the listing, less the grace
    period) are judged: a newer row's file may have been written after the walk.
    """
    missing = [
        row_id
        for row_id, key in repository.ready_dataset_files(session, created_before)
        if key not in listing.keys
    ]
    if missing:
        log.warning("housekeeping.dataset_files_missing", dataset_ids=[str(i) for i in missing])
    return repository.mark_datasets_failed(session, missing, reason=MISSING_DATASET_FILE)


def models_missing_files(session: Session, listing: Listing, *, created_before: datetime) -> int:
    """Report (in the log) model versions one of whose files is gone; returns how many.

    They are neither deleted nor changed: the record of what was trained stays, for an
    operator to restore the files from a backup or delete the version.
    """
    missing = [
        str(row_id)
        for row_id, prefix, names in repository.model_files(session, created_before)
        if any(f"{prefix}/{name}" not in listing.keys for name in names)
    ]
    if missing:
        log.warning("housekeeping.model_files_missing", model_ids=missing)
    return len(missing)

"""Business rules of datasets: accept, validate and profile uploads; list, read, delete."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
from sqlalchemy.orm import Session

from dlp.audit import service as audit
from dlp.auth.service import Principal
from dlp.batch import repository as batch_repository
from dlp.config import Settings
from dlp.datasets import repository
from dlp.datasets.archive import profile_image_archive
from dlp.datasets.models import Dataset
from dlp.datasets.profile import iter_tables, profile_csv, profile_parquet, read_table
from dlp.datasets.schemas import DatasetOut
from dlp.db import run_after_commit
from dlp.errors import (
    ConflictError,
    DLPError,
    NotFoundError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from dlp.ml.image_archive import ArchiveLimits, ImageArchive, open_image_archive
from dlp.organizations import quotas
from dlp.organizations.quotas import UploadLimit
from dlp.storage import FileStore
from dlp.training import repository as training_repository
from dlp.tuning import repository as tuning_repository

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".zip": "zip"}
KINDS = {"tabular", "text", "image"}
IMAGE_CHUNK = 256
MAX_NAME_LENGTH = 255
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_PATH_SEPARATORS = re.compile(r"[/\\]")


def dataset_prefix(organization_id: uuid.UUID, dataset_id: uuid.UUID) -> str:
    """The store folder of one dataset (organization first, so tenants never share keys)."""
    return f"orgs/{organization_id}/datasets/{dataset_id}"


def file_format_of(filename: str) -> str:
    """``csv``, ``parquet`` or ``zip`` from the file name; 415 for anything else."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in FORMATS:
        raise UnsupportedMediaTypeError(
            f"unsupported file type {suffix or '(none)'!r}; upload .csv, .parquet "
            "or a .zip of images (one folder per class)"
        )
    return FORMATS[suffix]


def storage_key(organization_id: uuid.UUID, dataset_id: uuid.UUID, filename: str) -> str:
    """Where the original bytes of an upload go (never derived from the user's file name)."""
    file_format = file_format_of(filename)
    return f"{dataset_prefix(organization_id, dataset_id)}/original.{file_format}"


@dataclass(frozen=True)
class DatasetProfile:
    """What validation learned about an upload: its row (or image) count and schema."""

    n_rows: int
    schema: dict[str, Any]


def profile_file(
    store: FileStore, settings: Settings, key: str, *, file_format: str, kind: str
) -> DatasetProfile:
    """Validate and profile a stored upload; any problem raises a contract error."""

    def open_file() -> BinaryIO:
        return store.open_reader(key)

    if kind == "image":
        archive = profile_image_archive(
            open_file,
            max_entries=settings.max_archive_entries,
            max_uncompressed_bytes=settings.max_archive_uncompressed_mb * 2**20,
            max_compression_ratio=settings.max_compression_ratio,
            max_image_pixels=settings.max_image_pixels,
        )
        return DatasetProfile(n_rows=int(archive["n_images"]), schema=archive)
    table = profile_csv(open_file) if file_format == "csv" else profile_parquet(open_file)
    return DatasetProfile(n_rows=table.n_rows, schema=table.as_schema())


def check_name_and_kind(name: str | None, kind: str | None, filename: str) -> tuple[str, str]:
    """The dataset's name (default: the file name) and kind (default from the file type).

    A given name is refused if it holds control characters or is too long; a name taken
    from the file name is cut to its last path component, cleaned and shortened (it is
    for display only: storage keys never come from it).
    """
    if name:
        resolved_name = name.strip()
        if _CONTROL_CHARACTERS.search(resolved_name):
            raise ValidationError("the dataset name must not contain control characters")
        if len(resolved_name) > MAX_NAME_LENGTH:
            raise ValidationError(f"the dataset name is longer than {MAX_NAME_LENGTH} characters")
    else:
        base = _PATH_SEPARATORS.split(filename)[-1]
        resolved_name = _CONTROL_CHARACTERS.sub("", base).strip()[:MAX_NAME_LENGTH] or "dataset"
    if not resolved_name:
        raise ValidationError("the dataset name must not be blank")
    file_format = file_format_of(filename)
    default_kind = "image" if file_format == "zip" else "tabular"
    resolved_kind = kind or default_kind
    if resolved_kind not in KINDS:
        raise ValidationError("kind must be one of tabular, text, image")
    if (resolved_kind == "image") != (file_format == "zip"):
        raise ValidationError(
            "image datasets are .zip files of one folder per class; "
            "tabular and text datasets are .csv or .parquet"
        )
    return resolved_name, resolved_kind


def upload_limit(session: Session, settings: Settings, principal: Principal) -> UploadLimit:
    """How large the caller's next upload may be: the upload limit, or less where the
    organization's storage quota leaves less room."""
    return quotas.upload_limit(session, settings, principal.organization_id)


def create_dataset(
    session: Session,
    settings: Settings,
    principal: Principal,
    *,
    dataset_id: uuid.UUID,
    name: str,
    kind: str,
    key: str,
    size_bytes: int,
    profile: DatasetProfile,
) -> Dataset:
    """Record an uploaded, profiled file, if it fits the organization's storage quota."""
    quotas.reserve_storage(session, settings, principal.organization_id, size_bytes)
    file_format = key.rsplit(".", 1)[-1]
    dataset = repository.add(
        session,
        Dataset(
            id=dataset_id,
            organization_id=principal.organization_id,
            created_by=principal.user.id,
            name=name,
            kind=kind,
            file_format=file_format,
            file_key=key,
            status="ready",
            size_bytes=size_bytes,
            n_rows=profile.n_rows,
            profile=profile.schema,
        ),
    )
    return dataset


def get_dataset(
    session: Session, *, dataset_id: uuid.UUID, organization_id: uuid.UUID
) -> Dataset | None:
    """The organization's dataset, or None (for the worker, which acts for the job's owner)."""
    return repository.get(session, dataset_id=dataset_id, organization_id=organization_id)


def get_dataset_or_raise(session: Session, principal: Principal, dataset_id: uuid.UUID) -> Dataset:
    """The organization's dataset; 404 for one that is missing or another tenant's."""
    dataset = repository.get(
        session, dataset_id=dataset_id, organization_id=principal.organization_id
    )
    if dataset is None:
        raise NotFoundError("dataset", dataset_id)
    return dataset


def list_datasets(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[Dataset], int]:
    """A page of the organization's datasets."""
    return repository.list_page(
        session, organization_id=principal.organization_id, limit=limit, offset=offset
    )


def delete_dataset(
    session: Session, store: FileStore, principal: Principal, dataset_id: uuid.UUID
) -> None:
    """Delete a dataset and, once that commits, its files; refused while jobs use it."""
    dataset = get_dataset_or_raise(session, principal, dataset_id)
    if tuning_repository.count_running_for_dataset(session, dataset.id):
        raise ConflictError("the dataset is used by a running tuning study")
    if training_repository.count_active_for_dataset(session, dataset.id):
        raise ConflictError("the dataset is used by queued or running training jobs")
    if batch_repository.count_active_for_dataset(session, dataset.id):
        raise ConflictError("the dataset is used by queued or running batch predictions")
    prefix = dataset_prefix(dataset.organization_id, dataset.id)
    repository.delete(session, dataset)
    audit.record_act(
        session,
        principal,
        "dataset.deleted",
        target_type="dataset",
        target_id=dataset.id,
        name=dataset.name,
    )
    run_after_commit(session, lambda: store.delete_prefix(prefix))


def iter_dataset_bytes(store: FileStore, dataset: Dataset) -> Iterator[bytes]:
    """The original upload, chunk by chunk.

    The first chunk is read before returning, so a stored file gone missing fails the
    request with the contract's error instead of cutting a 200 answer short.
    """
    chunks = store.iter_chunks(dataset.file_key)
    try:
        first = next(chunks, b"")
    except NotFoundError:
        raise DLPError(f"dataset {dataset.id} has lost its stored file") from None
    return itertools.chain([first], chunks)


def open_dataset_file(store: FileStore, dataset: Dataset) -> BinaryIO:
    """The stored upload as a seekable binary file (image archives are read in place)."""
    return store.open_reader(dataset.file_key)


def load_table(store: FileStore, dataset: Dataset) -> pa.Table:
    """The whole dataset as an Arrow table for training (decimals as float32)."""
    with store.open_reader(dataset.file_key) as handle:
        return read_table(
            handle,
            file_format=dataset.file_format,
            columns=dataset.profile.get("columns", []),
            float_type=pa.float32(),
        )


def archive_limits(settings: Settings) -> ArchiveLimits:
    """The image-archive limits uploads were checked against, for workers to honour too."""
    return ArchiveLimits(
        max_entries=settings.max_archive_entries,
        max_uncompressed_bytes=settings.max_archive_uncompressed_mb * 2**20,
        max_compression_ratio=settings.max_compression_ratio,
        max_image_pixels=settings.max_image_pixels,
    )


@contextmanager
def dataset_tables(
    store: FileStore, dataset: Dataset, *, rows: int, limits: ArchiveLimits
) -> Iterator[Iterator[pa.Table]]:
    """The dataset as a stream of tables of at most ``rows`` rows, for batch work.

    Tabular and text datasets keep their columns; an image archive becomes the
    columns ``path`` (the entry's name), ``folder`` (its class folder) and ``image``
    (its encoded bytes), in archive order, at most ``IMAGE_CHUNK`` images a table.
    """
    with store.open_reader(dataset.file_key) as handle:
        if dataset.kind != "image":
            yield iter_tables(
                handle,
                file_format=dataset.file_format,
                columns=dataset.profile.get("columns", []),
                rows=rows,
            )
            return
        with open_image_archive(handle, limits) as archive:
            yield _image_tables(archive, rows)


def _image_tables(archive: ImageArchive, rows: int) -> Iterator[pa.Table]:
    # Encoded images run to megabytes each: a chunk holds at most IMAGE_CHUNK of them.
    step = min(rows, IMAGE_CHUNK)
    for start in range(0, len(archive.images), step):
        images = archive.images[start : start + step]
        yield pa.table(
            {
                "path": pa.array([image.name for image in images], pa.string()),
                "folder": pa.array([image.label for image in images], pa.string()),
                "image": pa.array([archive.read(image) for image in images], pa.binary()),
            }
        )


def to_out(dataset: Dataset) -> DatasetOut:
    """The API view of a dataset."""
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        kind=dataset.kind,
        format=dataset.file_format,
        status=dataset.status,
        size_bytes=dataset.size_bytes,
        n_rows=dataset.n_rows,
        schema_=dataset.profile,
        error_message=dataset.error_message,
        created_at=dataset.created_at,
    )

"""Business rules of the registry: register versions, read, list, delete."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import dlp
from dlp.auth.service import Principal
from dlp.db import run_after_commit
from dlp.errors import DLPError, NotFoundError
from dlp.registry import repository
from dlp.registry.models import Model
from dlp.registry.schemas import ModelOut
from dlp.storage import FileStore

VERSION_RETRIES = 5


class ModelIntegrityError(DLPError):
    """A model file does not match the digest recorded when it was registered."""


def model_prefix(organization_id: uuid.UUID, model_id: uuid.UUID) -> str:
    """The store folder of one model version."""
    return f"orgs/{organization_id}/models/{model_id}"


def store_model_files(
    store: FileStore, prefix: str, files: Mapping[str, bytes]
) -> dict[str, dict[str, Any]]:
    """Write a model's files and return each one's sha256 and size."""
    digests: dict[str, dict[str, Any]] = {}
    for name, data in files.items():
        store.write_bytes(f"{prefix}/{name}", data)
        digests[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return digests


def register_version(session: Session, model: Model) -> Model:
    """Insert ``model`` as the next version of its name (safe against concurrent registrations)."""
    model.dlp_version = dlp.__version__
    for _attempt in range(VERSION_RETRIES):
        model.version = repository.next_version(
            session, organization_id=model.organization_id, name=model.name
        )
        savepoint = session.begin_nested()
        try:
            repository.add(session, model)
        except IntegrityError:
            savepoint.rollback()
            continue
        savepoint.commit()
        return model
    raise DLPError(f"could not allocate a version number for model '{model.name}'")


def load_model_files(store: FileStore, model: Model) -> dict[str, bytes]:
    """A model's files, each checked against its recorded sha256."""
    files: dict[str, bytes] = {}
    for name, meta in model.files.items():
        data = store.read_bytes(f"{model.file_prefix}/{name}")
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ModelIntegrityError(
                f"model {model.id} file {name} does not match its recorded sha256; refusing to load"
            )
        files[name] = data
    return files


EXPORT_SUFFIXES = {"onnx": "onnx", "torchscript": "pt"}


def export_model_file(store: FileStore, model: Model, export_format: str) -> bytes:
    """The model's network as ONNX or TorchScript, built from its checked files."""
    from dlp.ml.export import export_model

    return export_model(load_model_files(store, model), export_format)  # type: ignore[arg-type]


def get_model_or_raise(session: Session, principal: Principal, model_id: uuid.UUID) -> Model:
    """The organization's model; 404 for one that is missing or another tenant's."""
    model = repository.get(session, model_id=model_id, organization_id=principal.organization_id)
    if model is None:
        raise NotFoundError("model", model_id)
    return model


def list_models(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[Model], int]:
    """A page of the organization's model versions."""
    return repository.list_page(
        session, organization_id=principal.organization_id, limit=limit, offset=offset
    )


def delete_model(
    session: Session, store: FileStore, principal: Principal, model_id: uuid.UUID
) -> None:
    """Delete a model version and, once that commits, its files."""
    model = get_model_or_raise(session, principal, model_id)
    prefix = model.file_prefix
    repository.delete(session, model)
    run_after_commit(session, lambda: store.delete_prefix(prefix))


def to_out(model: Model) -> ModelOut:
    """The API view of a model version."""
    return ModelOut(
        id=model.id,
        name=model.name,
        version=model.version,
        task=model.task,
        type=model.type,
        data_kind=model.data_kind,
        dataset_id=model.dataset_id,
        job_id=model.job_id,
        metrics=model.metrics,
        evaluation=model.evaluation,
        input_schema=model.input_schema,
        classes=model.classes,
        config=model.config,
        size_bytes=model.size_bytes,
        dlp_version=model.dlp_version,
        created_at=model.created_at,
    )

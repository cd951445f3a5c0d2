"""Business rules of the registry: register versions, read, list, delete; aliases and
traffic splits, and which version answers a registry prediction."""

from __future__ import annotations

import hashlib
import math
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import dlp
from dlp.audit import service as audit
from dlp.auth.models import Role
from dlp.auth.service import Principal
from dlp.db import run_after_commit, utcnow
from dlp.errors import ConflictError, DLPError, NotFoundError, ValidationError
from dlp.registry import repository
from dlp.registry.models import Model, ModelAlias, TrafficSplit
from dlp.registry.schemas import (
    ALIAS_PATTERN,
    MAX_TRAFFIC_VERSIONS,
    ModelOut,
    QuantizationOut,
    RegistryNameOut,
)
from dlp.storage import FileStore

VERSION_RETRIES = 5
PRODUCTION_ALIAS = "production"


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
    uses = aliases_pointing_at(session, model)
    if uses:
        raise ConflictError(
            f"version {model.version} of {model.name!r} is still served by {', '.join(uses)}; "
            "move those first"
        )
    prefix = model.file_prefix
    repository.delete(session, model)
    audit.record_act(
        session,
        principal,
        "model.deleted",
        target_type="model",
        target_id=model.id,
        name=model.name,
        version=model.version,
    )
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
        quantization=(
            None
            if model.quantization is None
            else QuantizationOut.model_validate(model.quantization)
        ),
        serving_variant=model.serving_variant,
    )


def versions_or_raise(session: Session, principal: Principal, name: str) -> list[Model]:
    """Every version of the organization's model ``name``; 404 when it has none."""
    versions = repository.list_versions(
        session, organization_id=principal.organization_id, name=name
    )
    if not versions:
        raise NotFoundError("model name", name)
    return versions


def version_or_raise(session: Session, principal: Principal, name: str, version: int) -> Model:
    """Version ``version`` of ``name``; 404 naming both when it does not exist."""
    model = repository.get_version(
        session, organization_id=principal.organization_id, name=name, version=version
    )
    if model is None:
        raise NotFoundError(f"version {version} of model", name)
    return model


def describe_name(session: Session, principal: Principal, name: str) -> RegistryNameOut:
    """A model name's versions, aliases and traffic split."""
    versions = versions_or_raise(session, principal, name)
    organization_id = principal.organization_id
    aliases = repository.list_aliases(session, organization_id=organization_id, name=name)
    split = repository.get_traffic(session, organization_id=organization_id, name=name)
    return RegistryNameOut(
        name=name,
        versions=[to_out(model) for model in versions],
        aliases={alias.alias: alias.version for alias in aliases},
        traffic=dict(split.weights) if split is not None else None,
    )


def set_alias(
    session: Session, principal: Principal, name: str, alias: str, version: int
) -> ModelAlias:
    """Point ``alias`` of ``name`` at ``version`` (which must exist)."""
    principal.require(Role.MEMBER)
    if re.fullmatch(ALIAS_PATTERN, alias) is None:
        raise ValidationError(
            f"alias {alias!r}: use a letter, then up to 63 letters, digits, '_', '.' or '-'"
        )
    version_or_raise(session, principal, name, version)
    return repository.put_alias(
        session,
        ModelAlias(
            organization_id=principal.organization_id,
            name=name,
            alias=alias,
            version=version,
            updated_by=principal.user.id,
            updated_at=utcnow(),
        ),
    )


def remove_alias(session: Session, principal: Principal, name: str, alias: str) -> None:
    """Delete an alias; 404 when it does not exist."""
    principal.require(Role.MEMBER)
    found = repository.get_alias(
        session, organization_id=principal.organization_id, name=name, alias=alias
    )
    if found is None:
        raise NotFoundError(f"alias {alias!r} of model", name)
    repository.delete_alias(session, found)


def set_traffic(
    session: Session, principal: Principal, name: str, weights: dict[str, float]
) -> TrafficSplit:
    """Split registry predictions of ``name`` between versions by weight."""
    principal.require(Role.MEMBER)
    if not weights or len(weights) > MAX_TRAFFIC_VERSIONS:
        raise ValidationError(
            f'give 1 to {MAX_TRAFFIC_VERSIONS} versions with weights, e.g. {{"1": 90, "2": 10}}'
        )
    clean: dict[str, float] = {}
    for key, weight in weights.items():
        if not key.isdigit() or int(key) < 1:
            raise ValidationError(f"traffic key {key!r} is not a version number")
        if not math.isfinite(weight) or weight < 0:
            raise ValidationError(f"the weight of version {key} must be a finite number >= 0")
        version_or_raise(session, principal, name, int(key))
        clean[str(int(key))] = float(weight)
    if sum(clean.values()) <= 0:
        raise ValidationError("at least one version needs a weight above 0")
    return repository.put_traffic(
        session,
        TrafficSplit(
            organization_id=principal.organization_id,
            name=name,
            weights=clean,
            updated_by=principal.user.id,
            updated_at=utcnow(),
        ),
    )


def clear_traffic(session: Session, principal: Principal, name: str) -> None:
    """Remove the traffic split (registry predictions go to ``production`` again)."""
    principal.require(Role.MEMBER)
    split = repository.get_traffic(session, organization_id=principal.organization_id, name=name)
    if split is None:
        raise NotFoundError("traffic split of model", name)
    repository.delete_traffic(session, split)


def get_traffic_or_raise(session: Session, principal: Principal, name: str) -> TrafficSplit:
    """The traffic split of ``name``; 404 when there is none."""
    split = repository.get_traffic(session, organization_id=principal.organization_id, name=name)
    if split is None:
        raise NotFoundError("traffic split of model", name)
    return split


def serving_weights(session: Session, principal: Principal, name: str) -> dict[int, float]:
    """How registry predictions of ``name`` are shared between versions: the traffic
    split when there is one, else all to the ``production`` alias; else 409 saying how."""
    organization_id = principal.organization_id
    split = repository.get_traffic(session, organization_id=organization_id, name=name)
    if split is not None:
        return {int(version): float(weight) for version, weight in split.weights.items()}
    production = repository.get_alias(
        session, organization_id=organization_id, name=name, alias=PRODUCTION_ALIAS
    )
    if production is not None:
        return {production.version: 1.0}
    versions_or_raise(session, principal, name)
    raise ConflictError(
        f"model {name!r} has no {PRODUCTION_ALIAS!r} alias and no traffic split: "
        f'PUT /api/v1/registry/{name}/aliases/{PRODUCTION_ALIAS} {{"version": N}}'
    )


def pick_version(weights: dict[int, float]) -> int:
    """A version drawn at random by weight."""
    versions = list(weights)
    # Traffic shares, not secrets: a plain PRNG is the right tool.
    return random.choices(versions, weights=[weights[v] for v in versions])[0]  # noqa: S311


def serving_version(
    session: Session, principal: Principal, name: str, *, version: int | None = None
) -> Model:
    """The version that answers a registry prediction of ``name``: ``version`` when given,
    else one drawn from :func:`serving_weights`."""
    if version is None:
        version = pick_version(serving_weights(session, principal, name))
    return version_or_raise(session, principal, name, version)


def aliases_pointing_at(session: Session, model: Model) -> list[str]:
    """Aliases and traffic entries that would dangle if ``model`` were deleted."""
    organization_id = model.organization_id
    uses = [
        f"alias {alias.alias!r}"
        for alias in repository.list_aliases(
            session, organization_id=organization_id, name=model.name
        )
        if alias.version == model.version
    ]
    split = repository.get_traffic(session, organization_id=organization_id, name=model.name)
    if split is not None and split.weights.get(str(model.version), 0) > 0:
        uses.append("the traffic split")
    return uses

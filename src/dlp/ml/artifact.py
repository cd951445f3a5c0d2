"""The two public entry points: ``train_tabular`` makes a model artifact, ``load_predictor``
reads one back.

An artifact is two files and never a pickle: ``model.safetensors`` (weights) and
``model.json`` (format version, architecture, preprocessing state, classes, metrics).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pydantic
import safetensors.torch
import torch
from pydantic import BaseModel, ConfigDict, Field

import dlp
from dlp.errors import ValidationError
from dlp.ml.architectures import build_model, count_parameters
from dlp.ml.config import (
    TASKS,
    DataKind,
    InputSpec,
    ModelConfig,
    ResolvedModelConfig,
    Task,
    TrainingConfig,
    resolve_model_config,
)
from dlp.ml.distributed import fit_data_parallel, plan_for
from dlp.ml.encoders import InputEncoder, load_encoder
from dlp.ml.inference import Prediction, Predictor
from dlp.ml.objectives import ClassificationObjective, Objective, RegressionObjective
from dlp.ml.split import split_train_validation
from dlp.ml.tabular import TabularPreprocessor
from dlp.ml.targets import (
    ClassificationTarget,
    ClassificationTargetState,
    ClassLabel,
    RegressionTarget,
    TargetState,
    regression_values,
    usable_target_rows,
)
from dlp.ml.trainer import TensorSplit, TrainingCallback, fit, seeded

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "MIN_ROWS",
    "WEIGHTS_FILE",
    "ModelManifest",
    "Prediction",
    "Predictor",
    "RunOptions",
    "TrainedModel",
    "fit_target",
    "load_predictor",
    "package_model",
    "read_manifest",
    "train_tabular",
]

FORMAT: Final = "dlp.model"
FORMAT_VERSION: Final = 1
MANIFEST_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
MIN_ROWS = 10


class ModelManifest(BaseModel):
    """The content of ``model.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["dlp.model"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    data_kind: DataKind
    task: Task
    model: ResolvedModelConfig
    input_spec: InputSpec
    n_outputs: int = Field(ge=1)
    preprocessing: dict[str, Any]
    target: TargetState
    metrics: dict[str, float]
    best_epoch: int = Field(ge=1)
    epochs_run: int = Field(ge=1)
    versions: dict[str, str] = Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _target_matches_task(self) -> ModelManifest:
        if (self.target.kind == "classification") != (self.task == "classification"):
            raise ValueError(f"a {self.task} model cannot have a {self.target.kind} target")
        return self


@dataclass(frozen=True)
class RunOptions:
    """Where and how one training run executes (not part of the model's config)."""

    device: torch.device | None = None
    """None trains on the CPU; ``dlp.ml.device.resolve_device`` picks one from a request."""
    resume_from: bytes | None = None
    """A checkpoint from ``TrainingCallback.on_checkpoint`` of an earlier run of this job."""
    devices: int = 1
    """Data-parallel processes (``dlp.ml.distributed``); 1 trains in this process."""


@dataclass(frozen=True)
class TrainedModel:
    """A freshly trained model: its artifact files and what the registry shows about it."""

    files: dict[str, bytes]
    metrics: dict[str, float]
    input_schema: list[dict[str, str]]
    classes: list[ClassLabel] | None
    model_type: str
    n_parameters: int
    epochs_run: int
    best_epoch: int
    task: Task
    dropped_columns: list[dict[str, str]]
    data_kind: DataKind = "tabular"
    evaluation: dict[str, Any] = field(default_factory=dict)


def train_tabular(
    table: pa.Table,
    *,
    target: str,
    task: Task,
    model: ModelConfig,
    training: TrainingConfig,
    callback: TrainingCallback | None = None,
    run: RunOptions | None = None,
) -> TrainedModel:
    """Fit preprocessing and a model on ``table`` to predict column ``target``.

    Raises ValidationError when the data cannot serve the request, TrainingError when
    training diverges, and ``TrainingCancelled`` when the callback asks to stop.
    """
    _check_request(table, target, task)
    usable = usable_target_rows(table.column(target), name=target, task=task)
    n_usable = int(usable.sum())
    if n_usable < MIN_ROWS:
        raise ValidationError(
            f"training needs at least {MIN_ROWS} rows with a value in {target!r}; "
            f"the dataset has {n_usable}"
        )
    if n_usable < table.num_rows:
        table = table.filter(pa.array(usable))

    encoder, objective, targets, train_rows, val_rows = fit_target(
        table, target=target, task=task, training=training
    )
    preprocessor = TabularPreprocessor.fit(table, exclude=frozenset([target]), rows=train_rows)
    # Encode straight into [train rows | validation rows] order: both splits are then
    # views of one matrix, and the table is dropped before training starts.
    order = np.concatenate([train_rows, val_rows])
    features = torch.from_numpy(preprocessor.transform(table, rows=order))
    del table
    pa.default_memory_pool().release_unused()
    targets = targets[torch.from_numpy(order)]
    n_train = len(train_rows)
    return package_model(
        data_kind="tabular",
        task=task,
        model=model,
        training=training,
        encoder=preprocessor,
        target=encoder,
        objective=objective,
        train=TensorSplit(features[:n_train], targets[:n_train]),
        validation=TensorSplit(features[n_train:], targets[n_train:]),
        callback=callback,
        dropped_columns=preprocessor.dropped_columns,
        run=run,
    )


def fit_target(
    table: pa.Table, *, target: str, task: Task, training: TrainingConfig
) -> tuple[
    ClassificationTarget | RegressionTarget,
    Objective,
    torch.Tensor,
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """The target's encoder, loss and encoded values, and the (train, validation) rows.

    Classification splits stratified by class; regression standardises the target with
    statistics of the training rows only.
    """
    if task == "classification":
        classes = ClassificationTarget.fit(table.column(target), name=target)
        labels = classes.encode(table.column(target), name=target)
        train_rows, val_rows = split_train_validation(
            table.num_rows, fraction=training.validation_fraction, seed=training.seed, strata=labels
        )
        return classes, ClassificationObjective(), torch.from_numpy(labels), train_rows, val_rows
    values = regression_values(table.column(target), name=target)
    train_rows, val_rows = split_train_validation(
        table.num_rows, fraction=training.validation_fraction, seed=training.seed
    )
    scale = RegressionTarget.fit(values[train_rows], name=target)
    objective = RegressionObjective(mean=scale.state.mean, std=scale.state.std)
    return scale, objective, torch.from_numpy(scale.encode(values)), train_rows, val_rows


def package_model(
    *,
    data_kind: DataKind,
    task: Task,
    model: ModelConfig,
    training: TrainingConfig,
    encoder: InputEncoder,
    target: ClassificationTarget | RegressionTarget,
    objective: Objective,
    train: TensorSplit,
    validation: TensorSplit,
    callback: TrainingCallback | None,
    dropped_columns: list[dict[str, str]] | None = None,
    run: RunOptions | None = None,
) -> TrainedModel:
    """Resolve the family, train it on encoded splits, and write the artifact files.

    Every data kind ends here once its encoder and target are fitted on the
    training split, so the loop, the manifest and the files are the same for all.
    """
    spec = encoder.input_spec
    resolved = resolve_model_config(model, data_kind=data_kind, spec=spec, n_rows=len(train))
    run = run or RunOptions()
    with seeded(training.seed):
        network = build_model(resolved, spec, target.n_outputs)
        if run.devices > 1:
            plan = plan_for(
                resolved,
                spec,
                target.n_outputs,
                objective=objective,
                training=training,
                devices=run.devices,
                device=run.device,
            )
            result = fit_data_parallel(
                network,
                plan,
                train=train,
                validation=validation,
                objective=objective,
                callback=callback,
                resume_from=run.resume_from,
            )
        else:
            result = fit(
                network,
                train=train,
                validation=validation,
                objective=objective,
                config=training,
                callback=callback,
                device=run.device,
                resume_from=run.resume_from,
            )
    network = network.cpu()
    manifest = ModelManifest(
        data_kind=data_kind,
        task=task,
        model=resolved,
        input_spec=spec,
        n_outputs=target.n_outputs,
        preprocessing=encoder.state_dict(),
        target=target.state,
        metrics=result.metrics,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        versions={"dlp": dlp.__version__, "torch": torch.__version__},
    )
    weights = {name: tensor.contiguous() for name, tensor in network.state_dict().items()}
    files = {
        MANIFEST_FILE: manifest.model_dump_json(indent=2).encode(),
        WEIGHTS_FILE: safetensors.torch.save(weights, metadata={"format": FORMAT}),
    }
    return TrainedModel(
        files=files,
        metrics=dict(result.metrics),
        input_schema=encoder.input_schema,
        classes=target.classes if isinstance(target, ClassificationTarget) else None,
        model_type=resolved.type,
        n_parameters=count_parameters(network),
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        task=task,
        dropped_columns=dropped_columns or [],
        data_kind=data_kind,
        evaluation=result.evaluation,
    )


def read_manifest(files: Mapping[str, bytes]) -> ModelManifest:
    """Parse and validate ``model.json``; ValidationError if absent, corrupt or unknown."""
    raw = files.get(MANIFEST_FILE)
    if raw is None:
        raise ValidationError(f"the model artifact has no {MANIFEST_FILE}")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{MANIFEST_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f"{MANIFEST_FILE} does not describe a dlp model")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValidationError(
            f"unsupported model format version {version!r}; this dlp reads version {FORMAT_VERSION}"
        )
    try:
        return ModelManifest.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ValidationError(
            f"{MANIFEST_FILE} is corrupt: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from exc


def load_predictor(files: Mapping[str, bytes]) -> Predictor:
    """Rebuild a ``Predictor`` from artifact files; ValidationError if they are not usable."""
    manifest = read_manifest(files)
    raw_weights = files.get(WEIGHTS_FILE)
    if raw_weights is None:
        raise ValidationError(f"the model artifact has no {WEIGHTS_FILE}")
    try:
        weights: dict[str, torch.Tensor] = safetensors.torch.load(bytes(raw_weights))
    except Exception as exc:  # safetensors raises several unrelated types on bad bytes
        raise ValidationError(f"{WEIGHTS_FILE} is unreadable: {exc}") from exc

    encoder = load_encoder(manifest.data_kind, manifest.preprocessing)
    target: ClassificationTarget | RegressionTarget
    if isinstance(manifest.target, ClassificationTargetState):
        target = ClassificationTarget(manifest.target)
    else:
        target = RegressionTarget(manifest.target)
    if (encoder.input_spec, target.n_outputs) != (manifest.input_spec, manifest.n_outputs):
        raise ValidationError(f"{MANIFEST_FILE} is inconsistent: input or output shape differs")

    network = build_model(manifest.model, manifest.input_spec, manifest.n_outputs)
    try:
        network.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ValidationError(f"{WEIGHTS_FILE} does not match {MANIFEST_FILE}: {exc}") from exc
    return Predictor(
        network=network,
        encoder=encoder,
        target=target,
        model_type=manifest.model.type,
        metrics=manifest.metrics,
    )


def _check_request(table: pa.Table, target: str, task: str) -> None:
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    names = table.column_names
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ValidationError(f"the dataset has two columns named {duplicate!r}")
    if target not in names:
        shown = ", ".join(repr(name) for name in names[:20])
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        raise ValidationError(
            f"target column {target!r} is not in the dataset (columns: {shown}{more})"
        )

"""Training checkpoints: the whole loop state as one safetensors blob, without pickle.

Every tensor (weights, optimizer moments, random generator states) is a safetensors
tensor named after its path in the state (``model/layers.0.weight``,
``optimizer/state/0/exp_avg``). Everything else (param groups, scheduler and
gradient-scaler settings, counters, metric history) is one JSON document in the
header's ``__metadata__["state"]``, where each tensor appears as ``{"$tensor": name}``,
each dict as ``{"$dict": [[key, value], ...]}`` (keys keep their int/str type) and each
tuple as ``{"$tuple": [...]}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from dlp.errors import ValidationError
from dlp.ml.config import TrainingConfig

FORMAT = "dlp.training-checkpoint"
FORMAT_VERSION = 1
_HEADER_SIZE_BYTES = 8


@dataclass
class LoopProgress:
    """The loop's own state: counters, the best epoch so far and the metric history."""

    epoch: int = 0
    step: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_weights: dict[str, Tensor] = field(default_factory=dict)
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingParts:
    """The live objects whose state a checkpoint captures and restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    grad_scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    device: torch.device


def run_fingerprint(config: TrainingConfig, train_rows: int) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes from it."""
    fingerprint: dict[str, Any] = {
        "optimizer": config.optimizer,
        "lr_schedule": config.lr_schedule,
        "batch_size": config.batch_size,
        "train_rows": train_rows,
        "early_stopping_metric": config.early_stopping_metric,  # the best score's meaning
    }
    if config.lr_schedule != "constant":
        fingerprint["epochs"] = config.epochs  # the schedule spans the planned epochs
    return fingerprint


def save_checkpoint(
    parts: TrainingParts, progress: LoopProgress, *, fingerprint: dict[str, Any]
) -> bytes:
    """Serialize the full training state after an epoch as one safetensors blob."""
    cuda = parts.device.type == "cuda"
    state: dict[str, Any] = {
        "fingerprint": fingerprint,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "grad_scaler": parts.grad_scaler.state_dict() if parts.grad_scaler is not None else None,
        "generator": parts.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(parts.device) if cuda else None,
        "progress": {
            "epoch": progress.epoch,
            "step": progress.step,
            "best_epoch": progress.best_epoch,
            "best_score": progress.best_score,
            "best_metrics": progress.best_metrics,
            "best_weights": progress.best_weights,
            "epochs_without_improvement": progress.epochs_without_improvement,
            "history": progress.history,
        },
    }
    tensors: dict[str, Tensor] = {}
    document = _pack(state, "", tensors)
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "state": json.dumps(document, separators=(",", ":")),
    }
    return safetensors.torch.save(tensors, metadata=metadata)


def load_checkpoint(
    blob: bytes, parts: TrainingParts, *, fingerprint: dict[str, Any]
) -> LoopProgress:
    """Restore ``parts`` from a checkpoint; returns the loop progress, ValidationError if unfit."""
    state = _read(blob)
    _check_fingerprint(state.get("fingerprint"), fingerprint)
    try:
        model_state = state["model"]
        progress = _progress(state["progress"])
        _check_weights(model_state, parts.model, "model")
        if progress.best_weights:
            _check_weights(progress.best_weights, parts.model, "best weights")
        parts.model.load_state_dict(model_state)
        parts.optimizer.load_state_dict(state["optimizer"])
        if parts.scheduler is not None:
            parts.scheduler.load_state_dict(state["scheduler"])
        if parts.grad_scaler is not None and state["grad_scaler"] is not None:
            parts.grad_scaler.load_state_dict(state["grad_scaler"])
        parts.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if parts.device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], parts.device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ValidationError(f"training checkpoint does not fit this run: {exc}") from exc
    progress.best_weights = {
        name: tensor.to(parts.device) for name, tensor in progress.best_weights.items()
    }
    return progress


def _read(blob: bytes) -> dict[str, Any]:
    try:
        header_size = int.from_bytes(blob[:_HEADER_SIZE_BYTES], "little")
        header = json.loads(blob[_HEADER_SIZE_BYTES : _HEADER_SIZE_BYTES + header_size])
        metadata = header["__metadata__"]
        if metadata["format"] != FORMAT:
            raise ValidationError("not a dlp training checkpoint")
        if metadata["version"] != str(FORMAT_VERSION):
            raise ValidationError(f"unsupported training checkpoint version {metadata['version']}")
        tensors = safetensors.torch.load(blob)
        state = _unpack(json.loads(metadata["state"]), tensors)
    except ValidationError:
        raise
    except Exception as exc:  # any decoding failure means a corrupt or foreign blob
        raise ValidationError(f"training checkpoint is unreadable: {exc}") from exc
    if not isinstance(state, dict):
        raise ValidationError("training checkpoint is unreadable: no state")
    return state


def _check_fingerprint(saved: object, current: dict[str, Any]) -> None:
    if not isinstance(saved, dict):
        raise ValidationError("training checkpoint is unreadable: no fingerprint")
    for key, value in current.items():
        if saved.get(key) != value:
            raise ValidationError(
                f"training checkpoint was made with {key}={saved.get(key)!r}; "
                f"this run has {key}={value!r}"
            )


def _check_weights(weights: dict[str, Tensor], model: nn.Module, what: str) -> None:
    expected = model.state_dict()
    if set(weights) != set(expected):
        differing = sorted(set(weights) ^ set(expected))[:5]
        raise ValidationError(
            f"training checkpoint's {what} do not match the model (names differ: {differing})"
        )
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise ValidationError(
                f"training checkpoint's {what} do not match the model: {name} has shape "
                f"{list(weights[name].shape)} in the checkpoint, {list(tensor.shape)} in the model"
            )


def _progress(raw: dict[str, Any]) -> LoopProgress:
    best_score = raw["best_score"]
    if best_score is not None:
        best_score = float(best_score)
    return LoopProgress(
        epoch=int(raw["epoch"]),
        step=int(raw["step"]),
        best_epoch=int(raw["best_epoch"]),
        best_score=best_score,
        best_metrics={str(k): float(v) for k, v in raw["best_metrics"].items()},
        best_weights={str(k): v for k, v in raw["best_weights"].items()},
        epochs_without_improvement=int(raw["epochs_without_improvement"]),
        history=[{str(k): float(v) for k, v in entry.items()} for entry in raw["history"]],
    )


def _pack(value: object, path: str, tensors: dict[str, Tensor]) -> object:
    if isinstance(value, Tensor):
        name = path.lstrip("/")
        while name in tensors:
            name += "'"
        # A private CPU copy: safetensors refuses tensors that share memory (tied weights).
        tensors[name] = value.detach().to("cpu", copy=True).contiguous()
        return {"$tensor": name}
    if isinstance(value, dict):
        return {
            "$dict": [[key, _pack(item, f"{path}/{key}", tensors)] for key, item in value.items()]
        }
    if isinstance(value, tuple):
        return {"$tuple": [_pack(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_pack(item, f"{path}/{i}", tensors) for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path or '/'}")


def _unpack(value: object, tensors: dict[str, Tensor]) -> object:
    if isinstance(value, list):
        return [_unpack(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$tuple" in value:
        return tuple(_unpack(item, tensors) for item in value["$tuple"])
    return {key: _unpack(item, tensors) for key, item in value["$dict"]}

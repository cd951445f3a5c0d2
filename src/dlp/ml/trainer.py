"""The generic training loop: mini-batches from in-memory tensors, callbacks, early stopping.

The loop knows nothing about data kinds or tasks: it gets tensors, a model and an
``Objective``. Side effects (progress, checkpoints, cancellation) go through a
``TrainingCallback``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dlp.errors import TrainingError, ValidationError
from dlp.ml.checkpoint import (
    LoopProgress,
    TrainingParts,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from dlp.ml.config import TrainingConfig
from dlp.ml.device import Precision, fits_on_device, resolve_precision
from dlp.ml.objectives import LossFunction, Objective
from dlp.ml.replicas import SOLO, Replicas
from dlp.ml.steps import build_optimizer, build_scheduler, clip_gradients_, shuffled_batches

CANCEL_CHECK_INTERVAL_S = 1.0
EVAL_CHUNK_ROWS = 16_384
EVAL_CHUNK_VALUES = 1 << 22  # input values per evaluation chunk: images get fewer rows
HIGHER_IS_BETTER = frozenset({"val_accuracy", "val_f1", "val_auc", "val_r2"})
"""Monitored metrics where larger is better; every other one (losses, errors) is minimised."""


class TrainingCancelled(Exception):  # noqa: N818 - the name the platform uses for this state
    """``TrainingCallback.should_stop`` asked the loop to stop; the caller decides what next."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"training cancelled during epoch {epoch}")
        self.epoch = epoch


class TrainingCallback:
    """Hooks the loop calls; every hook is a no-op unless overridden.

    Per epoch the loop calls ``on_epoch_complete(epoch, step, metrics)``, whose default
    forwards to ``on_epoch_end(epoch, metrics)``: override either one (not both).
    ``on_step`` and ``on_checkpoint`` cost nothing unless a subclass overrides them.
    """

    def on_train_start(self, total_epochs: int) -> None:
        """Called once before the first epoch."""

    def on_step(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Every ``progress_every_steps`` global steps: running epoch ``train_loss`` and ``lr``."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each epoch (1-based) with ``train_loss``, ``val_loss`` and ``val_*``."""

    def on_epoch_complete(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """After each epoch, with the global optimizer step; calls ``on_epoch_end`` by default."""
        self.on_epoch_end(epoch, metrics)

    def on_checkpoint(self, checkpoint: bytes, epoch: int) -> None:
        """After each epoch: the full training state, for ``fit(..., resume_from=checkpoint)``."""

    def should_stop(self) -> bool:
        """Polled each epoch and about once a second; True cancels training."""
        return False


@dataclass(frozen=True)
class TensorSplit:
    """Features and targets of one split, already in memory."""

    features: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def to(self, device: torch.device) -> TensorSplit:
        """The same split on ``device`` (itself when already there)."""
        return TensorSplit(self.features.to(device), self.targets.to(device))


@dataclass(frozen=True)
class FitResult:
    """Outcome of ``fit``: the kept epoch's metrics and how far training went."""

    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The objective's final report of the kept weights on the validation split."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Every epoch's metrics, first epoch first (earlier runs' epochs too after a resume)."""


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch inside the block and restore the caller's random state after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fit(
    model: nn.Module,
    *,
    train: TensorSplit,
    validation: TensorSplit,
    objective: Objective,
    config: TrainingConfig,
    callback: TrainingCallback | None = None,
    device: torch.device | None = None,
    resume_from: bytes | None = None,
    replicas: Replicas = SOLO,
) -> FitResult:
    """Train ``model`` in place; it ends in eval mode, on ``device``, holding its kept weights.

    With several ``replicas`` every rank calls this with the same data and config (only
    rank 0 with a ``callback``); see ``dlp.ml.distributed``.
    """
    callback = callback or TrainingCallback()
    monitor = _monitored_metric(config.early_stopping_metric, objective)
    if len(train) == 0:
        raise ValidationError("the training split has no rows")
    precision = resolve_precision(device or torch.device("cpu"), config.mixed_precision)
    model.to(precision.device)
    train, validation, move_batches = _place(train, validation, precision.device)
    optimizer = build_optimizer(model.parameters(), config)
    batch_size = replicas.local_batch_size(config.batch_size)
    steps_per_epoch = math.ceil(replicas.rows_per_epoch(len(train)) / batch_size)
    parts = TrainingParts(
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config, steps_per_epoch),
        grad_scaler=precision.grad_scaler(),
        generator=torch.Generator().manual_seed(config.seed),
        device=precision.device,
    )
    fingerprint = run_fingerprint(config, len(train))
    progress = LoopProgress()
    if resume_from is not None:
        progress = load_checkpoint(resume_from, parts, fingerprint=fingerprint)
    loop = _EpochLoop(
        parts=parts,
        precision=precision,
        loss=objective.training_loss(train.targets, config.class_weights),
        config=config,
        callback=callback,
        move_batches=move_batches,
        replicas=replicas,
    )
    wants_checkpoints = _overrides(callback, "on_checkpoint")
    patience = config.early_stopping_patience
    callback.on_train_start(config.epochs)
    while progress.epoch < config.epochs and not (
        patience and progress.epochs_without_improvement >= patience
    ):
        epoch = progress.epoch + 1
        loop.guard.check(epoch, force=True)
        train_loss = loop.train_epoch(train, epoch, progress)
        scores = evaluate(model, validation, objective, precision=precision, replicas=replicas)
        _check_finite(train_loss, epoch)
        _check_finite(scores["loss"], epoch)
        metrics = {"train_loss": train_loss, **{f"val_{k}": v for k, v in scores.items()}}
        progress.epoch = epoch
        progress.history.append(dict(metrics))
        _remember_if_better(progress, metrics, monitor, model)
        callback.on_epoch_complete(epoch, progress.step, dict(metrics))
        if wants_checkpoints:
            callback.on_checkpoint(save_checkpoint(parts, progress, fingerprint=fingerprint), epoch)
    if progress.best_weights:
        model.load_state_dict(progress.best_weights)
    outputs = _predict(model, validation, precision, replicas)
    return FitResult(
        metrics=dict(progress.best_metrics),
        best_epoch=progress.best_epoch,
        epochs_run=progress.epoch,
        evaluation=objective.evaluation(outputs, validation.targets.cpu()),
        history=[dict(entry) for entry in progress.history],
    )


def evaluate(
    model: nn.Module,
    split: TensorSplit,
    objective: Objective,
    *,
    precision: Precision | None = None,
    replicas: Replicas = SOLO,
) -> dict[str, float]:
    """``loss`` (unweighted) and the objective's metrics of ``model`` on ``split`` (eval mode)."""
    outputs = _predict(model, split, precision, replicas)
    targets = split.targets.cpu()
    with torch.inference_mode():
        loss = float(objective.loss(outputs, targets))
    return {"loss": loss, **objective.metrics(outputs, targets)}


def _predict(
    model: nn.Module, split: TensorSplit, precision: Precision | None, replicas: Replicas = SOLO
) -> Tensor:
    """Float32 CPU outputs of ``model`` over ``split``, in chunks, on the model's device;
    with several replicas each predicts its share of the rows and all get every output."""
    if precision is None:
        first = next(model.parameters(), None)
        precision = Precision(first.device if first is not None else torch.device("cpu"))
    model.eval()
    n_rows = len(split)
    share = replicas.shard_rows(n_rows)
    split = TensorSplit(split.features[share], split.targets[share])
    row_values = max(1, split.features[0].numel()) if len(split) else 1
    chunk = max(1, min(EVAL_CHUNK_ROWS, EVAL_CHUNK_VALUES // row_values))
    with torch.inference_mode(), precision.autocast():
        chunks = [
            model(split.features[start : start + chunk].to(precision.device))
            for start in range(0, len(split), chunk)
        ]
    return replicas.gather(torch.cat(chunks).float().cpu(), n_rows)


class _EpochLoop:
    """One pass over the training split: the hot loop, kept free of per-step host syncs."""

    def __init__(
        self,
        *,
        parts: TrainingParts,
        precision: Precision,
        loss: LossFunction,
        config: TrainingConfig,
        callback: TrainingCallback,
        move_batches: bool,
        replicas: Replicas,
    ) -> None:
        self.parts = parts
        self.network = replicas.wrap(parts.model)
        self.replicas = replicas
        self.precision = precision
        self.loss = loss
        self.config = config
        self.callback = callback
        self.move_batches = move_batches
        self.guard = _CancellationGuard(callback)
        self.report_every = config.progress_every_steps if _overrides(callback, "on_step") else 0

    def train_epoch(self, split: TensorSplit, epoch: int, progress: LoopProgress) -> float:
        """Train one epoch, advancing ``progress.step``; returns the mean training loss."""
        model, network, optimizer = self.parts.model, self.network, self.parts.optimizer
        scheduler, scaler = self.parts.scheduler, self.parts.grad_scaler
        loss_function, guard, autocast = self.loss, self.guard, self.precision.autocast
        device, move_batches = self.precision.device, self.move_batches
        batch_size = self.replicas.local_batch_size(self.config.batch_size)
        clip_norm = self.config.gradient_clip_norm
        report_every = self.report_every
        parameters = [p for p in model.parameters() if p.requires_grad]
        model.train()
        order = self.replicas.epoch_order(len(split), self.parts.generator)
        total = torch.zeros((), device=device)
        step, seen = progress.step, 0
        batches = shuffled_batches(split.features, split.targets, order, batch_size)
        for batch_features, batch_targets in batches:
            guard.check(epoch)
            if move_batches:
                batch_features = batch_features.to(device, non_blocking=True)
                batch_targets = batch_targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_function(network(batch_features), batch_targets)
            if scaler is None:
                torch.autograd.backward(loss)
                if clip_norm is not None:
                    clip_gradients_(parameters, clip_norm)
                optimizer.step()
            else:
                torch.autograd.backward(scaler.scale(loss))
                if clip_norm is not None:
                    scaler.unscale_(optimizer)
                    clip_gradients_(parameters, clip_norm)
                scaler.step(optimizer)
                scaler.update()
            rows = int(batch_features.shape[0])
            total.add_(loss.detach(), alpha=rows)
            step, seen = step + 1, seen + rows
            if report_every and step % report_every == 0:
                running = float(total) / seen
                lr = float(optimizer.param_groups[0]["lr"])
                self.callback.on_step(epoch, step, {"train_loss": running, "lr": lr})
            if scheduler is not None:
                scheduler.step()
        progress.step = step
        totals = self.replicas.sum(torch.stack([total, total.new_tensor(float(seen))]))
        return float(totals[0]) / float(totals[1])


def _monitored_metric(metric: str, objective: Objective) -> str:
    name = metric.removeprefix("val_")
    if not metric.startswith("val_") or name not in objective.metric_names:
        offered = ", ".join(f"val_{n}" for n in objective.metric_names)
        raise ValidationError(
            f"early_stopping_metric {metric!r} is not reported for this task; use one of {offered}"
        )
    return metric


def _remember_if_better(
    progress: LoopProgress, metrics: dict[str, float], monitor: str, model: nn.Module
) -> None:
    score = metrics[monitor]
    best = progress.best_score
    higher = monitor in HIGHER_IS_BETTER
    if best is not None and not (score > best if higher else score < best):
        progress.epochs_without_improvement += 1
        return
    progress.best_epoch, progress.best_score = progress.epoch, score
    progress.best_metrics = dict(metrics)
    progress.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    progress.epochs_without_improvement = 0


def _place(
    train: TensorSplit, validation: TensorSplit, device: torch.device
) -> tuple[TensorSplit, TensorSplit, bool]:
    """Both splits on ``device`` when they fit there; else kept on the host, moved per batch."""
    nbytes = sum(
        t.numel() * t.element_size()
        for t in (train.features, train.targets, validation.features, validation.targets)
    )
    if fits_on_device(nbytes, device):
        return train.to(device), validation.to(device), False
    return train, validation, True


def _overrides(callback: TrainingCallback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(TrainingCallback, hook)


def _check_finite(loss: float, epoch: int) -> None:
    if math.isnan(loss):
        raise TrainingError(
            f"training diverged: loss became NaN at epoch {epoch}; lower the learning rate"
        )
    if math.isinf(loss):
        raise TrainingError(
            f"training diverged: loss became infinite at epoch {epoch}; lower the learning rate"
        )


class _CancellationGuard:
    """Polls ``should_stop`` at epoch starts and at most once per interval between them."""

    def __init__(self, callback: TrainingCallback) -> None:
        self._callback = callback
        self._last_check = time.monotonic()

    def check(self, epoch: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_check < CANCEL_CHECK_INTERVAL_S:
            return
        self._last_check = now
        if self._callback.should_stop():
            raise TrainingCancelled(epoch)

"""The generic training loop: mini-batches from in-memory tensors, callbacks, early stopping.

The loop knows nothing about data kinds or tasks: it gets tensors, a model and an
``Objective``. Side effects (progress, checkpoints, cancellation) go through a
``TrainingCallback``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlp.errors import TrainingError
from dlp.ml.config import TrainingConfig
from dlp.ml.objectives import Objective

GRADIENT_CLIP_NORM = 1.0
SGD_MOMENTUM = 0.9
CANCEL_CHECK_INTERVAL_S = 1.0
EVAL_CHUNK_ROWS = 16_384


class TrainingCancelled(Exception):  # noqa: N818 - the name the platform uses for this state
    """``TrainingCallback.should_stop`` asked the loop to stop; the caller decides what next."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"training cancelled during epoch {epoch}")
        self.epoch = epoch


class TrainingCallback:
    """Hooks the loop calls; every hook is a no-op unless overridden."""

    def on_train_start(self, total_epochs: int) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each epoch (1-based) with ``train_loss``, ``val_loss`` and ``val_*``."""

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


@dataclass(frozen=True)
class FitResult:
    """Outcome of ``fit``: the kept epoch's metrics and how far training went."""

    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch inside the block and restore the caller's random state after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_optimizer(
    parameters: Iterable[nn.Parameter], config: TrainingConfig
) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names."""
    params = list(parameters)
    lr, decay = config.learning_rate, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM, weight_decay=decay)


def fit(
    model: nn.Module,
    *,
    train: TensorSplit,
    validation: TensorSplit,
    objective: Objective,
    config: TrainingConfig,
    callback: TrainingCallback | None = None,
) -> FitResult:
    """Train ``model`` in place; it ends in eval mode holding its best-validation weights."""
    callback = callback or TrainingCallback()
    optimizer = build_optimizer(model.parameters(), config)
    generator = torch.Generator().manual_seed(config.seed)
    guard = _CancellationGuard(callback)
    best = _BestEpoch()
    epochs_run = 0
    callback.on_train_start(config.epochs)
    for epoch in range(1, config.epochs + 1):
        guard.check(epoch, force=True)
        train_loss = _train_epoch(
            model, train, objective, optimizer, generator, config.batch_size, guard, epoch
        )
        scores = evaluate(model, validation, objective)
        _check_finite(train_loss, epoch)
        _check_finite(scores["loss"], epoch)
        metrics = {"train_loss": train_loss, **{f"val_{k}": v for k, v in scores.items()}}
        epochs_run = epoch
        callback.on_epoch_end(epoch, dict(metrics))
        if best.update(epoch, metrics, model):
            continue
        patience = config.early_stopping_patience
        if patience and epoch - best.epoch >= patience:
            break
    best.restore(model)
    model.eval()
    return FitResult(metrics=best.metrics, best_epoch=best.epoch, epochs_run=epochs_run)


def evaluate(model: nn.Module, split: TensorSplit, objective: Objective) -> dict[str, float]:
    """``loss`` and the objective's metrics of ``model`` on ``split`` (eval mode)."""
    model.eval()
    with torch.inference_mode():
        outputs = torch.cat(
            [
                model(split.features[start : start + EVAL_CHUNK_ROWS])
                for start in range(0, len(split), EVAL_CHUNK_ROWS)
            ]
        )
        loss = float(objective.loss(outputs, split.targets))
        return {"loss": loss, **objective.metrics(outputs, split.targets)}


def _train_epoch(
    model: nn.Module,
    split: TensorSplit,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    batch_size: int,
    guard: _CancellationGuard,
    epoch: int,
) -> float:
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    # One gather per epoch, then every batch is a view: cheaper than indexing per batch.
    order = torch.randperm(len(split), generator=generator)
    features, targets = split.features[order], split.targets[order]
    total = torch.zeros(())
    for start in range(0, len(split), batch_size):
        guard.check(epoch)
        batch_features = features[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = objective.loss(model(batch_features), targets[start : start + batch_size])
        torch.autograd.backward(loss)
        nn.utils.clip_grad_norm_(parameters, GRADIENT_CLIP_NORM)
        optimizer.step()
        total += loss.detach() * batch_features.shape[0]
    return float(total) / len(split)


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


class _BestEpoch:
    """The epoch with the lowest validation loss so far, with a copy of its weights."""

    def __init__(self) -> None:
        self.epoch = 0
        self.loss = math.inf
        self.metrics: dict[str, float] = {}
        self._weights: dict[str, Tensor] = {}

    def update(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> bool:
        """Remember this epoch if it beats the best so far; True when it does."""
        if not metrics["val_loss"] < self.loss:
            return False
        self.epoch, self.loss, self.metrics = epoch, metrics["val_loss"], dict(metrics)
        self._weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return True

    def restore(self, model: nn.Module) -> None:
        """Load the remembered weights back into ``model``."""
        if self._weights:
            model.load_state_dict(self._weights)

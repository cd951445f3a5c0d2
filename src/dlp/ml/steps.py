"""The pieces of one optimizer step: the optimizer and its schedule, and the batching and
clipping that the loop keeps cheap."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from dlp.ml.config import TrainingConfig

SGD_MOMENTUM = 0.9

EPOCH_GATHER_BYTES = 32 << 20
"""Splits up to this size are shuffled by one copy per epoch; larger ones per batch."""


def shuffled_batches(
    features: Tensor, targets: Tensor, order: Tensor, batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of the rows ``order`` lists (a data-parallel rank's share of them, say):
    small splits are gathered once (every batch is then a cheap view), large ones per
    batch, so no second copy of them exists."""
    n_rows = len(order)
    if features.numel() * features.element_size() <= EPOCH_GATHER_BYTES:
        features = features[order.to(features.device)]
        targets = targets[order.to(targets.device)]
        for start in range(0, n_rows, batch_size):
            yield features[start : start + batch_size], targets[start : start + batch_size]
        return
    for start in range(0, n_rows, batch_size):
        rows = order[start : start + batch_size]
        yield features[rows.to(features.device)], targets[rows.to(targets.device)]


def clip_gradients_(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``."""
    # clip_grad_norm_'s grouping and scalar arithmetic cost ~2x these few ops: ~3% of a
    # small MLP's step on CPU.
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if total.device.type != "cpu":
        # No host sync on an accelerator: the scale stays a tensor (1 when not clipping).
        torch._foreach_mul_(grads, torch.div(max_norm, total.clamp_min(max_norm)))
    elif float(total) > max_norm:
        # On the CPU reading the norm is free, and most steps then skip the rescale.
        torch._foreach_mul_(grads, total.reciprocal_().mul_(max_norm))


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


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule ``config.lr_schedule`` names (None: constant)."""
    total_steps = config.epochs * steps_per_epoch
    if config.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=total_steps
        )
    if config.lr_schedule == "cosine":
        # Closed form rather than CosineAnnealingLR's recursion: exact at every step.
        def cosine(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    return None

"""The pieces of one optimizer step that the loop keeps cheap: batching and clipping."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

EPOCH_GATHER_BYTES = 32 << 20
"""Splits up to this size are shuffled by one copy per epoch; larger ones per batch."""


def shuffled_batches(
    features: Tensor, targets: Tensor, order: Tensor, batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of rows in ``order``: small splits are gathered once (every batch is then
    a cheap view), large ones per batch, so no second copy of them exists."""
    n_rows = int(features.shape[0])
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

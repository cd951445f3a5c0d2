"""Per-batch gathering of large splits yields exactly the batches of the one-copy path."""

from __future__ import annotations

import pytest
import torch

from dlp.ml import steps


def test_large_splits_are_gathered_per_batch_in_the_same_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    features, targets = torch.randn(103, 4), torch.arange(103)
    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    copied = list(steps.shuffled_batches(features, targets, order, 10))
    monkeypatch.setattr(steps, "EPOCH_GATHER_BYTES", 0)
    gathered = list(steps.shuffled_batches(features, targets, order, 10))
    assert len(copied) == len(gathered) == 11
    for (f1, t1), (f2, t2) in zip(copied, gathered, strict=True):
        assert torch.equal(f1, f2) and torch.equal(t1, t2)
    assert torch.equal(torch.cat([t for _, t in gathered]), order)

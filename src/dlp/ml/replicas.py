"""The ranks of one training run: a single process, or one of N data-parallel processes.

The loop runs the same code either way. ``Replicas`` says which rows of each epoch this
process trains on (a seeded shuffle dealt out as ``DistributedSampler`` does, padded so
that every rank takes as many steps), wraps the model so that backward averages
gradients across ranks (``DistributedDataParallel``), sums the epoch's loss, and gathers
the validation outputs. Every rank then computes the same metrics from the same numbers
and reaches the same early-stopping decision without any further message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Replicas:
    """This process's place among the ranks of a run (rank 0 of 1 when not data-parallel)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where this rank computes; collectives run there too (gloo on the CPU, NCCL on CUDA)."""

    @property
    def leader(self) -> bool:
        """Rank 0: the one that reports progress and writes checkpoints."""
        return self.rank == 0

    def local_batch_size(self, batch_size: int) -> int:
        """Rows per step on this rank, so that one step of all ranks covers ``batch_size``."""
        return math.ceil(batch_size / self.world_size)

    def rows_per_epoch(self, n_rows: int) -> int:
        """Rows this rank trains on per epoch (the sampler pads the last ranks' share)."""
        return math.ceil(n_rows / self.world_size)

    def epoch_order(self, n_rows: int, generator: torch.Generator) -> Tensor:
        """This rank's rows for the next epoch, in training order.

        Every rank draws the same permutation (their generators share seed and state),
        pads it by wrapping around to a multiple of the world size and takes every
        ``world_size``-th row from its rank on, as ``DistributedSampler`` does. The ranks'
        step ``k`` batches then hold exactly the rows of step ``k`` of a one-process run
        with the same seed and global batch.
        """
        order = torch.randperm(n_rows, generator=generator)
        if self.world_size == 1:
            return order
        padding = self.rows_per_epoch(n_rows) * self.world_size - n_rows
        if padding:
            order = torch.cat([order, order[:padding]])
        return order[self.rank :: self.world_size]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: the model itself, or its DDP wrapper."""
        if self.world_size == 1:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, values: Tensor) -> Tensor:
        """``values`` summed over all ranks (every rank gets the same total)."""
        if self.world_size == 1:
            return values
        total = values.to(self.device)
        dist.all_reduce(total)
        return total

    def shard_rows(self, n_rows: int) -> slice:
        """This rank's contiguous share of ``n_rows`` evaluation rows."""
        start = sum(self._share(n_rows, rank) for rank in range(self.rank))
        return slice(start, start + self._share(n_rows, self.rank))

    def gather(self, outputs: Tensor, n_rows: int) -> Tensor:
        """Every rank's ``outputs`` for its ``shard_rows``, in row order, on the CPU."""
        if self.world_size == 1:
            return outputs
        longest = self._share(n_rows, 0)
        padded = outputs.new_zeros((longest, *outputs.shape[1:]))
        padded[: outputs.shape[0]] = outputs
        pieces = [torch.empty_like(padded, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded.to(self.device))
        return torch.cat(
            [piece[: self._share(n_rows, rank)].cpu() for rank, piece in enumerate(pieces)]
        )

    def _share(self, n_rows: int, rank: int) -> int:
        return n_rows // self.world_size + (rank < n_rows % self.world_size)


SOLO = Replicas()
"""A run in one process."""

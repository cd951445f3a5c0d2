"""Data-parallel scaling: samples/s of one training process against N, and against a
hand-written DistributedDataParallel loop.

Usage: python benchmarks/distributed.py [--device cpu|cuda] [--devices N] [--images N]

The workload is dlp's ``cnn`` family (channels 32-64, one residual block per stage) on
synthetic MNIST-shaped data: 1x28x28 images, 10 balanced classes, batch 256 (the global
batch: each of N ranks takes 256/N rows a step), AdamW, early stopping off, a 256-image
validation split evaluated every epoch. Three runs, each timed on rank 0 from the end of
the first epoch to the end of the last (process start-up, data hand-over and the first
epoch's warm-up are left out; every later epoch's validation is in):

* 1 device: ``fit`` in this process;
* N devices: dlp's data-parallel path (``fit_data_parallel``: this process is rank 0 and
  starts N-1 helper ranks, gloo on the CPU, NCCL on CUDA);
* hand-written: a minimal DDP loop (``torch.multiprocessing.spawn``, DistributedSampler,
  the same model, optimizer and batch, no clipping, its own share of validation each epoch).

On the CPU a "device" is a process with cores / N torch threads, so the 1-device run gets
cores / N threads too and efficiency = samples/s(N) / (N x samples/s(1)). The whole-machine
speed-up (N processes against one process with every core) is printed as well. The last
line is ``distributed: devices=N efficiency=E``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torch.nn import functional
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dlp.ml.architectures import build_model
from dlp.ml.config import CNNConfig, InputSpec, TrainingConfig
from dlp.ml.device import resolve_precision
from dlp.ml.distributed import fit_data_parallel, plan_for
from dlp.ml.objectives import ClassificationObjective
from dlp.ml.trainer import TensorSplit, TrainingCallback, fit, seeded

BATCH_SIZE = 256
N_CLASSES = 10
VALIDATION_IMAGES = 256
MODEL = CNNConfig(channels=[32, 64], blocks_per_stage=1, dropout=0.0)
SPEC = InputSpec(channels=1, image_size=28)


class EpochClock(TrainingCallback):
    """Rank 0's wall-clock time at the end of each epoch."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.ends.append(time.perf_counter())


def mnist_shaped(images: int) -> tuple[TensorSplit, TensorSplit]:
    """Noise images whose class shifts them along its own random direction."""
    generator = torch.Generator().manual_seed(0)
    total = images + VALIDATION_IMAGES
    targets = torch.randperm(total, generator=generator) % N_CLASSES
    directions = torch.randn(N_CLASSES, 1, 28, 28, generator=generator)
    features = torch.randn(total, 1, 28, 28, generator=generator) + 0.5 * directions[targets]
    return (
        TensorSplit(features[:images].contiguous(), targets[:images].contiguous()),
        TensorSplit(features[images:].contiguous(), targets[images:].contiguous()),
    )


def training_config(epochs: int) -> TrainingConfig:
    return TrainingConfig(epochs=epochs, batch_size=BATCH_SIZE, early_stopping_patience=0)


def steady_rate(ends: list[float], images: int) -> float:
    """Samples/s between the first and the last epoch's end."""
    return images * (len(ends) - 1) / (ends[-1] - ends[0])


def run_dlp(
    train: TensorSplit, validation: TensorSplit, epochs: int, devices: int, device: torch.device
) -> float:
    """Samples/s of dlp's loop on ``devices`` processes (this one included)."""
    config = training_config(epochs)
    objective = ClassificationObjective()
    clock = EpochClock()
    with seeded(0):
        network = build_model(MODEL, SPEC, N_CLASSES)
        if devices == 1:
            fit(
                network,
                train=train,
                validation=validation,
                objective=objective,
                config=config,
                callback=clock,
                device=device,
            )
        else:
            plan = plan_for(
                MODEL,
                SPEC,
                N_CLASSES,
                objective=objective,
                training=config,
                devices=devices,
                device=device,
            )
            fit_data_parallel(
                network,
                plan,
                train=train,
                validation=validation,
                objective=objective,
                callback=clock,
                resume_from=None,
            )
    return steady_rate(clock.ends, len(train))


def hand_written_rank(
    rank: int,
    world: int,
    port: int,
    device_type: str,
    threads: int,
    epochs: int,
    split: tuple[Tensor, Tensor, Tensor, Tensor],
    result: str,
) -> None:
    """One rank of the minimal DDP loop; rank 0 writes its epoch end times to ``result``."""
    torch.set_num_threads(threads)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    features, targets, val_features, val_targets = (t.to(device) for t in split)
    torch.manual_seed(0)
    model = build_model(MODEL, SPEC, N_CLASSES).to(device)
    ddp = DistributedDataParallel(model, device_ids=[rank] if device_type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    precision = resolve_precision(device, "auto")
    sampler: DistributedSampler[int] = DistributedSampler(
        range(len(targets)),  # type: ignore[arg-type]
        num_replicas=world,
        rank=rank,
        seed=0,
    )
    local_batch = math.ceil(BATCH_SIZE / world)
    share = math.ceil(len(val_targets) / world)
    ends = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), device=device)
        ddp.train()
        for start in range(0, len(order), local_batch):
            rows = order[start : start + local_batch]
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                loss = functional.cross_entropy(ddp(features[rows]), targets[rows])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad(), precision.autocast():
            mine = slice(rank * share, (rank + 1) * share)
            outputs = model(val_features[mine]).float()
            correct = (outputs.argmax(1) == val_targets[mine]).sum()
            dist.all_reduce(correct)
        if device_type == "cuda":
            torch.cuda.synchronize(device)
        ends.append(time.perf_counter())
    dist.destroy_process_group()
    if rank == 0:
        Path(result).write_text(" ".join(map(str, ends)))


def run_hand_written(
    train: TensorSplit, validation: TensorSplit, epochs: int, devices: int, device_type: str
) -> float:
    """Samples/s of the minimal DDP loop on ``devices`` processes."""
    threads = max(1, torch.get_num_threads() // devices)
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # a free port
    port = store.port
    del store
    split = (train.features, train.targets, validation.features, validation.targets)
    with tempfile.TemporaryDirectory() as scratch:
        result = os.path.join(scratch, "ends")
        mp.spawn(
            hand_written_rank,
            args=(devices, port, device_type, threads, epochs, split, result),
            nprocs=devices,
        )
        ends = [float(value) for value in Path(result).read_text().split()]
    return steady_rate(ends, len(train))


def main() -> None:
    """Measure 1 device, N devices and the hand-written loop; print the efficiency."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--devices", type=int, default=None, help="default: 2 CPUs, every GPU")
    parser.add_argument("--images", type=int, default=6144, help="training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (at least 2)")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    devices = args.devices or (torch.cuda.device_count() if cuda else 2)
    cores = torch.get_num_threads()
    train, validation = mnist_shaped(args.images)
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    print(
        f"torch {torch.__version__}, {args.device}, {devices} devices, {cores} cores, "
        f"{args.images} images x {args.epochs} epochs, global batch {BATCH_SIZE}"
    )
    rates: dict[str, float] = {}
    if not cuda:
        rates["1 process, all cores"] = run_dlp(train, validation, args.epochs, 1, device)
    torch.set_num_threads(max(1, cores // devices))
    rates["1 device"] = run_dlp(train, validation, args.epochs, 1, device)
    torch.set_num_threads(cores)
    rates[f"{devices} devices"] = run_dlp(train, validation, args.epochs, devices, device)
    rates["hand-written DDP"] = run_hand_written(
        train, validation, args.epochs, devices, args.device
    )
    for name, rate in rates.items():
        print(f"{name:>22}: {rate:>9,.0f} samples/s")
    parallel = rates[f"{devices} devices"]
    efficiency = parallel / (devices * rates["1 device"])
    if not cuda:
        print(f"whole-machine speed-up: {parallel / rates['1 process, all cores']:.2f}x")
    print(f"dlp / hand-written DDP: {parallel / rates['hand-written DDP']:.2f}")
    print(f"distributed: devices={devices} efficiency={efficiency:.2f}")


if __name__ == "__main__":
    main()

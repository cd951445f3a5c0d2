"""How close dlp's training loop comes to a minimal hand-written PyTorch loop.

Usage: python benchmarks/training_overhead.py [--device cpu|cuda] [--threads N]

Two workloads, each trained with ``dlp.ml.trainer.fit`` and with a hand-written loop
over the same pre-built tensors, from the same initial weights, with Adam (lr 1e-3,
no weight decay), batch 256 and the same number of epochs:

* mlp: 50 -> 256 -> 256 -> 10 on 100k synthetic rows (10 balanced classes), 3 epochs;
* cnn: the classic 2-conv MNIST network (conv32-conv64-maxpool-dropout-fc128-fc10)
  on 20k synthetic 1x28x28 images, 1 epoch.

dlp runs with its real defaults otherwise (gradient clipping at norm 1.0, class weights
"auto" - unweighted here since the classes are balanced -, constant learning rate),
early stopping off. Validation is fair: both sides get the same tiny validation split
(1% of the training rows) and evaluate it once per epoch (loss and accuracy by hand;
loss, accuracy and macro F1 in dlp, which also copies the best weights and evaluates
the kept weights once at the end). Samples/s count training rows only.

Each measurement is the median of 3 runs (``--repeats``), dlp and hand-written interleaved (their
order alternating) so that drifting machine load hits both alike. The last line is
``training_overhead: mlp ratio=R cnn ratio=R`` with R = dlp / hand-written samples/s.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dlp.ml.config import TrainingConfig
from dlp.ml.device import Precision, resolve_precision
from dlp.ml.objectives import ClassificationObjective
from dlp.ml.trainer import TensorSplit, fit

BATCH_SIZE = 256
LEARNING_RATE = 1e-3
REPEATS = 3
N_CLASSES = 10
VALIDATION_SHARE = 0.01


@dataclass(frozen=True)
class Workload:
    """One model and its data."""

    name: str
    build: Callable[[], nn.Module]
    train: TensorSplit
    validation: TensorSplit
    epochs: int


class MnistNet(nn.Module):
    """The classic PyTorch MNIST example network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, N_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = functional.relu(self.conv1(x))
        x = functional.max_pool2d(functional.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(functional.relu(self.fc1(x)))
        output: Tensor = self.fc2(x)
        return output


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(50, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, N_CLASSES)
    )


def _labelled(features: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Balanced labels, each class shifting the features along its own random direction."""
    n = features.shape[0]
    targets = torch.randperm(n, generator=generator) % N_CLASSES
    directions = torch.randn(N_CLASSES, *features.shape[1:], generator=generator)
    return features + 0.5 * directions[targets], targets


def _splits(features: Tensor, targets: Tensor, n_train: int) -> tuple[TensorSplit, TensorSplit]:
    return (
        TensorSplit(features[:n_train].contiguous(), targets[:n_train].contiguous()),
        TensorSplit(features[n_train:].contiguous(), targets[n_train:].contiguous()),
    )


def workloads(scale: float) -> list[Workload]:
    """The MLP and CNN workloads (``scale`` < 1 shrinks them for a smoke run)."""
    generator = torch.Generator().manual_seed(0)
    rows, images = int(100_000 * scale), int(20_000 * scale)
    extra_rows, extra_images = int(rows * VALIDATION_SHARE), int(images * VALIDATION_SHARE)
    table = _labelled(torch.randn(rows + extra_rows, 50, generator=generator), generator)
    pictures = _labelled(
        torch.randn(images + extra_images, 1, 28, 28, generator=generator), generator
    )
    return [
        Workload("mlp", _mlp, *_splits(*table, rows), epochs=3),
        Workload("cnn", MnistNet, *_splits(*pictures, images), epochs=1),
    ]


def run_dlp(model: nn.Module, work: Workload, device: torch.device) -> float:
    """Wall-clock seconds for dlp's ``fit``."""
    config = TrainingConfig(
        epochs=work.epochs,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping_patience=0,
    )
    start = time.perf_counter()
    fit(
        model,
        train=work.train,
        validation=work.validation,
        objective=ClassificationObjective(),
        config=config,
        device=device,
    )
    _synchronize(device)
    return time.perf_counter() - start


def run_hand_written(model: nn.Module, work: Workload, precision: Precision) -> float:
    """Wall-clock seconds for a minimal loop: permuted batches, Adam, per-epoch validation."""
    device = precision.device
    start = time.perf_counter()
    model.to(device)
    features, targets = work.train.features.to(device), work.train.targets.to(device)
    val_features = work.validation.features.to(device)
    val_targets = work.validation.targets.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    scaler = precision.grad_scaler()
    generator = torch.Generator().manual_seed(0)
    autocast = precision.autocast if precision.autocast_dtype is not None else nullcontext
    for _ in range(work.epochs):
        model.train()
        order = torch.randperm(len(work.train), generator=generator).to(device)
        for begin in range(0, len(order), BATCH_SIZE):
            index = order[begin : begin + BATCH_SIZE]
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = functional.cross_entropy(model(features[index]), targets[index])
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        model.eval()
        with torch.no_grad(), autocast():
            outputs = model(val_features).float()
            val_loss = functional.cross_entropy(outputs, val_targets).item()
            val_accuracy = (outputs.argmax(1) == val_targets).float().mean().item()
        assert val_loss == val_loss and 0 <= val_accuracy <= 1
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(work: Workload, precision: Precision, repeats: int) -> tuple[float, float]:
    """Median samples/s of dlp and of the hand-written loop, runs interleaved."""
    torch.manual_seed(0)
    initial = work.build()
    warm_up = Workload(
        work.name,
        work.build,
        TensorSplit(work.train.features[:2048], work.train.targets[:2048]),
        work.validation,
        epochs=1,
    )
    run_dlp(copy.deepcopy(initial), warm_up, precision.device)  # first-call costs, both sides
    run_hand_written(copy.deepcopy(initial), warm_up, precision)
    samples = len(work.train) * work.epochs
    seconds: dict[str, list[float]] = {"dlp": [], "hand-written": []}
    cpu_seconds: dict[str, list[float]] = {"dlp": [], "hand-written": []}
    for repeat in range(repeats):
        order = ["dlp", "hand-written"] if repeat % 2 == 0 else ["hand-written", "dlp"]
        for who in order:
            model = copy.deepcopy(initial)
            torch.manual_seed(repeat)  # same dropout masks for both within a repeat
            cpu_start = time.process_time()
            if who == "dlp":
                seconds[who].append(run_dlp(model, work, precision.device))
            else:
                seconds[who].append(run_hand_written(model, work, precision))
            cpu_seconds[who].append(time.process_time() - cpu_start)
    rates = {who: samples / statistics.median(runs) for who, runs in seconds.items()}
    best = {who: samples / min(runs) for who, runs in seconds.items()}
    for who, runs in seconds.items():
        listed = ", ".join(f"{samples / s:,.0f}" for s in runs)
        # CPU seconds tell contention apart from work: wall time grows, CPU time does not.
        cpu = statistics.median(cpu_seconds[who])
        print(
            f"{work.name} {who:>12}: {rates[who]:>10,.0f} samples/s (runs: {listed}; "
            f"median wall {statistics.median(runs):.2f} s, cpu {cpu:.2f} s)"
        )
    # Other processes only ever slow a run down: the best runs show the loops' own speeds.
    print(f"{work.name} best-run ratio: {best['dlp'] / best['hand-written']:.2f}")
    return rates["dlp"], rates["hand-written"]


def main() -> None:
    """Parse options, run both workloads, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the data (smoke runs)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = resolve_precision(device, "auto")
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"autocast {precision.autocast_dtype}, batch {BATCH_SIZE}, median of {args.repeats}"
    )
    ratios = {}
    for work in workloads(args.scale):
        dlp_rate, hand_rate = measure(work, precision, args.repeats)
        ratios[work.name] = dlp_rate / hand_rate
    print(f"training_overhead: mlp ratio={ratios['mlp']:.2f} cnn ratio={ratios['cnn']:.2f}")


if __name__ == "__main__":
    main()

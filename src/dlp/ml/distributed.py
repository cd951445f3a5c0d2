"""Data-parallel training: one run as N processes under ``DistributedDataParallel``.

The process that runs the job (a worker's pool child) is rank 0. It keeps the job's
callback, so progress, checkpoints and cancellation work as for a one-device run. It
starts ranks 1..N-1 as ``python -m dlp.ml.distributed`` processes on the same host and
hands them a JSON plan plus the encoded splits in a file they map read-only (tensors
only, loaded with ``weights_only``: nothing is unpickled). The ranks meet at a TCP store
on a free local port; gloo links them on the CPU, NCCL on CUDA (one GPU per rank).

A rank that dies closes its connections, so the others' next collective fails at once;
rank 0 then stops every helper and raises ``ReplicaLostError``, and the job is retried
from its last checkpoint. A helper whose parent dies exits within a second, so a killed
worker leaves no rank behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn
from torch.distributed import Store, TCPStore  # type: ignore[attr-defined]

from dlp.errors import ReplicaLostError, ValidationError
from dlp.ml.architectures import build_model
from dlp.ml.config import InputSpec, ResolvedModelConfig, TrainingConfig
from dlp.ml.objectives import Objective, objective_from_state, objective_state
from dlp.ml.replicas import Replicas
from dlp.ml.trainer import FitResult, TensorSplit, TrainingCallback, fit, seeded

HOST = "127.0.0.1"
COLLECTIVE_TIMEOUT = timedelta(minutes=5)
"""A collective that waits longer fails: a rank that slow is hung, not busy."""
JOIN_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0
PARENT_CHECK_S = 1.0
ERROR_LINE_CHARS = 300
PLAN_FILE, TENSORS_FILE = "plan.json", "tensors.pt"


class RankPlan(BaseModel):
    """What a helper rank needs besides the tensors: how to rebuild the run."""

    model_config = ConfigDict(extra="forbid")

    model: ResolvedModelConfig
    input_spec: InputSpec
    n_outputs: int
    objective: dict[str, Any]
    training: TrainingConfig
    world_size: int
    port: int
    device_type: Literal["cpu", "cuda"]
    threads: int


def fit_data_parallel(
    network: nn.Module,
    plan: RankPlan,
    *,
    train: TensorSplit,
    validation: TensorSplit,
    objective: Objective,
    callback: TrainingCallback | None,
    resume_from: bytes | None,
) -> FitResult:
    """``fit`` as rank 0 of ``plan.world_size`` processes (``plan.port`` is filled in here).

    ``network`` must have been built from ``plan`` under ``seeded(plan.training.seed)``,
    as the helpers build theirs.
    """
    world = plan.world_size
    if min(len(train), len(validation)) < world:
        raise ValidationError(
            f"{world} data-parallel processes need at least {world} training and "
            f"{world} validation rows; this split has {len(train)} and {len(validation)}"
        )
    if plan.device_type == "cuda" and torch.cuda.device_count() < world:
        raise ValidationError(
            f"resources.devices={world} but this worker sees {torch.cuda.device_count()} GPU(s)"
        )
    store = TCPStore(HOST, 0, world, is_master=True, wait_for_workers=False)
    plan = plan.model_copy(update={"port": store.port})
    own_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="dlp-ddp-") as scratch:
        _write_payload(Path(scratch), plan, train, validation, resume_from)
        helpers = [_Helper.start(Path(scratch), rank) for rank in range(1, world)]
        grace_s = 0.0
        try:
            _wait_until_joined(store, helpers)
            torch.set_num_threads(plan.threads)
            device = _rank_device(plan, 0)
            _join_group(plan, store, 0)
            try:
                result = fit(
                    network,
                    train=train,
                    validation=validation,
                    objective=objective,
                    config=plan.training,
                    callback=callback,
                    device=device,
                    resume_from=resume_from,
                    replicas=Replicas(0, world, device),
                )
            except RuntimeError as exc:  # how gloo and NCCL report a vanished peer
                lost = _lost_rank(helpers, grace_s=STOP_GRACE_S)
                if lost is None:
                    raise
                raise lost from exc
            finally:
                dist.destroy_process_group()
            grace_s = STOP_GRACE_S  # the helpers are leaving after the last collective
            return result
        finally:
            torch.set_num_threads(own_threads)
            for helper in helpers:
                helper.stop(grace_s)


def plan_for(
    model: ResolvedModelConfig,
    spec: InputSpec,
    n_outputs: int,
    *,
    objective: Objective,
    training: TrainingConfig,
    devices: int,
    device: torch.device | None,
) -> RankPlan:
    """The plan of a run over ``devices`` processes on ``device``'s type."""
    return RankPlan(
        model=model,
        input_spec=spec,
        n_outputs=n_outputs,
        objective=objective_state(objective),
        training=training,
        world_size=devices,
        port=0,
        device_type="cuda" if device is not None and device.type == "cuda" else "cpu",
        threads=max(1, torch.get_num_threads() // devices),
    )


def _write_payload(
    scratch: Path,
    plan: RankPlan,
    train: TensorSplit,
    validation: TensorSplit,
    resume_from: bytes | None,
) -> None:
    tensors = {
        "train_features": train.features,
        "train_targets": train.targets,
        "validation_features": validation.features,
        "validation_targets": validation.targets,
    }
    if resume_from is not None:
        tensors["checkpoint"] = torch.frombuffer(bytearray(resume_from), dtype=torch.uint8)
    torch.save(tensors, scratch / TENSORS_FILE)
    (scratch / PLAN_FILE).write_text(plan.model_dump_json())


@dataclass(frozen=True)
class _Helper:
    """A helper rank's process and the file its output goes to."""

    rank: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, scratch: Path, rank: int) -> _Helper:
        log = scratch / f"rank-{rank}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own module, no user input
                [sys.executable, "-m", "dlp.ml.distributed", str(scratch), str(rank)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return cls(rank, process, log)

    def failure(self, world: int) -> ReplicaLostError | None:
        """The error to report if this rank has died, else None."""
        code = self.process.poll()
        if code is None or code == 0:
            return None
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        where = f"data-parallel rank {self.rank} of {world}"
        return ReplicaLostError(f"{where} {how}{self._last_line()}")

    def stop(self, grace_s: float) -> None:
        """Give the process ``grace_s`` to exit by itself, then kill it."""
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _last_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1][:ERROR_LINE_CHARS]}" if lines else ""


def _wait_until_joined(store: TCPStore, helpers: list[_Helper]) -> None:
    """Wait until every helper has loaded its data; fail fast if one dies first."""
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not store.check([f"joined/{helper.rank}" for helper in helpers]):
        lost = _lost_rank(helpers, grace_s=0.0)
        if lost is not None:
            raise lost
        if time.monotonic() > deadline:
            raise ReplicaLostError(
                f"data-parallel processes did not start within {JOIN_TIMEOUT_S:.0f}s"
            )
        time.sleep(0.05)


def _lost_rank(helpers: list[_Helper], *, grace_s: float) -> ReplicaLostError | None:
    """The error naming a helper that died, waiting up to ``grace_s`` for one to."""
    deadline = time.monotonic() + grace_s
    while True:
        for helper in helpers:
            lost = helper.failure(len(helpers) + 1)
            if lost is not None:
                return lost
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _rank_device(plan: RankPlan, rank: int) -> torch.device:
    if plan.device_type == "cuda":
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _join_group(plan: RankPlan, store: Store, rank: int) -> None:
    dist.init_process_group(
        "nccl" if plan.device_type == "cuda" else "gloo",
        store=store,
        rank=rank,
        world_size=plan.world_size,
        timeout=COLLECTIVE_TIMEOUT,
    )


def _exit_with_parent() -> None:
    """Exit this helper as soon as the process that started it is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="dlp-parent-watch").start()


def run_rank(scratch: Path, rank: int) -> None:
    """A helper rank's whole life: load the plan and data, join, train, leave."""
    _exit_with_parent()
    plan = RankPlan.model_validate_json((scratch / PLAN_FILE).read_text())
    tensors: dict[str, Tensor] = torch.load(
        scratch / TENSORS_FILE, weights_only=True, mmap=True, map_location="cpu"
    )
    torch.set_num_threads(plan.threads)
    device = _rank_device(plan, rank)
    store = TCPStore(HOST, plan.port, plan.world_size, is_master=False)
    store.set(f"joined/{rank}", "1")
    _join_group(plan, store, rank)
    checkpoint = tensors.get("checkpoint")
    try:
        with seeded(plan.training.seed):
            network = build_model(plan.model, plan.input_spec, plan.n_outputs)
            fit(
                network,
                train=TensorSplit(tensors["train_features"], tensors["train_targets"]),
                validation=TensorSplit(
                    tensors["validation_features"], tensors["validation_targets"]
                ),
                objective=objective_from_state(plan.objective),
                config=plan.training,
                device=device,
                resume_from=None if checkpoint is None else checkpoint.numpy().tobytes(),
                replicas=Replicas(rank, plan.world_size, device),
            )
    finally:
        dist.destroy_process_group()


def main(argv: list[str]) -> int:
    """``python -m dlp.ml.distributed SCRATCH RANK``: run one helper rank."""
    try:
        run_rank(Path(argv[1]), int(argv[2]))
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

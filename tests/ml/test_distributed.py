"""Data-parallel training: two gloo processes on this machine's CPU, the way a worker runs
a job that asks for ``resources.devices: 2``."""

from __future__ import annotations

import os
import signal

import numpy as np
import psutil
import pyarrow as pa
import pytest
import torch
from sklearn.datasets import load_digits

from dlp.errors import ReplicaLostError, ValidationError
from dlp.ml.artifact import RunOptions, TrainedModel, load_predictor, train_tabular
from dlp.ml.config import MLPConfig, TrainingConfig
from dlp.ml.replicas import Replicas
from dlp.ml.trainer import TrainingCallback, TrainingCancelled

EPOCHS = 12


def _helpers() -> list[psutil.Process]:
    """This test process's helper ranks still alive (zombies count as gone)."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE
        and "dlp.ml.distributed" in " ".join(child.cmdline())
    ]


@pytest.fixture(scope="module")
def digits() -> tuple[pa.Table, list[dict[str, float]], np.ndarray]:
    """1,797 8x8 digits: 1,437 rows to train on and 360 held out."""
    data, target = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(target))
    train, test = order[:1437], order[1437:]
    columns = {f"p{i}": pa.array(data[train, i]) for i in range(64)}
    columns["digit"] = pa.array(target[train].astype(str))
    rows = [{f"p{i}": float(data[j, i]) for i in range(64)} for j in test]
    return pa.table(columns), rows, target[test].astype(str)


def _train(
    table: pa.Table,
    devices: int,
    callback: TrainingCallback | None = None,
    resume_from: bytes | None = None,
) -> TrainedModel:
    return train_tabular(
        table,
        target="digit",
        task="classification",
        model=MLPConfig(hidden_sizes=[128, 64], dropout=0.1),
        training=TrainingConfig(epochs=EPOCHS, batch_size=64, early_stopping_patience=0),
        callback=callback,
        run=RunOptions(devices=devices, resume_from=resume_from),
    )


def _held_out_accuracy(trained: TrainedModel, rows: list[dict[str, float]], truth) -> float:
    predicted = load_predictor(trained.files).predict(rows).predictions
    return float(np.mean(np.array([str(label) for label in predicted]) == truth))


class Recorder(TrainingCallback):
    """Keeps every epoch's metrics and checkpoint; can stop or act after an epoch."""

    def __init__(self, stop_after: int | None = None, kill_after: int | None = None) -> None:
        self.epochs: list[int] = []
        self.checkpoints: dict[int, bytes] = {}
        self.stop_after = stop_after
        self.kill_after = kill_after

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(epoch)
        if epoch == self.kill_after:
            (helper,) = _helpers()
            os.kill(helper.pid, signal.SIGKILL)

    def on_checkpoint(self, checkpoint: bytes, epoch: int) -> None:
        self.checkpoints[epoch] = checkpoint

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def test_two_processes_match_one_on_held_out_digits(digits) -> None:
    table, rows, truth = digits
    single = _held_out_accuracy(_train(table, 1), rows, truth)
    parallel = _train(table, 2)
    assert _held_out_accuracy(parallel, rows, truth) == pytest.approx(single, abs=0.01)
    assert single > 0.9
    assert parallel.epochs_run == EPOCHS
    assert _helpers() == []


def test_a_resumed_two_process_run_ends_as_the_uninterrupted_one(digits) -> None:
    table, _rows, _truth = digits
    reference = _train(table, 2)
    interrupted = Recorder(stop_after=4)
    with pytest.raises(TrainingCancelled):
        _train(table, 2, interrupted)
    assert interrupted.epochs == [1, 2, 3, 4]
    assert _helpers() == []  # the cancel stopped the helper rank too

    again = Recorder()
    resumed = _train(table, 2, again, resume_from=interrupted.checkpoints[4])
    assert again.epochs == list(range(5, EPOCHS + 1))  # rank 0 reports; epochs run once
    assert resumed.metrics == pytest.approx(reference.metrics, abs=1e-5)


def test_a_killed_rank_ends_the_run_with_replica_lost_and_no_process_left(digits) -> None:
    table, _rows, _truth = digits
    callback = Recorder(kill_after=2)
    with pytest.raises(ReplicaLostError, match=r"rank 1 of 2 was killed by signal 9"):
        _train(table, 2, callback)
    assert callback.epochs[:2] == [1, 2] and 2 in callback.checkpoints
    assert _helpers() == []


def test_more_processes_than_rows_is_refused_before_any_starts() -> None:
    table = pa.table({"x": [float(i) for i in range(12)], "y": ["a", "b"] * 6})
    with pytest.raises(ValidationError, match="need at least 8 training and 8 validation rows"):
        train_tabular(
            table,
            target="y",
            task="classification",
            model=MLPConfig(),
            training=TrainingConfig(epochs=1),
            run=RunOptions(devices=8),
        )
    assert _helpers() == []


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(5)


@pytest.mark.parametrize("n_rows", [10, 11, 12, 13])
def test_ranks_share_each_epoch_and_cover_every_row(n_rows: int) -> None:
    ranks = [Replicas(rank, 3) for rank in range(3)]
    orders = [replicas.epoch_order(n_rows, _generator()) for replicas in ranks]
    assert {len(order) for order in orders} == {ranks[0].rows_per_epoch(n_rows)}
    assert set(torch.cat(orders).tolist()) == set(range(n_rows))
    shards = [replicas.shard_rows(n_rows) for replicas in ranks]
    assert [i for shard in shards for i in range(n_rows)[shard]] == list(range(n_rows))


def test_the_ranks_steps_cover_the_rows_of_one_process_steps() -> None:
    solo = Replicas().epoch_order(64, _generator())
    pair = [Replicas(rank, 2).epoch_order(64, _generator()) for rank in range(2)]
    for step in range(4):  # global batch 16: 8 rows a step on each of two ranks
        ranks_rows = torch.cat([order[step * 8 : (step + 1) * 8] for order in pair])
        assert sorted(ranks_rows.tolist()) == sorted(solo[step * 16 : (step + 1) * 16].tolist())
    assert Replicas().local_batch_size(64) == 64 and Replicas(0, 3).local_batch_size(64) == 22

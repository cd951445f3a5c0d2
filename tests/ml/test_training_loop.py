"""The generic loop: callbacks, cancellation, early stopping, divergence, optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from dlp.errors import TrainingError
from dlp.ml.architectures import MLP
from dlp.ml.artifact import train_tabular
from dlp.ml.config import AutoModelConfig, MLPConfig, TrainingConfig
from dlp.ml.objectives import ClassificationObjective, RegressionObjective
from dlp.ml.trainer import (
    TensorSplit,
    TrainingCallback,
    TrainingCancelled,
    evaluate,
    fit,
    seeded,
)


class Recorder(TrainingCallback):
    """Keeps every hook call; asks to stop after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.total_epochs: int | None = None
        self.epochs: list[int] = []
        self.history: list[dict[str, float]] = []
        self.stop_after = stop_after

    def on_train_start(self, total_epochs: int) -> None:
        self.total_epochs = total_epochs

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(epoch)
        self.history.append(metrics)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def _separable(n: int = 400, seed: int = 0) -> tuple[TensorSplit, TensorSplit]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 4, generator=generator)
    targets = (features[:, 0] + features[:, 1] > 0).long()
    cut = n * 3 // 4
    return (
        TensorSplit(features[:cut], targets[:cut]),
        TensorSplit(features[cut:], targets[cut:]),
    )


def test_callback_gets_the_metric_names_each_epoch(breast_cancer, diabetes) -> None:
    for held_out, task, names in [
        (
            breast_cancer,
            "classification",
            {"train_loss", "val_loss", "val_accuracy", "val_f1", "val_auc"},  # binary: AUC too
        ),
        (diabetes, "regression", {"train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"}),
    ]:
        recorder = Recorder()
        train_tabular(
            held_out.train,
            target="target",
            task=task,
            model=AutoModelConfig(),
            training=TrainingConfig(epochs=4, early_stopping_patience=0),
            callback=recorder,
        )
        assert recorder.total_epochs == 4
        assert recorder.epochs == [1, 2, 3, 4]
        for metrics in recorder.history:
            assert set(metrics) == names
            assert all(isinstance(value, float) for value in metrics.values())


def test_should_stop_raises_training_cancelled(breast_cancer) -> None:
    recorder = Recorder(stop_after=2)
    with pytest.raises(TrainingCancelled) as info:
        train_tabular(
            breast_cancer.train,
            target="target",
            task="classification",
            model=AutoModelConfig(),
            training=TrainingConfig(epochs=50),
            callback=recorder,
        )
    assert recorder.epochs == [1, 2]
    assert info.value.epoch == 3


def test_early_stopping_restores_the_best_weights() -> None:
    train, validation = _separable()
    config = TrainingConfig(epochs=300, learning_rate=0.05, early_stopping_patience=3, seed=1)
    recorder = Recorder()
    with seeded(config.seed):
        model = MLP(4, [16], 2, dropout=0.0)
        result = fit(
            model,
            train=train,
            validation=validation,
            objective=ClassificationObjective(),
            config=config,
            callback=recorder,
        )
    assert result.epochs_run < config.epochs
    assert result.epochs_run == result.best_epoch + 3
    losses = [m["val_loss"] for m in recorder.history]
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert result.metrics == recorder.history[result.best_epoch - 1]
    # The model now holds the best epoch's weights, not the last epoch's.
    assert evaluate(model, validation, ClassificationObjective())["loss"] == pytest.approx(
        min(losses), rel=1e-6
    )
    assert min(losses) < losses[-1]
    assert not model.training


def test_patience_zero_runs_every_epoch() -> None:
    train, validation = _separable()
    config = TrainingConfig(epochs=12, early_stopping_patience=0)
    result = fit(
        MLP(4, [8], 2, dropout=0.0),
        train=train,
        validation=validation,
        objective=ClassificationObjective(),
        config=config,
    )
    assert result.epochs_run == 12


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_each_optimizer_learns(optimizer: str) -> None:
    train, validation = _separable()
    config = TrainingConfig.model_validate(
        {"epochs": 15, "optimizer": optimizer, "learning_rate": 0.02, "early_stopping_patience": 0}
    )
    with seeded(0):
        result = fit(
            MLP(4, [16], 2, dropout=0.0),
            train=train,
            validation=validation,
            objective=ClassificationObjective(),
            config=config,
        )
    assert result.metrics["val_accuracy"] >= 0.9


class _NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features) * float("nan")


def test_non_finite_loss_is_a_training_error() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 4, generator=generator)
    split = TensorSplit(features, torch.randn(40, generator=generator))
    recorder = Recorder()
    with pytest.raises(TrainingError, match="loss became NaN at epoch 1; lower the learning rate"):
        fit(
            _NaNModel(),
            train=split,
            validation=split,
            objective=RegressionObjective(mean=0.0, std=1.0),
            config=TrainingConfig(epochs=3),
            callback=recorder,
        )
    assert recorder.history == []


def test_training_leaves_the_callers_random_state_alone(diabetes) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_tabular(
        diabetes.train,
        target="target",
        task="regression",
        model=MLPConfig(hidden_sizes=[8]),
        training=TrainingConfig(epochs=1),
    )
    assert torch.equal(torch.rand(3), expected)

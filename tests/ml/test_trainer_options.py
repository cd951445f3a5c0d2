"""fit's options: LR schedules, clipping, the monitored metric, class weights, hooks, reports."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlp.errors import ValidationError
from dlp.ml.architectures import MLP
from dlp.ml.config import TrainingConfig
from dlp.ml.objectives import (
    ClassificationObjective,
    Objective,
    RegressionObjective,
    balanced_class_weights,
)
from dlp.ml.trainer import FitResult, TensorSplit, TrainingCallback, evaluate, fit, seeded


class StepRecorder(TrainingCallback):
    """Keeps every on_step and on_epoch_complete call."""

    def __init__(self) -> None:
        self.started = False
        self.steps: list[tuple[int, int, dict[str, float]]] = []
        self.epochs: list[tuple[int, int, dict[str, float]]] = []

    def on_train_start(self, total_epochs: int) -> None:
        self.started = True

    def on_step(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.steps.append((epoch, step, metrics))

    def on_epoch_complete(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        self.epochs.append((epoch, step, metrics))


def _classes(n: int = 200, *, minority: float = 0.5, seed: int = 0) -> tuple[TensorSplit, ...]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 4, generator=generator)
    threshold = torch.quantile(features[:, 0] + features[:, 1], 1 - minority)
    targets = (features[:, 0] + features[:, 1] > threshold).long()
    cut = n * 3 // 4
    return TensorSplit(features[:cut], targets[:cut]), TensorSplit(features[cut:], targets[cut:])


def _values(n: int = 200) -> tuple[TensorSplit, ...]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n, 4, generator=generator)
    targets = features[:, 0] - 0.5 * features[:, 2]
    cut = n * 3 // 4
    return TensorSplit(features[:cut], targets[:cut]), TensorSplit(features[cut:], targets[cut:])


def _fit(
    config: TrainingConfig,
    *,
    callback: TrainingCallback | None = None,
    objective: Objective | None = None,
    splits: tuple[TensorSplit, ...] | None = None,
    model: nn.Module | None = None,
) -> FitResult:
    train, validation = splits or _classes()
    objective = objective or ClassificationObjective()
    with seeded(config.seed):
        n_outputs = 2 if isinstance(objective, ClassificationObjective) else 1
        model = model or MLP(4, [8], n_outputs, 0.0)
        return fit(
            model,
            train=train,
            validation=validation,
            objective=objective,
            config=config,
            callback=callback,
        )


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_learning_rate_schedules_step_per_optimizer_step(schedule: str) -> None:
    # 150 training rows in batches of 32: 5 steps per epoch, 15 in all.
    config = TrainingConfig.model_validate(
        {
            "epochs": 3,
            "batch_size": 32,
            "learning_rate": 0.01,
            "lr_schedule": schedule,
            "progress_every_steps": 1,
            "early_stopping_patience": 0,
        }
    )
    recorder = StepRecorder()
    _fit(config, callback=recorder)
    assert [step for _, step, _ in recorder.steps] == list(range(1, 16))
    assert [epoch for epoch, _, _ in recorder.steps] == [1] * 5 + [2] * 5 + [3] * 5
    assert [(epoch, step) for epoch, step, _ in recorder.epochs] == [(1, 5), (2, 10), (3, 15)]
    lrs = [metrics["lr"] for _, _, metrics in recorder.steps]
    if schedule == "constant":
        assert lrs == [0.01] * 15
    elif schedule == "cosine":
        expected = [0.01 * 0.5 * (1 + math.cos(math.pi * s / 15)) for s in range(15)]
        assert lrs == pytest.approx(expected, rel=1e-9)
    else:
        peak = lrs.index(max(lrs))
        assert lrs[0] == pytest.approx(0.01 / 25)
        assert max(lrs) == pytest.approx(0.01, rel=0.01)  # the peak falls between two steps
        assert 2 <= peak <= 6  # the warm-up takes 30% of the steps
        assert lrs[-1] < lrs[0]


def test_on_step_reports_the_running_epoch_loss() -> None:
    config = TrainingConfig(epochs=2, batch_size=32, progress_every_steps=5)
    recorder = StepRecorder()
    _fit(config, callback=recorder)
    # Step 5 and 10 end epochs 1 and 2: the running mean is then the epoch's train_loss.
    assert [(epoch, step) for epoch, step, _ in recorder.steps] == [(1, 5), (2, 10)]
    for (_, _, at_step), (_, _, at_epoch) in zip(recorder.steps, recorder.epochs, strict=True):
        assert at_step["train_loss"] == pytest.approx(at_epoch["train_loss"], rel=1e-6)


def test_gradient_clipping_bounds_the_update() -> None:
    def first_update(clip: float | None) -> float:
        config = TrainingConfig(
            epochs=1,
            batch_size=1000,  # one step
            optimizer="sgd",
            learning_rate=1.0,
            weight_decay=0.0,
            gradient_clip_norm=clip,
        )
        with seeded(0):
            model = MLP(4, [8], 2, 0.0)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        _fit(config, model=model)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm())

    assert first_update(1e-3) == pytest.approx(1e-3, rel=1e-4)
    assert first_update(None) > 0.01


def test_a_metric_the_task_lacks_is_refused_before_training() -> None:
    recorder = StepRecorder()
    with pytest.raises(ValidationError, match=r"'val_accuracy'.*val_rmse"):
        _fit(
            TrainingConfig(epochs=2, early_stopping_metric="val_accuracy"),
            callback=recorder,
            objective=RegressionObjective(mean=0.0, std=1.0),
            splits=_values(),
        )
    assert not recorder.started


@pytest.mark.parametrize(
    ("metric", "higher"), [("val_accuracy", True), ("val_f1", True), ("val_loss", False)]
)
def test_the_monitored_metric_picks_the_kept_epoch(metric: str, higher: bool) -> None:
    config = TrainingConfig.model_validate(
        {"epochs": 12, "learning_rate": 0.05, "early_stopping_metric": metric, "seed": 2}
    )
    result = _fit(config)
    values = [entry[metric] for entry in result.history]
    best = max(values) if higher else min(values)
    assert result.best_epoch == values.index(best) + 1
    assert result.metrics == result.history[result.best_epoch - 1]


def test_patience_counts_epochs_without_a_better_monitored_value() -> None:
    config = TrainingConfig(
        epochs=200, learning_rate=0.05, early_stopping_patience=2, early_stopping_metric="val_r2"
    )
    result = _fit(config, objective=RegressionObjective(mean=0.0, std=1.0), splits=_values())
    assert result.epochs_run == result.best_epoch + 2 < 200
    r2 = [entry["val_r2"] for entry in result.history]
    assert result.best_epoch == r2.index(max(r2)) + 1


def test_balanced_class_weights() -> None:
    targets = torch.tensor([0] * 90 + [1] * 10)
    balanced = balanced_class_weights(targets, "balanced")
    assert balanced is not None
    assert balanced.tolist() == pytest.approx([100 / (2 * 90), 100 / (2 * 10)])
    auto = balanced_class_weights(targets, "auto")
    assert auto is not None and torch.equal(auto, balanced)
    assert balanced_class_weights(targets, "none") is None
    assert balanced_class_weights(torch.tensor([0] * 30 + [1] * 10), "auto") is None  # 3x: even
    # A class missing from training (index 1) gets a harmless weight of 1.
    gap = balanced_class_weights(torch.tensor([0] * 8 + [2] * 2), "balanced")
    assert gap is not None and gap.tolist() == pytest.approx([10 / 16, 1.0, 10 / 4])


def test_weighted_training_loss_but_unweighted_val_loss() -> None:
    splits = _classes(400, minority=0.1)
    assert balanced_class_weights(splits[0].targets, "auto") is not None
    weighted = _fit(TrainingConfig(epochs=3, class_weights="auto"), splits=splits)
    plain = _fit(TrainingConfig(epochs=3, class_weights="none"), splits=splits)
    assert weighted.history[0]["train_loss"] != pytest.approx(plain.history[0]["train_loss"])
    with seeded(0):
        model = MLP(4, [8], 2, 0.0)
        result = fit(
            model,
            train=splits[0],
            validation=splits[1],
            objective=ClassificationObjective(),
            config=TrainingConfig(epochs=3, class_weights="balanced"),
        )
    unweighted = evaluate(model, splits[1], ClassificationObjective())["loss"]
    assert result.metrics["val_loss"] == pytest.approx(unweighted, rel=1e-6)
    assert result.evaluation["log_loss"] == pytest.approx(unweighted, rel=1e-6)


def test_regression_ignores_class_weights() -> None:
    config = TrainingConfig(epochs=2, class_weights="balanced")
    result = _fit(config, objective=RegressionObjective(mean=0.0, std=1.0), splits=_values())
    assert math.isfinite(result.metrics["train_loss"])


def test_fit_result_evaluates_the_kept_weights() -> None:
    _, validation = _classes()
    result = _fit(TrainingConfig(epochs=6, learning_rate=0.02))
    assert set(result.evaluation) == {"confusion_matrix", "log_loss", "roc_auc"}
    matrix = result.evaluation["confusion_matrix"]
    assert len(matrix) == 2 and sum(map(sum, matrix)) == len(validation)
    assert (matrix[0][0] + matrix[1][1]) / len(validation) == result.metrics["val_accuracy"]
    assert result.evaluation["log_loss"] == pytest.approx(result.metrics["val_loss"], rel=1e-6)
    assert result.evaluation["roc_auc"] == pytest.approx(result.metrics["val_auc"])
    assert len(result.history) == result.epochs_run == 6

    objective = RegressionObjective(mean=5.0, std=3.0)
    regression = _fit(TrainingConfig(epochs=4), objective=objective, splits=_values())
    assert regression.evaluation == pytest.approx(
        {name: regression.metrics[f"val_{name}"] for name in ("rmse", "mae", "r2")}, rel=1e-9
    )

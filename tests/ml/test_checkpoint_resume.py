"""Checkpoints: one pickle-free safetensors blob per epoch, and exact resume from it."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from torch import nn

from dlp.errors import ValidationError
from dlp.ml import checkpoint, trainer
from dlp.ml.architectures import MLP
from dlp.ml.config import TrainingConfig
from dlp.ml.objectives import ClassificationObjective
from dlp.ml.trainer import FitResult, TensorSplit, TrainingCallback, TrainingCancelled, fit, seeded

EPOCHS, STOP_AFTER = 5, 2


class Checkpoints(TrainingCallback):
    """Keeps every checkpoint and epoch; asks to stop after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.blobs: dict[int, bytes] = {}
        self.epochs: list[int] = []
        self.stop_after = stop_after

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(epoch)

    def on_checkpoint(self, checkpoint: bytes, epoch: int) -> None:
        self.blobs[epoch] = checkpoint

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def _splits() -> tuple[TensorSplit, TensorSplit]:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(300, 6, generator=generator)
    targets = (features[:, 0] * features[:, 1] + features[:, 2] > 0).long()
    return TensorSplit(features[:240], targets[:240]), TensorSplit(features[240:], targets[240:])


def _run(
    config: TrainingConfig,
    *,
    callback: TrainingCallback | None = None,
    resume_from: bytes | None = None,
    init_seed: int | None = None,
    hidden: int = 32,
) -> tuple[FitResult, nn.Module]:
    train, validation = _splits()
    with seeded(config.seed if init_seed is None else init_seed):
        model = MLP(6, [hidden, hidden], 2, dropout=0.3)
        result = fit(
            model,
            train=train,
            validation=validation,
            objective=ClassificationObjective(),
            config=config,
            callback=callback,
            resume_from=resume_from,
        )
    return result, model


def _config(schedule: str, **overrides: object) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {
            "epochs": EPOCHS,
            "batch_size": 16,
            "learning_rate": 0.01,
            "lr_schedule": schedule,
            "early_stopping_patience": 0,
            "seed": 7,
            **overrides,
        }
    )


def _interrupted(config: TrainingConfig) -> bytes:
    callback = Checkpoints(stop_after=STOP_AFTER)
    with pytest.raises(TrainingCancelled):
        _run(config, callback=callback)
    assert sorted(callback.blobs) == list(range(1, STOP_AFTER + 1))
    return callback.blobs[STOP_AFTER]


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine"])
def test_resume_equals_the_uninterrupted_run(schedule: str) -> None:
    config = _config(schedule)
    expected, expected_model = _run(config)
    blob = _interrupted(config)
    # A fresh model with other initial weights: everything must come from the checkpoint.
    callback = Checkpoints()
    resumed, resumed_model = _run(config, resume_from=blob, init_seed=99, callback=callback)
    assert callback.epochs == list(range(STOP_AFTER + 1, EPOCHS + 1))
    assert resumed.epochs_run == expected.epochs_run == EPOCHS
    assert resumed.best_epoch == expected.best_epoch
    assert resumed.metrics == pytest.approx(expected.metrics, rel=1e-6, abs=1e-6)
    assert len(resumed.history) == EPOCHS
    for got, want in zip(resumed.history, expected.history, strict=True):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert resumed.evaluation["confusion_matrix"] == expected.evaluation["confusion_matrix"]
    for (name, got), want in zip(
        resumed_model.state_dict().items(), expected_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)


def test_resume_after_early_stopping_does_not_train_further() -> None:
    config = _config("constant", epochs=60, learning_rate=0.05, early_stopping_patience=2)
    callback = Checkpoints()
    expected, _ = _run(config, callback=callback)
    assert expected.epochs_run < 60
    again = Checkpoints()
    resumed, _ = _run(config, callback=again, resume_from=callback.blobs[expected.epochs_run])
    assert again.epochs == []
    assert resumed.metrics == expected.metrics
    assert resumed.best_epoch == expected.best_epoch


def test_checkpoint_is_safetensors_with_json_metadata() -> None:
    blob = _interrupted(_config("onecycle"))
    tensors = safetensors.torch.load(blob)
    assert "model/layers.0.weight" in tensors
    assert "optimizer/state/0/exp_avg" in tensors
    assert "progress/best_weights/layers.0.weight" in tensors
    assert tensors["generator"].dtype == torch.uint8
    header_size = int.from_bytes(blob[:8], "little")
    metadata = json.loads(blob[8 : 8 + header_size])["__metadata__"]
    assert metadata["format"] == "dlp.training-checkpoint"
    assert metadata["version"] == "1"
    assert '"epoch",2' in metadata["state"]


def test_a_model_of_another_shape_is_refused() -> None:
    config = _config("constant")
    blob = _interrupted(config)
    with pytest.raises(ValidationError, match=r"do not match the model: layers.0.weight"):
        _run(config, resume_from=blob, hidden=16)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda blob: b"", "unreadable"),
        (lambda blob: b"\x00" * 64, "unreadable"),
        (lambda blob: blob[: len(blob) // 2], "unreadable"),
        (lambda blob: safetensors.torch.save({"x": torch.zeros(1)}), "unreadable"),
        (
            lambda blob: safetensors.torch.save({"x": torch.zeros(1)}, metadata={"format": "x"}),
            "not a dlp training checkpoint",
        ),
    ],
)
def test_corrupt_checkpoints_are_validation_errors(mangle, message: str) -> None:
    config = _config("constant")
    blob = _interrupted(config)
    with pytest.raises(ValidationError, match=message):
        _run(config, resume_from=mangle(blob))


def test_a_checkpoint_from_another_configuration_is_refused() -> None:
    blob = _interrupted(_config("constant"))
    with pytest.raises(ValidationError, match="batch_size=16; this run has batch_size=32"):
        _run(_config("constant", batch_size=32), resume_from=blob)
    with pytest.raises(ValidationError, match="lr_schedule"):
        _run(_config("cosine"), resume_from=blob)
    with pytest.raises(ValidationError, match="early_stopping_metric='val_loss'"):
        _run(_config("constant", early_stopping_metric="val_f1"), resume_from=blob)


def test_no_checkpoint_is_built_unless_a_callback_wants_it(monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("checkpoint built without a listener")

    monkeypatch.setattr(trainer, "save_checkpoint", refuse)
    result, _ = _run(_config("constant", epochs=2), callback=TrainingCallback())
    assert result.epochs_run == 2


def test_tied_weights_and_tuples_round_trip() -> None:
    shared = torch.arange(4.0)
    tensors: dict[str, torch.Tensor] = {}
    packed = checkpoint._pack({"a": shared, "b": shared, 3: (1.5, None, "x")}, "", tensors)
    blob = safetensors.torch.save(tensors)
    restored = checkpoint._unpack(json.loads(json.dumps(packed)), safetensors.torch.load(blob))
    assert isinstance(restored, dict)
    assert torch.equal(restored["a"], shared) and torch.equal(restored["b"], shared)
    assert restored[3] == (1.5, None, "x")

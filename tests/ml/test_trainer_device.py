"""Device and precision choice; the per-batch transfer path; real CUDA when there is one."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from dlp.errors import ValidationError
from dlp.ml import device as device_module
from dlp.ml import trainer
from dlp.ml.architectures import MLP
from dlp.ml.config import TrainingConfig
from dlp.ml.device import Precision, fits_on_device, resolve_device, resolve_precision
from dlp.ml.objectives import ClassificationObjective
from dlp.ml.trainer import FitResult, TensorSplit, TrainingCallback, fit, seeded

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cuda(monkeypatch, *, available: bool = True, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)


def test_resolve_device(monkeypatch) -> None:
    _cuda(monkeypatch, available=False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValidationError, match="'cuda' was requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValidationError, match="unknown device 'tpu'"):
        resolve_device("tpu")  # type: ignore[arg-type]
    _cuda(monkeypatch, available=True)
    assert resolve_device("auto") == CUDA
    assert resolve_device("cuda") == CUDA
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("mode", ["auto", "off", "bf16", "fp16"])
def test_the_cpu_always_computes_in_float32(monkeypatch, mode: str) -> None:
    _cuda(monkeypatch)
    precision = resolve_precision(torch.device("cpu"), mode)  # type: ignore[arg-type]
    assert precision.autocast_dtype is None
    assert isinstance(precision.autocast(), nullcontext)
    assert precision.grad_scaler() is None


@pytest.mark.parametrize(
    ("mode", "bf16", "expected"),
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float16),
        ("bf16", True, torch.bfloat16),
        ("fp16", True, torch.float16),
        ("off", True, None),
    ],
)
def test_cuda_precision(monkeypatch, mode: str, bf16: bool, expected: torch.dtype | None) -> None:
    _cuda(monkeypatch, bf16=bf16)
    assert resolve_precision(CUDA, mode).autocast_dtype == expected  # type: ignore[arg-type]


def test_bf16_without_native_support_is_refused(monkeypatch) -> None:
    _cuda(monkeypatch, bf16=False)
    with pytest.raises(ValidationError, match="native bfloat16"):
        resolve_precision(CUDA, "bf16")


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled:UserWarning")
def test_only_float16_gets_a_gradient_scaler() -> None:
    assert Precision(CUDA, torch.bfloat16).grad_scaler() is None
    assert Precision(CUDA, None).grad_scaler() is None
    scaler = Precision(CUDA, torch.float16).grad_scaler()
    assert isinstance(scaler, torch.amp.GradScaler)


def test_splits_stay_on_the_gpu_only_while_they_fit(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    assert fits_on_device(500, CUDA)
    assert not fits_on_device(501, CUDA)
    assert fits_on_device(10**15, torch.device("cpu"))
    assert device_module.DEVICE_MEMORY_SHARE == 0.5


def _fit(config: TrainingConfig, device: torch.device | None = None) -> FitResult:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(300, 4, generator=generator)
    targets = (features[:, 0] > features[:, 1]).long()
    with seeded(0):
        return fit(
            MLP(4, [16], 2, dropout=0.2),
            train=TensorSplit(features[:240], targets[:240]),
            validation=TensorSplit(features[240:], targets[240:]),
            objective=ClassificationObjective(),
            config=config,
            device=device,
            callback=TrainingCallback(),
        )


def test_moving_batches_gives_the_same_model_as_resident_splits(monkeypatch) -> None:
    config = TrainingConfig(epochs=3, batch_size=32)
    resident = _fit(config, torch.device("cpu"))
    monkeypatch.setattr(trainer, "fits_on_device", lambda nbytes, device: False)
    moved = _fit(config, torch.device("cpu"))
    assert moved.history == resident.history


@needs_cuda
@pytest.mark.parametrize("mode", ["off", "bf16", "fp16"])
def test_training_on_cuda(mode: str) -> None:
    if mode == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("no native bfloat16 on this GPU")
    config = TrainingConfig.model_validate(
        {"epochs": 15, "batch_size": 32, "learning_rate": 0.02, "mixed_precision": mode}
    )
    result = _fit(config, CUDA)
    assert result.metrics["val_accuracy"] >= 0.9
    assert sum(map(sum, result.evaluation["confusion_matrix"])) == 60


@needs_cuda
def test_cuda_checkpoint_resumes_on_cuda() -> None:
    class Keep(TrainingCallback):
        blob = b""

        def on_checkpoint(self, checkpoint: bytes, epoch: int) -> None:
            self.blob = checkpoint

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(200, 4, generator=generator)
    split = TensorSplit(features, (features[:, 0] > 0).long())
    config = TrainingConfig(epochs=2, mixed_precision="fp16")
    keep = Keep()
    with seeded(0):
        fit(
            MLP(4, [8], 2, 0.1),
            train=split,
            validation=split,
            objective=ClassificationObjective(),
            config=config,
            callback=keep,
            device=CUDA,
        )
        resumed = fit(
            MLP(4, [8], 2, 0.1),
            train=split,
            validation=split,
            objective=ClassificationObjective(),
            config=config.model_copy(update={"epochs": 3}),
            device=CUDA,
            resume_from=keep.blob,
        )
    assert resumed.epochs_run == 3

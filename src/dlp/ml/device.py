"""Where the training loop computes: device choice, split placement, autocast precision."""

from __future__ import annotations

import gc
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch

from dlp.errors import ValidationError

DeviceRequest = Literal["auto", "cpu", "cuda"]
MixedPrecision = Literal["auto", "off", "bf16", "fp16"]

DEVICE_MEMORY_SHARE = 0.5
"""Whole splits stay on an accelerator while they take at most this share of its free memory;
the rest is left to the model, its gradients, optimizer state and activations."""


def resolve_device(requested: DeviceRequest) -> torch.device:
    """The device a request names; ``auto`` picks CUDA when it is available, else the CPU."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested not in ("auto", "cuda"):
        raise ValidationError(f"unknown device {requested!r}; use auto, cpu or cuda")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise ValidationError(
            "device 'cuda' was requested but CUDA is not available here "
            "(no NVIDIA GPU, or a CPU-only torch build); use 'auto' or 'cpu'"
        )
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """The device and the autocast dtype (None: plain float32) of one training run."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None

    def autocast(self) -> AbstractContextManager[object]:
        """A context that runs the forward pass (and loss) in the chosen precision."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A gradient scaler for float16 (whose small gradients underflow), else None."""
        if self.autocast_dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.device.type)


def resolve_precision(device: torch.device, mixed_precision: MixedPrecision) -> Precision:
    """The precision ``mixed_precision`` asks for on ``device``; the CPU always runs float32."""
    if device.type != "cuda" or mixed_precision == "off":
        return Precision(device)
    # Natively only: emulated bfloat16 (pre-Ampere GPUs) is slower than fp16 with a scaler.
    bf16_native = torch.cuda.is_bf16_supported(including_emulation=False)
    if mixed_precision == "bf16" and not bf16_native:
        raise ValidationError(
            "mixed_precision 'bf16' needs a GPU with native bfloat16 (Ampere or newer); "
            "use 'auto' or 'fp16'"
        )
    if mixed_precision == "fp16" or (mixed_precision == "auto" and not bf16_native):
        return Precision(device, torch.float16)
    return Precision(device, torch.bfloat16)


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """True when tensors of ``nbytes`` may stay on ``device`` for the whole run."""
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= free * DEVICE_MEMORY_SHARE


def release_device_memory() -> None:
    """Hand a finished run's cached GPU memory back, so the next job on this GPU gets it."""
    gc.collect()
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.empty_cache()

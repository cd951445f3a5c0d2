"""The devices of this machine, and how a worker's pool divides its GPUs among its jobs.

``python -m dlp.ml.hardware`` prints :func:`detect_hardware` as JSON: a worker's main
process asks a subprocess, because a CUDA context created before the pool forks breaks
CUDA in every child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def detect_hardware() -> dict[str, Any]:
    """CPU cores and the CUDA GPUs visible here (``CUDA_VISIBLE_DEVICES`` applies)."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "index": index,
                    "name": str(properties.name),
                    "memory_mb": int(properties.total_memory) // (1024 * 1024),
                }
            )
    return {"cpu_cores": os.cpu_count() or 1, "gpus": gpus}


def probe_hardware(*, timeout_s: float) -> dict[str, Any]:
    """:func:`detect_hardware` without creating a CUDA context in this process.

    A CPU-only torch build answers here; a CUDA build is asked in a subprocess, because
    a process that forks a pool after initialising CUDA breaks CUDA in every child.
    CPU only is also the answer when the probe fails (logged).
    """
    import torch

    cpu_only: dict[str, Any] = {"cpu_cores": os.cpu_count() or 1, "gpus": []}
    if torch.version.cuda is None:
        return cpu_only
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "dlp.ml.hardware"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        found = json.loads(probe.stdout.strip().splitlines()[-1])
        return {"cpu_cores": int(found["cpu_cores"]), "gpus": list(found["gpus"])}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as exc:
        log.warning("worker.hardware_probe_failed", error=str(exc)[-500:])
        return cpu_only


def gpu_slice(process_index: int, concurrency: int, gpu_count: int) -> list[int]:
    """Positions, among the visible GPUs, of those the pool child ``process_index`` owns.

    Children own disjoint slices: ``gpu_count // concurrency`` GPUs each when there are
    enough to go round, else one each for the first ``gpu_count`` children and none for
    the rest, so no two jobs ever share a GPU.
    """
    if gpu_count <= 0 or concurrency <= 0 or not 0 <= process_index < concurrency:
        return []
    if concurrency > gpu_count:
        return [process_index] if process_index < gpu_count else []
    share = gpu_count // concurrency
    return list(range(process_index * share, (process_index + 1) * share))


def gpus_per_job(concurrency: int, gpu_count: int) -> int:
    """The most GPUs any one child of a pool of ``concurrency`` owns."""
    return max((len(gpu_slice(i, concurrency, gpu_count)) for i in range(concurrency)), default=0)


if __name__ == "__main__":
    print(json.dumps(detect_hardware()))

"""What a worker knows of its devices: how its pool splits the GPUs, what it reports, and
which jobs fit it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from dlp import worker, worker_state
from dlp.jobs.capacity import Capacity, fits, shortfall
from dlp.ml import hardware as hardware_module
from dlp.ml.hardware import gpu_slice, gpus_per_job


@pytest.mark.parametrize(
    ("concurrency", "gpu_count", "slices"),
    [
        (1, 0, [[]]),
        (2, 0, [[], []]),
        (1, 4, [[0, 1, 2, 3]]),
        (2, 4, [[0, 1], [2, 3]]),
        (3, 4, [[0], [1], [2]]),
        (2, 5, [[0, 1], [2, 3]]),
        (4, 2, [[0], [1], [], []]),
        (3, 1, [[0], [], []]),
    ],
)
def test_each_pool_child_owns_its_own_gpus(
    concurrency: int, gpu_count: int, slices: list[list[int]]
) -> None:
    assert [gpu_slice(i, concurrency, gpu_count) for i in range(concurrency)] == slices
    assert gpus_per_job(concurrency, gpu_count) == max(len(s) for s in slices)


def test_no_gpu_is_ever_shared_and_unknown_children_get_none() -> None:
    for concurrency in range(1, 9):
        for gpu_count in range(9):
            owned = [g for i in range(concurrency) for g in gpu_slice(i, concurrency, gpu_count)]
            assert len(owned) == len(set(owned)) and set(owned) <= set(range(gpu_count))
    assert gpu_slice(2, 2, 8) == [] and gpu_slice(-1, 2, 8) == []


def test_a_child_sees_only_its_slice_of_the_parents_visible_gpus() -> None:
    assert worker.child_visible_devices(1, 2, ["4", "5", "6", "7"]) == "6,7"
    assert worker.child_visible_devices(0, 3, ["1", "3"]) == "1"
    assert worker.child_visible_devices(2, 3, ["1", "3"]) == ""


def _fake_gpus(count: int) -> list[dict[str, Any]]:
    return [{"index": i, "name": "Fake GPU", "memory_mb": 16000} for i in range(count)]


def test_pool_child_pins_its_gpus_and_records_its_capacity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_state, "_job_capacity", None)
    monkeypatch.setattr(worker, "_concurrency", 2)
    monkeypatch.setattr(worker, "_hardware", {"cpu_cores": 8, "gpus": _fake_gpus(4)})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    worker._pin_devices(1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6,7"
    assert worker_state.job_capacity() == Capacity(cuda=2, cpu=8)

    monkeypatch.setattr(worker, "_concurrency", 3)
    monkeypatch.setattr(worker, "_hardware", {"cpu_cores": 8, "gpus": _fake_gpus(2)})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    worker._pin_devices(2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert worker_state.job_capacity() == Capacity(cuda=0, cpu=8)


def test_outside_a_worker_the_capacity_is_this_machines_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_state, "_job_capacity", None)
    assert worker_state.job_capacity() == Capacity(cuda=0, cpu=os.cpu_count() or 1)


def test_the_probe_module_prints_this_machines_devices() -> None:
    probe = subprocess.run(
        [sys.executable, "-m", "dlp.ml.hardware"], capture_output=True, text=True, check=True
    )
    found = json.loads(probe.stdout)
    assert found["cpu_cores"] == os.cpu_count()
    assert all({"index", "name", "memory_mb"} <= set(gpu) for gpu in found["gpus"])


def test_worker_hardware_adds_what_one_job_may_use() -> None:
    hardware = worker.worker_hardware(2)
    assert hardware["cpu_cores"] == os.cpu_count()
    assert hardware["job_devices"] == {
        "cuda": gpus_per_job(2, len(hardware["gpus"])),
        "cpu": hardware["cpu_cores"],
    }


def test_a_cuda_build_whose_probe_fails_falls_back_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def hang(*_args: Any, **_kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired("probe", 1)

    warnings: list[str] = []
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(hardware_module.subprocess, "run", hang)
    monkeypatch.setattr(hardware_module.log, "warning", lambda event, **_: warnings.append(event))
    assert worker.worker_hardware(1) == {
        "cpu_cores": os.cpu_count() or 1,
        "gpus": [],
        "job_devices": {"cuda": 0, "cpu": os.cpu_count() or 1},
    }
    assert warnings == ["worker.hardware_probe_failed"]


def test_which_jobs_fit_which_capacity() -> None:
    gpu_box, cpu_box = Capacity(cuda=2, cpu=16), Capacity(cuda=0, cpu=4)
    assert fits(2, "cuda", gpu_box) and not fits(3, "cuda", gpu_box)
    assert not fits(1, "cuda", cpu_box) and fits(4, "cpu", cpu_box)
    # auto: the GPUs when the process owns any, else the cores.
    assert fits(2, "auto", gpu_box) and not fits(4, "auto", gpu_box)
    assert fits(4, "auto", cpu_box) and not fits(5, "auto", cpu_box)


def test_shortfall_names_the_largest_worker_and_never_guesses() -> None:
    workers = [("dlp-1@a", Capacity(cuda=1, cpu=8)), ("dlp-2@b", Capacity(cuda=0, cpu=32))]
    assert shortfall(4, "cuda", workers) == (
        "no live worker has 4 cuda devices; the largest has 1 (worker dlp-1@a)"
    )
    assert shortfall(1, "cuda", workers) is None
    assert shortfall(40, "auto", workers) == (
        "no live worker has 40 devices (GPUs, else CPU cores); the largest has 32 (worker dlp-2@b)"
    )
    assert shortfall(4, "cuda", []) is None
    assert shortfall(4, "cuda", [*workers, ("dlp-3@old", None)]) is None

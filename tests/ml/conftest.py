"""Shared fixtures for the ML tests: sklearn's bundled datasets as Arrow tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny models: one thread is faster and immune to other processes on the box.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclass(frozen=True)
class HeldOut:
    """A training table plus rows (as API-style dicts) and labels kept out of training."""

    train: pa.Table
    test_rows: list[dict[str, Any]]
    test_targets: np.ndarray


def _held_out(data: np.ndarray, target: np.ndarray, names: list[str], n_test: int) -> HeldOut:
    order = np.random.default_rng(1234).permutation(len(target))
    test, train = order[:n_test], order[n_test:]
    columns: dict[str, Any] = {name: data[train, i] for i, name in enumerate(names)}
    columns["target"] = target[train]
    rows = [{name: float(data[j, i]) for i, name in enumerate(names)} for j in test]
    return HeldOut(train=pa.table(columns), test_rows=rows, test_targets=target[test])


@pytest.fixture(scope="session")
def breast_cancer() -> HeldOut:
    """569 rows, 30 numeric features, 0/1 int target; 150 rows held out."""
    bunch = load_breast_cancer()
    return _held_out(bunch.data, bunch.target, list(bunch.feature_names), n_test=150)


@pytest.fixture(scope="session")
def diabetes() -> HeldOut:
    """442 rows, 10 numeric features, float target; 100 rows held out."""
    bunch = load_diabetes()
    return _held_out(bunch.data, bunch.target, list(bunch.feature_names), n_test=100)


@pytest.fixture(scope="session")
def mixed_table() -> pa.Table:
    """Numeric and string features with gaps, an id column, an empty column, a str target."""
    n_rows = 240
    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], size=n_rows)
    x = rng.normal(size=n_rows)
    label = np.where((colors == "red") | (x > 1.0), "yes", "no")
    x_values: list[float | None] = [None if i % 7 == 0 else float(v) for i, v in enumerate(x)]
    color_values: list[str | None] = [None if i % 11 == 0 else str(c) for i, c in enumerate(colors)]
    return pa.table(
        {
            "customer_id": [f"c{i:05d}" for i in range(n_rows)],
            "x": pa.array(x_values, type=pa.float64()),
            "color": pa.array(color_values, type=pa.string()),
            "count": pa.array(rng.integers(0, 5, size=n_rows), type=pa.int64()),
            "flag": pa.array(rng.random(n_rows) > 0.5),
            "empty": pa.array([None] * n_rows, type=pa.float64()),
            "label": label.tolist(),
        }
    )

"""Seeded train/validation split, stratified by class when labels are given."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.int64]


def split_train_validation(
    n_rows: int, *, fraction: float, seed: int, strata: npt.NDArray[np.int64] | None = None
) -> tuple[IndexArray, IndexArray]:
    """Sorted (train, validation) row indices; both non-empty when ``n_rows >= 2``."""
    if n_rows < 2:
        raise ValueError("a split needs at least 2 rows")
    rng = np.random.default_rng(seed)
    if strata is not None:
        validation_parts: list[IndexArray] = []
        for label in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == label))
            # Keep at least one row of each class for training.
            n_val = min(round(len(members) * fraction), len(members) - 1)
            validation_parts.append(members[:n_val])
        validation = np.concatenate(validation_parts)
        if 0 < len(validation) < n_rows:
            return _complement(n_rows, validation), np.sort(validation)
    order = rng.permutation(n_rows)
    n_val = min(max(round(n_rows * fraction), 1), n_rows - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _complement(n_rows: int, chosen: IndexArray) -> IndexArray:
    mask = np.ones(n_rows, dtype=np.bool_)
    mask[chosen] = False
    return np.flatnonzero(mask).astype(np.int64)

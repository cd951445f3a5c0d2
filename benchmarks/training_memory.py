"""Peak memory of training an MLP from a large CSV, against the data's float32 size.

Writes a CSV of N rows (default 1,000,000) x 20 numeric features + a label, then, in a
fresh subprocess (so nothing else inflates its peak), reads it exactly as the worker
does (``read_table`` with the profiled column types, decimals as float32) and trains
one epoch with ``train_tabular``. Prints the peak RSS growth over the process's
baseline after imports and the ratio to the float32 size of the data (goal < 3).

    .venv/bin/python benchmarks/training_memory.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20
MIB = 2**20


def write_csv(path: Path, rows: int) -> None:
    """A numeric CSV with a binary label, written in chunks."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=N_FEATURES)
    header = ",".join([*(f"x{i}" for i in range(N_FEATURES)), "label"])
    with path.open("w") as handle:
        handle.write(header + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            x = np.round(rng.normal(size=(n, N_FEATURES)), 4)
            y = (x @ weights > 0).astype(int)
            body = np.column_stack([x, y])
            np.savetxt(handle, body, delimiter=",", fmt=["%.4f"] * N_FEATURES + ["%d"])


def measure(path: Path) -> dict[str, float]:
    """Run in the child: profile, read and train as the worker does; report memory."""
    import pyarrow as pa
    import torch

    from dlp.datasets.profile import profile_csv, read_table
    from dlp.ml.artifact import train_tabular
    from dlp.ml.config import MLPConfig, TrainingConfig

    torch.set_num_threads(2)
    profile = profile_csv(lambda: path.open("rb"))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    # As in the worker, the table is handed over without a local name, so train_tabular
    # can drop it once it is encoded.
    with path.open("rb") as handle:
        train_tabular(
            read_table(handle, file_format="csv", columns=profile.columns, float_type=pa.float32()),
            target="label",
            task="classification",
            model=MLPConfig(hidden_sizes=[64]),
            training=TrainingConfig(epochs=1, batch_size=1024, early_stopping_patience=0),
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = profile.n_rows
    data_bytes = rows * (N_FEATURES + 1) * 4
    return {
        "rows": rows,
        "float32_mb": data_bytes / MIB,
        "baseline_mb": baseline / MIB,
        "peak_mb": peak / MIB,
        "growth_mb": (peak - baseline) / MIB,
        "ratio": (peak - baseline) / data_bytes,
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    """Write the CSV, measure in a child process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="dlp-training-memory-") as scratch:
        path = Path(scratch) / "big.csv"
        write_csv(path, args.rows)
        size = path.stat().st_size / MIB
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    print(
        f"csv                 {size:8.1f} MiB, {figures['rows']:,} rows x {N_FEATURES + 1} columns"
    )
    print(f"float32 data        {figures['float32_mb']:8.1f} MiB")
    print(f"baseline RSS        {figures['baseline_mb']:8.1f} MiB (after imports and profiling)")
    print(f"peak RSS            {figures['peak_mb']:8.1f} MiB")
    print(f"read + 1 epoch      {figures['seconds']:8.1f} s")
    print(f"training_memory: growth_mb={figures['growth_mb']:.0f} ratio={figures['ratio']:.2f}")
    return 0 if figures["ratio"] < 3 else 1


if __name__ == "__main__":
    sys.exit(main())

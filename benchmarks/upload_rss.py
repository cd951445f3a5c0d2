"""How much memory does ``dlp serve`` need to take a large CSV upload?

Starts ``dlp serve --no-worker`` on a scratch data dir, writes a CSV of about
``--mb`` MiB to disk, streams it to ``POST /api/v1/datasets`` and samples the
server's resident memory (the process and its children) every 20 ms while the
upload is received and profiled. Exits non-zero when the peak grows by
``LIMIT_MB`` or more over the warmed-up baseline, or when ``n_rows`` is wrong.

    .venv/bin/python benchmarks/upload_rss.py [--mb 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.live import LiveServer, live_server  # noqa: E402

MIB = 1 << 20
LIMIT_MB = 100
SAMPLE_SECONDS = 0.02
ROWS_PER_CHUNK = 50_000
PASSWORD = "correct horse battery"
UPLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=900.0, pool=10.0)


@dataclass
class UploadMeasurement:
    """What one large upload cost the server."""

    file_bytes: int
    rows_written: int
    n_rows: int | None
    status_code: int
    wall_seconds: float
    body_seconds: float
    baseline_rss: int
    peak_rss: int
    peak_rss_during_body: int
    peak_rss_after_body: int
    samples: list[tuple[float, int, int]] = field(default_factory=list, repr=False)

    @property
    def growth_bytes(self) -> int:
        """Peak RSS above the baseline."""
        return self.peak_rss - self.baseline_rss

    @property
    def growth_mb(self) -> float:
        """Peak RSS growth in MiB."""
        return self.growth_bytes / MIB

    @property
    def file_mb(self) -> float:
        """The uploaded file's size in MiB."""
        return self.file_bytes / MIB

    @property
    def mb_per_second(self) -> float:
        """Upload-and-profile throughput in MiB/s."""
        return self.file_mb / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def growth_ratio(self) -> float:
        """Peak growth as a share of the file size."""
        return self.growth_bytes / self.file_bytes if self.file_bytes else 0.0

    @property
    def rows_match(self) -> bool:
        """Whether the server counted the rows that were written."""
        return self.n_rows == self.rows_written

    def summary(self) -> str:
        """The figures, one per line."""
        return "\n".join(
            [
                f"file size            {self.file_mb:9.1f} MiB ({self.file_bytes} bytes)",
                f"rows written/counted {self.rows_written} / {self.n_rows}"
                f" (HTTP {self.status_code})",
                f"upload+profile wall  {self.wall_seconds:9.2f} s"
                f" (body sent in {self.body_seconds:.2f} s)",
                f"throughput           {self.mb_per_second:9.1f} MiB/s",
                f"baseline RSS         {self.baseline_rss / MIB:9.1f} MiB",
                f"peak RSS             {self.peak_rss / MIB:9.1f} MiB"
                f" (while receiving {self.peak_rss_during_body / MIB:.1f},"
                f" after the last byte {self.peak_rss_after_body / MIB:.1f})",
                f"peak growth          {self.growth_mb:9.1f} MiB",
                f"growth / file size   {self.growth_ratio:9.3f}",
            ]
        )


def write_csv(path: Path, size_mb: float, *, seed: int = 0, n_floats: int = 6) -> int:
    """Write a CSV of about ``size_mb`` MiB (``n_floats`` + 4 columns, one text); its row count."""
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"])
    target = int(size_mb * MIB)
    rows = 0
    with path.open("w", newline="") as handle:
        floats_header = ",".join(f"x{i + 1}" for i in range(n_floats))
        handle.write(f"id,{floats_header},count,label,y\n")
        while handle.tell() < target:
            n = ROWS_PER_CHUNK
            ids = np.arange(rows, rows + n)
            floats = np.round(rng.normal(size=(n_floats, n)) * 100, 4)
            counts = rng.integers(0, 1000, size=n)
            labels = np.char.add(rng.choice(words, size=n), (ids % 997).astype(str))
            y = np.round(floats[0] * 0.3 - floats[1] + rng.normal(size=n), 3)
            columns = [ids.astype(str), *floats.astype(str), counts.astype(str), labels]
            columns.append(y.astype(str))
            handle.write("\n".join(map(",".join, zip(*columns, strict=True))))
            handle.write("\n")
            rows += n
    return rows


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of ``process`` and all its descendants, in bytes."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


class _CountingReader:
    """A read-only file wrapper that counts bytes read and notes when EOF is reached."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.bytes_read = 0
        self.eof_at: float | None = None

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.bytes_read += len(data)
        if not data and self.eof_at is None:
            self.eof_at = time.perf_counter()
        return data

    def fileno(self) -> int:
        return self._handle.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


class RssSampler:
    """Samples a process tree's RSS on a background thread."""

    def __init__(self, process: psutil.Process, progress: _CountingReader | None = None) -> None:
        self._process = process
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.samples: list[tuple[float, int, int]] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = self._progress.bytes_read if self._progress else 0
            self.samples.append((time.perf_counter(), tree_rss(self._process), sent))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), tree_rss(self._process), 0))


def _login(client: httpx.Client) -> None:
    body = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
    created = client.post("/api/v1/auth/register", json=body)
    created.raise_for_status()
    # Retry briefly: a 201 may arrive before the registration is committed.
    for _ in range(50):
        login = client.post("/api/v1/auth/login", data={"username": "bench", "password": PASSWORD})
        if login.status_code == 200:
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            return
        time.sleep(0.1)
    login.raise_for_status()


def _upload(client: httpx.Client, path: Path, reader: BinaryIO | _CountingReader) -> httpx.Response:
    return client.post(
        "/api/v1/datasets",
        files={"file": (path.name, reader, "text/csv")},
        timeout=UPLOAD_TIMEOUT,
    )


def _baseline(process: psutil.Process) -> int:
    """The tree's RSS once it has settled: the median of a second of samples."""
    readings = []
    for _ in range(25):
        readings.append(tree_rss(process))
        time.sleep(SAMPLE_SECONDS * 2)
    return int(np.median(readings))


def measure_upload_rss(
    size_mb: float = 200, workdir: Path | None = None, n_floats: int = 6
) -> UploadMeasurement:
    """Upload a generated CSV of ``size_mb`` MiB to a fresh ``dlp serve`` and measure its RSS."""
    with tempfile.TemporaryDirectory(prefix="dlp-upload-rss-", dir=workdir) as scratch:
        root = Path(scratch)
        big = root / "big.csv"
        small = root / "small.csv"
        rows_written = write_csv(big, size_mb, n_floats=n_floats)
        write_csv(small, 0.5, seed=1)
        limit_mb = max(1024, int(size_mb * 2))
        env = {"DLP_MAX_UPLOAD_MB": str(limit_mb), "DLP_LOG_LEVEL": "WARNING"}
        with live_server(root / "data", "--no-worker", env=env) as server:
            return _measure(server, big, small, rows_written)


def _measure(server: LiveServer, big: Path, small: Path, rows_written: int) -> UploadMeasurement:
    process = psutil.Process(server.pid)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        _login(client)
        with small.open("rb") as handle:
            _upload(client, small, handle).raise_for_status()
        baseline = _baseline(process)
        with big.open("rb") as raw:
            reader = _CountingReader(raw)
            with RssSampler(process, reader) as sampler:
                started = time.perf_counter()
                answer = _upload(client, big, reader)
                finished = time.perf_counter()
    body_done = reader.eof_at or finished
    during = [rss for at, rss, _ in sampler.samples if at <= body_done] or [baseline]
    after = [rss for at, rss, _ in sampler.samples if at > body_done] or [baseline]
    n_rows = answer.json().get("n_rows") if answer.status_code == 201 else None
    if answer.status_code != 201:
        print(f"upload answered {answer.status_code}: {answer.text[:500]}", file=sys.stderr)
    return UploadMeasurement(
        file_bytes=big.stat().st_size,
        rows_written=rows_written,
        n_rows=n_rows,
        status_code=answer.status_code,
        wall_seconds=finished - started,
        body_seconds=body_done - started,
        baseline_rss=baseline,
        peak_rss=max(during + after),
        peak_rss_during_body=max(during),
        peak_rss_after_body=max(after),
        samples=[(at - started, rss, sent) for at, rss, sent in sampler.samples],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the measurement, print it, and fail on too much growth or a wrong row count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="CSV size in MiB (default 200)")
    parser.add_argument(
        "--trace", action="store_true", help="also print RSS against bytes sent over time"
    )
    parser.add_argument(
        "--floats", type=int, default=6, help="float columns (default 6; try 50 for a wide file)"
    )
    args = parser.parse_args(argv)
    measurement = measure_upload_rss(args.mb, n_floats=args.floats)
    print(measurement.summary())
    if args.trace:
        print("t_s      rss_MiB  sent_MiB")
        for at, rss, sent in measurement.samples[:: max(1, len(measurement.samples) // 60)]:
            print(f"{at:7.2f} {rss / MIB:8.1f} {sent / MIB:9.1f}")
    failed = False
    if measurement.growth_mb >= LIMIT_MB:
        print(f"FAIL: peak growth {measurement.growth_mb:.1f} MiB >= {LIMIT_MB} MiB")
        failed = True
    if not measurement.rows_match:
        print(f"FAIL: n_rows {measurement.n_rows} != {measurement.rows_written} rows written")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

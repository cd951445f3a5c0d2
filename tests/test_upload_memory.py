"""A 200 MiB CSV upload to a live ``dlp serve`` must not grow its memory by 100 MiB."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.upload_rss import LIMIT_MB, measure_upload_rss

UPLOAD_MB = 200


@pytest.mark.slow
def test_a_large_csv_upload_is_received_and_profiled_in_bounded_memory(tmp_path: Path) -> None:
    measurement = measure_upload_rss(UPLOAD_MB, workdir=tmp_path)
    figures = measurement.summary()
    print(f"\n{figures}")
    assert measurement.status_code == 201, figures
    assert measurement.rows_match, figures
    assert measurement.growth_mb < LIMIT_MB, figures

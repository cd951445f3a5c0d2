"""A bad ``DLP_*`` setting ends any ``dlp`` command with one clear line and status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DLP_MAX_UPLOAD_MB": "lots"}, "DLP_MAX_UPLOAD_MB: Input should be a valid integer"),
        (
            {"DLP_JOB_LEASE_SECONDS": "5", "DLP_JOB_HEARTBEAT_SECONDS": "10"},
            "DLP_JOB_LEASE_SECONDS must be at least twice DLP_JOB_HEARTBEAT_SECONDS",
        ),
    ],
)
def test_bad_settings_are_named_without_a_traceback(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DLP_")}
    result = subprocess.run(
        [sys.executable, "-m", "dlp", "db", "upgrade"],
        env={**clean, "DLP_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr

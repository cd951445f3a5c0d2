"""Browser fixtures: Debian's Chromium driven by Playwright, and a folder for screenshots.

Playwright's own browser download does not work here, so the tests use the
system Chromium, installing it with apt-get when it is missing (as root). Where
it cannot be had, the browser tests are skipped, except under ``CI=1``, where
they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SECONDS = 900
_screenshot_dirs: list[Path] = []


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


def _install_chromium() -> str | None:
    """Install Debian's chromium package; the reason it could not, or None."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install chromium"
    if os.geteuid() != 0:
        return "installing chromium needs root: run `apt-get install -y chromium`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False
        )
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr[-500:]}"
    return None


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium, installed first if it is missing."""
    if not CHROMIUM.exists():
        reason = _install_chromium()
        if reason is not None or not CHROMIUM.exists():
            _unavailable(reason or f"{CHROMIUM} is missing after apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Browser]:
    """A headless Chromium for the session."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: ``$DLP_SCREENSHOTS`` or a temporary folder (printed)."""
    configured = os.environ.get("DLP_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    _screenshot_dirs.append(folder)
    print(f"\nscreenshots: {folder}")
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the screenshot folder at the end of the run, for reviewers."""
    for folder in _screenshot_dirs:
        terminalreporter.write_line(f"web UI screenshots: {folder}")

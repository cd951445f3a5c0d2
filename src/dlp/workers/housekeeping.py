"""Housekeeping loops: a worker's thread (heartbeat, reaper, lost hints, webhooks), the
API's reaper, which keeps jobs honest even while no worker is alive, and the API's
periodic housekeeping pass (``dlp.housekeeping``)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from dlp.config import Settings
from dlp.db import utcnow
from dlp.housekeeping.service import run_if_due
from dlp.platform import Platform, build_platform
from dlp.tuning.service import advance_running_studies
from dlp.webhooks.delivery import deliver_due_webhooks
from dlp.workers.service import (
    WorkerIdentity,
    record_heartbeat,
    resend_missing_hints,
    take_back_stale_jobs,
)

log = structlog.get_logger(__name__)
TICK_SECONDS = 1.0
CLAIM_EVERY_SECONDS = 60.0


class Housekeeper:
    """Records a heartbeat, reaps stale jobs and re-sends lost hints every heartbeat
    interval, and delivers due webhooks every second, in a daemon thread of the worker's
    main process, until stopped."""

    def __init__(self, settings: Settings, identity: WorkerIdentity) -> None:
        self.settings = settings
        self.identity = identity
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dlp-housekeeping")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its current step."""
        self._stopped.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        platform = build_platform(self.settings)
        # Pool children forked later must not share this thread's database connections.
        os.register_at_fork(after_in_child=lambda: platform.engine.dispose(close=False))
        next_beat = 0.0
        while not self._stopped.is_set():
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.settings.job_heartbeat_seconds
                # Separate steps: one that fails (a table a newer release added, say)
                # must not stop the others.
                now = utcnow()
                self._step("heartbeat", record_heartbeat, platform, self.identity, now)
                self._step("reaper", take_back_stale_jobs, platform, now)
                self._step("studies", advance_running_studies, platform, now)
                for queue in self.identity.queues:
                    self._step("hints", resend_missing_hints, platform, queue, now)
            self._step("webhooks", deliver_due_webhooks, platform)
            self._stopped.wait(min(TICK_SECONDS, self.settings.job_heartbeat_seconds))
        platform.close()

    def _step(self, name: str, step: Callable[..., object], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:
            log.warning("housekeeping.step_failed", step=name, error=str(exc))


async def reap_periodically(platform: Platform) -> None:
    """Take back stale jobs every heartbeat interval until cancelled (the API's loop).

    With every worker gone, a job whose worker died would otherwise stay ``running``:
    this puts it back to ``queued``, where it waits for the next worker.
    """
    while True:
        await asyncio.sleep(platform.settings.job_heartbeat_seconds)
        try:
            await asyncio.to_thread(take_back_stale_jobs, platform, utcnow())
        except Exception as exc:
            log.warning("housekeeping.step_failed", step="reap", error=str(exc))


async def keep_house_periodically(platform: Platform) -> None:
    """Try to claim the installation's housekeeping pass every minute (or interval, if
    shorter) until cancelled, and run it when this process wins the claim."""
    holder = f"{socket.gethostname()}:{os.getpid()}"
    every = min(platform.settings.housekeeping_interval_seconds, CLAIM_EVERY_SECONDS)
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(run_if_due, platform, holder, utcnow())
        except Exception as exc:
            log.warning("housekeeping.step_failed", step="housekeeping", error=str(exc))

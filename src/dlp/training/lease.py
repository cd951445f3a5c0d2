"""A running job's lease: a token only its current attempt holds, kept alive by a heartbeat.

The reaper re-queues a job whose heartbeat went stale; from then on every write the old
attempt tries is refused (they are all conditional on the token), so a worker that was
only slow, not dead, can never overwrite the attempt that replaced it.
"""

from __future__ import annotations

import threading
import uuid
from types import TracebackType

import structlog
from sqlalchemy.orm import Session, sessionmaker

from dlp.db import session_scope, utcnow
from dlp.training import repository

log = structlog.get_logger(__name__)


class LeaseLostError(Exception):
    """The job no longer belongs to this attempt: stop without writing anything."""


class Lease:
    """Renews ``job_id``'s lease every ``interval`` seconds in a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: uuid.UUID,
        token: uuid.UUID,
        *,
        interval: float,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.token = token
        self.interval = interval
        self._lost = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"dlp-lease-{job_id}")

    @property
    def lost(self) -> bool:
        """True once a heartbeat found the job taken away from this attempt."""
        return self._lost.is_set()

    def mark_lost(self) -> None:
        """Record that a write found the lease gone."""
        self._lost.set()

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                with session_scope(self.sessions) as session:
                    held = repository.renew_lease(session, self.job_id, self.token, utcnow())
            except Exception as exc:
                # The database may be briefly away; if it stays away the lease expires
                # and the reaper decides, exactly as if this worker had died.
                log.warning("training.heartbeat_failed", job_id=str(self.job_id), error=str(exc))
                continue
            if not held:
                log.warning("training.lease_lost", job_id=str(self.job_id))
                self._lost.set()
                return

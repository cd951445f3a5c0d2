"""A running job's lease: a token only its current attempt holds, kept alive by a heartbeat.

The reaper re-queues a job whose heartbeat went stale; from then on every write the old
attempt tries is refused (they are all conditional on the token), so a worker that was
only slow, not dead, can never overwrite the attempt that replaced it.
"""

from __future__ import annotations

import threading
import uuid
from types import TracebackType
from typing import Generic

import structlog
from sqlalchemy.orm import Session, sessionmaker

from dlp.db import session_scope, utcnow
from dlp.jobs import repository
from dlp.jobs.kind import J, JobKind

log = structlog.get_logger(__name__)


class LeaseLostError(Exception):
    """The job no longer belongs to this attempt: stop without writing anything."""


class Lease(Generic[J]):
    """Renews ``job_id``'s lease every ``interval`` seconds in a background thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        kind: JobKind[J],
        job_id: uuid.UUID,
        token: uuid.UUID,
        *,
        interval: float,
    ) -> None:
        self.sessions = sessions
        self.kind = kind
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

    def lost_error(self) -> LeaseLostError:
        """Record that the lease is gone, and the error that stops the attempt."""
        self._lost.set()
        return LeaseLostError(f"{self.kind.label} {self.job_id} was taken over by another attempt")

    def load(self, session: Session) -> J:
        """The job row, locked, if this lease still holds it; else raise ``LeaseLostError``."""
        job = repository.get_leased(session, self.kind.table, self.job_id, self.token)
        if job is None:
            raise self.lost_error()
        return job

    def __enter__(self) -> Lease[J]:
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
        table = self.kind.table
        while not self._stopped.wait(self.interval):
            try:
                with session_scope(self.sessions) as session:
                    held = repository.renew_lease(session, table, self.job_id, self.token, utcnow())
            except Exception as exc:
                # The database may be briefly away; if it stays away the lease expires
                # and the reaper decides, exactly as if this worker had died.
                log.warning("job.heartbeat_failed", job_id=str(self.job_id), error=str(exc))
                continue
            if not held:
                log.warning("job.lease_lost", job_id=str(self.job_id))
                self._lost.set()
                return

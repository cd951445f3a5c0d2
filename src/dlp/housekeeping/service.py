"""One housekeeping pass, and who runs it when.

A pass deletes the refresh tokens of ended logins and closed invitations, walks the file
store once to delete orphaned folders, prune checkpoints and expire batch outputs, and
flags rows whose files are gone (see ``dlp.housekeeping.files`` and ``.retention``).
Every step is idempotent: a pass interrupted half-way is finished by the next one.

The API runs a pass every ``DLP_HOUSEKEEPING_INTERVAL_SECONDS``, in one process of the
installation at a time: each API process tries to claim the pass's row in
``housekeeping_runs`` with a conditional UPDATE, and only the one that moved its start
time forward runs it. ``dlp housekeeping run`` runs one at once, without the claim (two
passes at once only repeat each other's work).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from dlp.db import session_scope, utcnow
from dlp.housekeeping import files, repository, retention
from dlp.platform import Platform

log = structlog.get_logger(__name__)

RUN_NAME = "housekeeping"


@dataclass
class HousekeepingReport:
    """What one pass did."""

    refresh_tokens_deleted: int = 0
    invitations_deleted: int = 0
    orphan_folders_deleted: int = 0
    checkpoints_deleted: int = 0
    batch_outputs_expired: int = 0
    datasets_marked_failed: int = 0
    models_missing_files: int = 0

    def counts(self) -> dict[str, int]:
        """The counts by name."""
        return asdict(self)


def run_housekeeping(platform: Platform, now: datetime) -> HousekeepingReport:
    """Run one pass now, and log what it did."""
    settings = platform.settings
    store = platform.store
    grace = timedelta(hours=settings.housekeeping_grace_hours)
    report = HousekeepingReport()
    with session_scope(platform.sessions) as session:
        report.refresh_tokens_deleted = repository.delete_ended_refresh_families(
            session, now=now, before=now - grace
        )
        report.invitations_deleted = repository.delete_invitations_closed_before(
            session, now - grace
        )
    # Files written after the walk started are not listed; older than this, a file's
    # row (written after it) has been committed for at least the grace period.
    older_than = utcnow() - grace
    listing = files.list_store(store)
    # Reads only: files are deleted with no write transaction open (SQLite's one writer).
    with session_scope(platform.sessions) as session:
        for kind in files.KINDS:
            folders = listing.of_kind(kind)
            present = files.rows_present(session, kind, folders)
            report.orphan_folders_deleted += files.delete_orphans(
                store, folders, present, older_than=older_than
            )
        policy = retention.load_policy(session, now=now, default_days=settings.retention_days)
        report.checkpoints_deleted = retention.prune_checkpoints(
            session, store, listing.of_kind("jobs"), policy, older_than=older_than
        )
        expired = retention.expire_batch_outputs(
            session, store, listing.of_kind("batch-predictions"), policy
        )
    with session_scope(platform.sessions) as session:
        report.batch_outputs_expired = retention.forget_batch_outputs(session, expired)
        report.datasets_marked_failed = files.flag_missing_files(
            session, listing, created_before=older_than
        )
        report.models_missing_files = files.models_missing_files(
            session, listing, created_before=older_than
        )
    log.info("housekeeping.done", **report.counts())
    return report


def run_if_due(platform: Platform, holder: str, now: datetime) -> HousekeepingReport | None:
    """Run a pass if none started in the last interval anywhere in the installation;
    None when another process has it."""
    interval = timedelta(seconds=platform.settings.housekeeping_interval_seconds)
    try:
        with session_scope(platform.sessions) as session:
            claimed = repository.claim_run(
                session, RUN_NAME, holder=holder, now=now, interval=interval
            )
    except IntegrityError:  # another process claimed the very first pass
        return None
    return run_housekeeping(platform, now) if claimed else None

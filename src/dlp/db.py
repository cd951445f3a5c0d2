"""Database plumbing: the declarative base, column types, engine and session scope.

One synchronous SQLAlchemy layer serves the API (in FastAPI's thread pool) and
the Celery worker, on SQLite and PostgreSQL alike. Services never commit: the
request or the task that owns the session does, through ``session_scope``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend (SQLite drops the zone; this restores it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark naive values read back from SQLite as UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table, with a constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class UUIDPrimaryKey:
    """Mixin: a UUID primary key generated in Python."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class CreatedAt:
    """Mixin: a creation timestamp."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # The pool covers the thread pool's concurrency (40), so busy APIs do not churn connections.
    engine = create_engine(url, pool_size=20, max_overflow=20)
    event.listen(engine, "checkin", _note_checkin)
    event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


SQLITE_BUSY_SECONDS = 30
PING_AFTER_IDLE_SECONDS = 5.0
_CHECKED_IN_AT = "dlp_checked_in_at"


def _note_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _ping_if_idle(dialect: Dialect) -> Callable[[Any, ConnectionPoolEntry, Any], None]:
    """Pessimistic disconnect handling, only for connections that sat idle.

    A database restart or a firewall may have dropped those; a connection in
    constant use is not pinged, which saves a round trip on every busy request
    (SQLAlchemy's ``pool_pre_ping`` pings on every checkout). A failed ping makes
    the pool discard the connection and open a fresh one.
    """

    def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_CHECKED_IN_AT)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc

    return on_checkout


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # The API and the worker write to one file from different processes: WAL lets
    # readers proceed during a write, and the busy timeout makes writers wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


def schema_engine_options(url: str, schema: str) -> dict[str, Any]:
    """``create_engine`` options for a library that keeps its own tables (and its own
    ``alembic_version``) in the database at ``url``: on PostgreSQL they go to ``schema``,
    created here if missing; a SQLite URL names a file of its own, which only needs
    the busy timeout dlp's connections have."""
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    return {"connect_args": {"options": f"-csearch_path={schema}"}, "pool_pre_ping": True}


_PRIMARY_SESSIONS = "dlp_primary_sessions"


def create_session_factory(
    engine: Engine, *, primary: sessionmaker[Session] | None = None
) -> sessionmaker[Session]:
    """A session factory whose sessions keep loaded attributes after commit.

    ``primary`` marks ``engine`` as a read replica: the rare write a reading request
    makes (see :func:`writable`) goes to the sessions of ``primary`` instead.
    """
    info = {_PRIMARY_SESSIONS: primary} if primary is not None else None
    return sessionmaker(engine, expire_on_commit=False, info=info)


@contextmanager
def writable(session: Session) -> Iterator[Session]:
    """``session`` itself; or, when it reads from a replica, a short transaction of its own
    on the primary database, committed at the end of the block."""
    primary: sessionmaker[Session] | None = session.info.get(_PRIMARY_SESSIONS)
    if primary is None:
        yield session
        return
    with session_scope(primary) as own:
        yield own


AFTER_COMMIT_KEY = "dlp_after_commit"


def run_after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction commits; drop it on rollback."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _flush_after_commit(session: Session) -> None:
    callbacks: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _discard_after_commit(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(AFTER_COMMIT_KEY, None)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

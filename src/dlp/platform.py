"""The running platform's backends, built once from settings at start-up.

The API keeps one ``Platform`` on ``app.state``; a worker process keeps one for
its tasks. Only the settings decide which backends sit behind each interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dlp.config import Settings
from dlp.db import create_db_engine, create_session_factory
from dlp.events.bus import JobEvents, create_job_events
from dlp.ops.tracing import NO_TRACING, Tracing
from dlp.queue import JobQueue, create_celery_app
from dlp.storage import FileStore, create_file_store
from dlp.storage.keyring import Keyring


@dataclass
class Platform:
    """Settings plus the database, file store, job queue and job-event bus they select.

    ``read_sessions`` read from the read replica (``DLP_DATABASE_READ_URL``) when there is
    one, else they are ``sessions``; only the API's reading requests use them.
    ``tracing`` traces the engines' statements and the queue's hints, and is what jobs
    trace their own spans with.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    queue: JobQueue
    events: JobEvents
    read_engine: Engine | None = None
    read_sessions: sessionmaker[Session] | None = None
    tracing: Tracing = NO_TRACING

    def reading_sessions(self) -> sessionmaker[Session]:
        """The sessions a request that only reads should use."""
        return self.read_sessions or self.sessions

    def close(self) -> None:
        """Release pooled connections."""
        self.events.close()
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()


def build_platform(settings: Settings, tracing: Tracing = NO_TRACING) -> Platform:
    """Connect every backend named by ``settings`` (traced by ``tracing``)."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.sqlalchemy_url)
    sessions = create_session_factory(engine)
    read_url = settings.sqlalchemy_read_url
    read_engine = create_db_engine(read_url) if read_url else None
    tracing.trace_engine(engine)
    if read_engine is not None:
        tracing.trace_engine(read_engine)
    return Platform(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_engine=read_engine,
        read_sessions=(
            create_session_factory(read_engine, primary=sessions) if read_engine else None
        ),
        store=create_file_store(
            settings.file_store_url,
            s3_sse=settings.s3_sse,
            s3_sse_kms_key_id=settings.s3_sse_kms_key_id,
            keyring=Keyring.from_settings(settings),
        ),
        queue=JobQueue(create_celery_app(settings), tracing),
        events=create_job_events(settings),
        tracing=tracing,
    )

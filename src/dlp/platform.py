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
from dlp.queue import JobQueue, create_celery_app
from dlp.storage import FileStore, create_file_store


@dataclass
class Platform:
    """Settings plus the database, file store, job queue and job-event bus they select."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    queue: JobQueue
    events: JobEvents

    def close(self) -> None:
        """Release pooled connections."""
        self.events.close()
        self.engine.dispose()


def build_platform(settings: Settings) -> Platform:
    """Connect every backend named by ``settings``."""
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.sqlalchemy_url)
    return Platform(
        settings=settings,
        engine=engine,
        sessions=create_session_factory(engine),
        store=create_file_store(settings.file_store_url),
        queue=JobQueue(create_celery_app(settings)),
        events=create_job_events(settings),
    )

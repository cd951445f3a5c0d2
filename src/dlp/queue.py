"""The Celery app and the one way domain code sends work to it.

Tasks are sent after the database transaction commits, with ids only, so a
rolled-back request never starts a task and a task always finds its row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from dlp.config import Settings
from dlp.db import run_after_commit
from dlp.errors import ServiceUnavailableError

TRAINING_QUEUE = "training"
PRIORITIES = {"high": 9, "normal": 5, "low": 0}


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``: acks late, prefetch 1, no result backend."""
    app = Celery("dlp", broker=settings.celery_broker_url, set_as_current=False)
    transport_options: dict[str, Any] = {}
    if settings.celery_broker_url.startswith("filesystem"):
        folder = settings.queue_dir
        for sub in ("messages", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "messages"),
            "data_folder_out": str(folder / "messages"),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.05,
        }
    elif settings.celery_broker_url.startswith(("redis", "rediss")):
        # A job may train for hours: the message must not be redelivered meanwhile.
        transport_options = {"visibility_timeout": 12 * 3600}
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=TRAINING_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


class JobQueue:
    """Sends tasks by name; the API never imports the task code."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue_after_commit(
        self,
        session: Session,
        task_name: str,
        *args: str,
        queue: str,
        priority: str,
        on_send_failure: Callable[[Session, str], None],
    ) -> None:
        """Send ``task_name(*args)`` once ``session`` commits.

        If the broker refuses, ``on_send_failure`` records that in a fresh
        transaction (so no row claims to be queued when it is not) and the
        caller gets a 503.
        """

        def send_committed() -> None:
            try:
                self.send(task_name, *args, queue=queue, priority=priority)
            except Exception as exc:
                with Session(bind=session.get_bind()) as recovery:
                    on_send_failure(recovery, str(exc))
                    recovery.commit()
                raise ServiceUnavailableError(f"the job queue is unavailable: {exc}") from exc

        run_after_commit(session, send_committed)

    def send(self, task_name: str, *args: str, queue: str, priority: str) -> None:
        """Send ``task_name(*args)`` now."""
        self.celery.send_task(
            task_name, args=list(args), queue=queue, priority=PRIORITIES[priority]
        )

    def check(self) -> None:
        """Raise unless the broker accepts a connection."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

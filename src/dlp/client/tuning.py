"""Tuning calls: start a study, list, get with its trials, cancel, wait."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dlp.client.resource import (
    DEFAULT_PAGE_SIZE,
    Resource,
    deadline_after,
    iter_pages,
    poll_until_finished,
)
from dlp.client.schemas import Page, Study

POLL_SECONDS = 2.0


class Studies(Resource):
    """``client.studies``: hyperparameter tuning studies."""

    def create(
        self,
        dataset_id: str,
        *,
        task: str,
        target: str | None = None,
        n_trials: int | None = None,
        model: dict[str, Any] | None = None,
        metric: str | None = None,
        direction: str | None = None,
        search_space: dict[str, Any] | None = None,
        name: str | None = None,
        text_column: str | None = None,
        parallelism: int | None = None,
        max_minutes: float | None = None,
        pruner: str | None = None,
        training: dict[str, Any] | None = None,
        seed: int | None = None,
        priority: str | None = None,
    ) -> Study:
        """Start a study; unset fields take the server's defaults."""
        body = {
            "dataset_id": dataset_id,
            "task": task,
            "target": target,
            "n_trials": n_trials,
            "model": model,
            "metric": metric,
            "direction": direction,
            "search_space": search_space,
            "name": name,
            "text_column": text_column,
            "parallelism": parallelism,
            "max_minutes": max_minutes,
            "pruner": pruner,
            "training": training,
            "seed": seed,
            "priority": priority,
        }
        response = self._transport.request(
            "POST",
            "/api/v1/tuning/studies",
            json={key: value for key, value in body.items() if value is not None},
        )
        return Study.model_validate(response.json())

    def list(self, *, limit: int = 50, offset: int = 0) -> Page[Study]:
        """One page of the organization's studies, newest first, without their trials."""
        response = self._transport.request(
            "GET", "/api/v1/tuning/studies", params={"limit": limit, "offset": offset}
        )
        return Page[Study].model_validate(response.json())

    def iter(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Study]:
        """Every study of the organization, page after page."""
        return iter_pages(lambda limit, offset: self.list(limit=limit, offset=offset), page_size)

    def get(self, study_id: str) -> Study:
        """A study with its trials and best trial."""
        response = self._transport.request("GET", f"/api/v1/tuning/studies/{study_id}")
        return Study.model_validate(response.json())

    def cancel(self, study_id: str) -> Study:
        """Cancel a study: queued trials never start, running ones stop within seconds."""
        response = self._transport.request("POST", f"/api/v1/tuning/studies/{study_id}/cancel")
        return Study.model_validate(response.json())

    def wait(
        self, study_id: str, *, timeout: float | None = None, poll_interval: float = POLL_SECONDS
    ) -> Study:
        """Poll a study until it ends and return it; ``JobWaitTimeoutError`` after ``timeout``."""
        return poll_until_finished(
            lambda: self.get(study_id),
            what=f"study {study_id}",
            deadline=deadline_after(timeout),
            poll_interval=poll_interval,
        )

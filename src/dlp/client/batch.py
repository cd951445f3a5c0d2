"""Batch prediction calls: a whole dataset through a model, the output as a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dlp.client.resource import (
    DEFAULT_PAGE_SIZE,
    Destination,
    Resource,
    deadline_after,
    download,
    iter_pages,
    poll_until_finished,
)
from dlp.client.schemas import BatchPrediction, Page
from dlp.client.transport import ProgressCallback

PREFIX = "/api/v1/batch-predictions"
POLL_SECONDS = 1.0


class BatchPredictions(Resource):
    """``client.batch``: batch predictions over datasets."""

    def submit(
        self,
        model_id: str,
        dataset_id: str,
        *,
        format: str = "csv",
        include_inputs: bool = False,
        text_column: str | None = None,
        priority: str | None = None,
    ) -> BatchPrediction:
        """Queue a prediction of every row of a dataset (output ``csv`` or ``parquet``)."""
        body = {
            "dataset_id": dataset_id,
            "format": format,
            "include_inputs": include_inputs,
            "text_column": text_column,
            "priority": priority,
        }
        response = self._transport.request(
            "POST",
            f"/api/v1/models/{model_id}/batch-predictions",
            json={key: value for key, value in body.items() if value is not None},
        )
        return BatchPrediction.model_validate(response.json())

    def list(
        self,
        *,
        status: str | None = None,
        model_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[BatchPrediction]:
        """One page of the organization's batch predictions, newest first."""
        params = {"status": status, "model_id": model_id, "limit": limit, "offset": offset}
        response = self._transport.request("GET", PREFIX, params=params)
        return Page[BatchPrediction].model_validate(response.json())

    def iter(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[BatchPrediction]:
        """Every batch prediction of the organization, page after page."""
        return iter_pages(lambda limit, offset: self.list(limit=limit, offset=offset), page_size)

    def get(self, batch_id: str) -> BatchPrediction:
        """One batch prediction: status, rows done, its output once it succeeded."""
        return BatchPrediction.model_validate(
            self._transport.request("GET", f"{PREFIX}/{batch_id}").json()
        )

    def cancel(self, batch_id: str) -> BatchPrediction:
        """Cancel: a queued job never starts, a running one stops after its current chunk."""
        return BatchPrediction.model_validate(
            self._transport.request("POST", f"{PREFIX}/{batch_id}/cancel").json()
        )

    def wait(
        self, batch_id: str, *, timeout: float | None = None, poll_interval: float = POLL_SECONDS
    ) -> BatchPrediction:
        """Poll until the batch prediction ends; ``JobWaitTimeoutError`` after ``timeout``."""
        return poll_until_finished(
            lambda: self.get(batch_id),
            what=f"batch prediction {batch_id}",
            deadline=deadline_after(timeout),
            poll_interval=poll_interval,
        )

    def download(
        self, batch_id: str, destination: Destination, *, progress: ProgressCallback | None = None
    ) -> Path | None:
        """Stream the output file into a path, a folder or a binary file object."""
        return download(
            self._transport, f"{PREFIX}/{batch_id}/download", destination, progress=progress
        )

    def delete(self, batch_id: str) -> None:
        """Delete an ended batch prediction and its output."""
        self._transport.request("DELETE", f"{PREFIX}/{batch_id}")

"""Dataset calls: streamed upload, list, get, streamed download, delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dlp.client.resource import DEFAULT_PAGE_SIZE, Destination, Resource, download, iter_pages
from dlp.client.schemas import Dataset, Page
from dlp.client.transport import ProgressCallback


class Datasets(Resource):
    """``client.datasets``: tables, texts and image archives to train on."""

    def upload(
        self,
        file: str | Path | IO[bytes],
        *,
        name: str | None = None,
        kind: str | None = None,
        filename: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Dataset:
        """Upload a ``.csv``, ``.parquet`` or ``.zip`` from a path or a binary file object,
        streamed in chunks; ``progress(done, total)`` is called as bytes go out."""
        fields = {key: value for key, value in {"name": name, "kind": kind}.items() if value}
        if isinstance(file, str | Path):
            path = Path(file)
            with path.open("rb") as handle:
                return self._upload(handle, filename or path.name, fields, progress)
        fallback = Path(str(getattr(file, "name", "upload"))).name
        return self._upload(file, filename or fallback, fields, progress)

    def _upload(
        self,
        handle: IO[bytes],
        filename: str,
        fields: dict[str, str],
        progress: ProgressCallback | None,
    ) -> Dataset:
        response = self._transport.upload("/api/v1/datasets", handle, filename, fields, progress)
        return Dataset.model_validate(response.json())

    def list(self, *, limit: int = 50, offset: int = 0) -> Page[Dataset]:
        """One page of the organization's datasets, newest first."""
        response = self._transport.request(
            "GET", "/api/v1/datasets", params={"limit": limit, "offset": offset}
        )
        return Page[Dataset].model_validate(response.json())

    def iter(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Dataset]:
        """Every dataset of the organization, page after page."""
        return iter_pages(lambda limit, offset: self.list(limit=limit, offset=offset), page_size)

    def get(self, dataset_id: str) -> Dataset:
        """One dataset with its profile."""
        response = self._transport.request("GET", f"/api/v1/datasets/{dataset_id}")
        return Dataset.model_validate(response.json())

    def download(
        self,
        dataset_id: str,
        destination: Destination,
        *,
        progress: ProgressCallback | None = None,
    ) -> Path | None:
        """Stream the original bytes into a path, a folder or a binary file object."""
        return download(
            self._transport,
            f"/api/v1/datasets/{dataset_id}/download",
            destination,
            progress=progress,
        )

    def delete(self, dataset_id: str) -> None:
        """Delete a dataset and its files."""
        self._transport.request("DELETE", f"/api/v1/datasets/{dataset_id}")

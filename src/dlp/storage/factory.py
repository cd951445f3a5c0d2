"""Pick the file store from its URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from dlp.storage.base import FileStore
from dlp.storage.local import LocalFileStore


def create_file_store(url: str) -> FileStore:
    """The store for ``url``: ``file:///path`` (or a bare path) for a local folder."""
    parsed = urlparse(url)
    if parsed.scheme in {"", "file"}:
        return LocalFileStore(Path(parsed.path if parsed.scheme else url))
    raise ValueError(f"unsupported DLP_STORAGE_URL scheme {parsed.scheme!r} (use file://)")

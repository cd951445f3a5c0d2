"""Pick the file store from its URL scheme."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from dlp.errors import ValidationError
from dlp.storage.base import FileStore
from dlp.storage.encrypted import EncryptedStore
from dlp.storage.keyring import Keyring
from dlp.storage.local import LocalFileStore
from dlp.storage.s3 import S3Store


def create_file_store(
    url: str,
    *,
    s3_sse: str | None = None,
    s3_sse_kms_key_id: str | None = None,
    keyring: Keyring | None = None,
) -> FileStore:
    """The store for ``url``: ``file:///path`` (or a bare path) for a local folder,
    ``s3://bucket/prefix`` for an S3 bucket (encrypted server-side with ``s3_sse``);
    with a ``keyring``, every file is also encrypted by dlp before it is stored."""
    store = _create_plain_store(url, s3_sse=s3_sse, s3_sse_kms_key_id=s3_sse_kms_key_id)
    return store if keyring is None else EncryptedStore(store, keyring)


def _create_plain_store(
    url: str, *, s3_sse: str | None, s3_sse_kms_key_id: str | None
) -> FileStore:
    parsed = urlparse(url)
    if parsed.scheme in {"", "file"}:
        return LocalFileStore(Path(parsed.path if parsed.scheme else url))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"DLP_STORAGE_URL {url!r} names no bucket (use s3://bucket/prefix)")
        try:
            return S3Store(
                parsed.netloc,
                parsed.path,
                sse=s3_sse,
                sse_kms_key_id=s3_sse_kms_key_id,
            )
        except ValidationError as exc:
            raise ValueError(f"DLP_STORAGE_URL {url!r} has an invalid prefix") from exc
    raise ValueError(f"unsupported DLP_STORAGE_URL scheme {parsed.scheme!r} (use file:// or s3://)")

"""A file store in an S3 bucket (or any S3-compatible server), for the scale-out shape.

The endpoint, region and credentials come from boto3's standard chain
(``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``~/.aws/config``, instance roles), never from dlp's settings.
Memory stays flat in the file size both ways: writes go up as a multipart upload one
bounded part at a time, and reads stream the object's body.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config

from dlp.errors import ServiceUnavailableError
from dlp.storage.base import FileStore, FileWriter, StoredFile, validate_key
from dlp.storage.s3_transfer import BOTO_ERRORS, S3Failure, S3FileWriter, S3ObjectReader

MIN_PART_SIZE = 5 * 2**20
"""S3 refuses smaller parts, except the last one of an upload."""
DEFAULT_PART_SIZE = 8 * 2**20
DELETE_BATCH = 1000
"""The most keys one DeleteObjects request takes."""
READ_BUFFER = 256 * 1024
"""Small reads (zip headers, Parquet footers) are served from a buffer of this size."""
SSE_MODES = ("AES256", "aws:kms")


class S3Store(FileStore):
    """Keys live below ``prefix`` in ``bucket``; ``prefix`` may be empty."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        delete_batch: int = DELETE_BATCH,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 file store needs a bucket")
        if sse is not None and sse not in SSE_MODES:
            raise ValueError(f"DLP_S3_SSE must be one of {', '.join(SSE_MODES)}")
        if sse_kms_key_id and sse != "aws:kms":
            raise ValueError("DLP_S3_SSE_KMS_KEY_ID needs DLP_S3_SSE=aws:kms")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        if not 1 <= delete_batch <= DELETE_BATCH:
            raise ValueError(f"a delete batch holds 1 to {DELETE_BATCH} keys")
        self.bucket = bucket
        self.prefix = validate_key(prefix.strip("/")) if prefix.strip("/") else ""
        self.part_size = part_size
        self.delete_batch = delete_batch
        self._extra: dict[str, str] = {}
        if sse is not None:
            self._extra["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._extra["SSEKMSKeyId"] = sse_kms_key_id
        self._failure = S3Failure(bucket)
        self._client_pid = -1
        self._cached_client: Any = None

    @property
    def _client(self) -> Any:
        # One client per process: boto3 clients are thread-safe, but a pooled connection
        # inherited across a fork (Celery's prefork pool) would be shared by two processes.
        if self._client_pid != os.getpid():
            self._cached_client = boto3.session.Session().client(
                "s3",
                config=Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=60,
                    max_pool_connections=32,
                ),
            )
            self._client_pid = os.getpid()
        return self._cached_client

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def open_writer(self, key: str) -> FileWriter:
        """Start a (multipart, once past one part) upload to ``key``."""
        object_key = self._object_key(key)
        return S3FileWriter(
            self._client,
            self.bucket,
            object_key,
            part_size=self.part_size,
            extra=self._extra,
        )

    def open_reader(self, key: str) -> BinaryIO:
        """A buffered, seekable reader over ``key``; raises ``NotFoundError`` when absent."""
        object_key = self._object_key(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=object_key)
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "read a file", key) from None
        raw = S3ObjectReader(
            self._client,
            self.bucket,
            object_key,
            size=int(head["ContentLength"]),
            etag=str(head["ETag"]),
        )
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=READ_BUFFER))

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream ``key``'s body chunk by chunk (one GET, nothing spooled)."""
        object_key = self._object_key(key)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=object_key)["Body"]
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "read a file", key) from None
        try:
            yield from body.iter_chunks(chunk_size)
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "read a file", key) from None
        finally:
            body.close()

    def delete_prefix(self, prefix: str) -> None:
        """Delete the object ``prefix`` and every object below ``prefix/``.

        Keys are listed page by page and deleted in batches of ``delete_batch``, so a
        prefix of any size is removed in bounded memory.
        """
        object_key = self._object_key(prefix)
        batch: list[str] = [object_key]
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{object_key}/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    batch.append(item["Key"])
                    if len(batch) >= self.delete_batch:
                        self._delete(batch)
                        batch = []
            if batch:
                self._delete(batch)
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "delete files") from None

    def iter_keys(self, prefix: str) -> Iterator[StoredFile]:
        """Every object below ``prefix/``, page by page (uploads in flight are not objects)."""
        object_key = self._object_key(prefix)
        skip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{object_key}/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredFile(
                        key=str(item["Key"])[skip:],
                        modified_at=item["LastModified"].astimezone(UTC),
                    )
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "list files") from None

    def _delete(self, keys: list[str]) -> None:
        answer = self._client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        if answer.get("Errors"):
            code = answer["Errors"][0].get("Code", "unknown")
            raise ServiceUnavailableError(
                f"the file store (S3 bucket {self.bucket!r}) failed to delete files: {code}"
            )

    def exists(self, key: str) -> bool:
        """Whether ``key`` is an object in the bucket."""
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except BOTO_ERRORS as exc:
            if self._failure.is_missing(exc):
                return False
            raise self._failure.convert(exc, "look up a file") from None
        return True

    def check(self) -> None:
        """Raise unless the bucket answers with these credentials."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "answer") from None

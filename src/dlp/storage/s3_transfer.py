"""Single-object transfers with S3: multipart writes and seekable ranged reads, and the
mapping of boto errors onto dlp's errors."""

from __future__ import annotations

import io
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dlp.errors import NotFoundError, ServiceUnavailableError
from dlp.storage.base import FileWriter, SeekableReader

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Failure:
    """Turns boto errors into the contract's errors, naming the bucket and never secrets."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def is_missing(self, exc: Exception) -> bool:
        """Whether ``exc`` says the object is not there (a missing bucket is an outage)."""
        return isinstance(exc, ClientError) and _error_code(exc) in _NOT_FOUND_CODES

    def convert(self, exc: Exception, action: str, key: str | None = None) -> Exception:
        """``NotFoundError`` for a missing key, else ``ServiceUnavailableError``.

        Only the error's code or type is kept: botocore's messages can quote request
        details, and the answer must never carry anything close to a credential.
        """
        if key is not None and self.is_missing(exc):
            return NotFoundError("file", key)
        reason = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return ServiceUnavailableError(
            f"the file store (S3 bucket {self.bucket!r}) failed to {action}: {reason}"
        )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


BOTO_ERRORS = (BotoCoreError, ClientError)


class S3FileWriter(FileWriter):
    """Buffers one part at a time; the object appears only when ``commit`` completes it.

    An object smaller than one part is a single PutObject; a larger one a multipart
    upload whose parts go up as the buffer fills, so memory stays at about one part.
    """

    def __init__(
        self, client: Any, bucket: str, key: str, *, part_size: int, extra: dict[str, str]
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._extra = extra
        self._failure = S3Failure(bucket)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._closed = False

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, sending each full part as soon as it fills."""
        assert not self._closed, "writer already closed"
        view = memoryview(chunk)
        while view:
            room = self._part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self._part_size:
                try:
                    self._send_part()
                except BOTO_ERRORS as exc:
                    raise self._failure.convert(exc, "store a file") from None

    def commit(self) -> None:
        """Send what is buffered and make the object visible (aborting on failure)."""
        assert not self._closed, "writer already closed"
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=self._take_buffer(), **self._extra
                )
            else:
                if self._buffer:
                    self._send_part()
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
                self._upload_id = None
        except BOTO_ERRORS as exc:
            self.abort()
            raise self._failure.convert(exc, "store a file") from None
        self._closed = True

    def abort(self) -> None:
        """Drop the buffer and abort the multipart upload, so no part is left behind."""
        self._closed = True
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=upload_id
            )
        except BOTO_ERRORS as exc:
            raise self._failure.convert(exc, "abort an upload") from None

    def _take_buffer(self) -> bytearray:
        # Handed over, not copied: boto3 sends a bytearray as it is, so a part costs its
        # own size in memory once, not twice.
        body, self._buffer = self._buffer, bytearray()
        return body

    def _send_part(self) -> None:
        body = self._take_buffer()
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, **self._extra
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        sent = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        part = {"PartNumber": number, "ETag": sent["ETag"]}
        part.update({name: value for name, value in sent.items() if name.startswith("Checksum")})
        self._parts.append(part)


class S3ObjectReader(SeekableReader):
    """A seekable view of one object: reads stream one ranged GET from the current
    position, and a seek elsewhere only drops that stream (the next read opens another).

    Sequential reading (CSV, whole files) is one request; random access (Parquet
    footers, zip entries) costs one request per jump. ``If-Match`` pins every GET to
    the version the reader opened, so a file replaced meanwhile fails instead of mixing.
    """

    def __init__(self, client: Any, bucket: str, key: str, *, size: int, etag: str) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._size = size
        self._etag = etag
        self._failure = S3Failure(bucket)
        self._position = 0
        self._body: Any = None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (a later read is a ranged GET from there); the open stream is
        kept only when it does not move."""
        position = self.seek_target(offset, whence)
        if position != self._position:
            self._drop_stream()
            self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the stream at the current position."""
        view = memoryview(buffer).cast("B")
        data = self._read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """Everything from the current position to the end, in one read."""
        return self._read(self._size - self._position)

    def close(self) -> None:
        """Drop the open stream."""
        self._drop_stream()
        super().close()

    def _read(self, wanted: int) -> bytes:
        wanted = min(wanted, self._size - self._position)
        if wanted <= 0:
            return b""
        try:
            if self._body is None:
                self._body = self._client.get_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Range=f"bytes={self._position}-",
                    IfMatch=self._etag,
                )["Body"]
            data = bytes(self._body.read(wanted))
        except BOTO_ERRORS as exc:
            self._drop_stream()
            raise self._failure.convert(exc, "read a file", self._key) from None
        if not data:
            self._drop_stream()
            raise ServiceUnavailableError(
                f"the file store (S3 bucket {self._bucket!r}) ended a read early"
            )
        self._position += len(data)
        return data

    def _drop_stream(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

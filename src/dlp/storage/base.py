"""The interface every file store implements, and the key rules they share."""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from dlp.errors import ValidationError

_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store: empty parts, ``..``, absolute paths."""
    parts = key.split("/")
    if not key or any(not _KEY_PART.match(part) or part in {".", ".."} for part in parts):
        raise ValidationError(f"invalid storage key {key!r}")
    return key


@dataclass(frozen=True)
class StoredFile:
    """One key of the store and when its bytes were last written."""

    key: str
    modified_at: datetime


class SeekableReader(io.RawIOBase):
    """A raw reader over ``_size`` bytes that seeks anywhere; subclasses fill ``readinto``
    from ``_position`` and keep it current."""

    _size: int
    _position: int

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def tell(self) -> int:
        """The current position."""
        return self._position

    def seek_target(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """The position ``seek(offset, whence)`` moves to; refuses one before the start."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        return base + offset


class FileWriter(ABC):
    """A streaming write that becomes visible only on ``commit``."""

    @abstractmethod
    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""

    @abstractmethod
    def commit(self) -> None:
        """Make the written bytes visible under the key."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the written bytes away; the key is untouched."""


class FileStore(ABC):
    """Bytes by key. Keys are ``/``-separated, relative, and checked by ``validate_key``."""

    @abstractmethod
    def open_writer(self, key: str) -> FileWriter:
        """Start a streaming write to ``key``."""

    @abstractmethod
    def open_reader(self, key: str) -> BinaryIO:
        """A binary file object over ``key``; raises ``NotFoundError`` when absent."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The bytes of ``key`` in chunks, for streaming downloads."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix`` (a folder-like key)."""

    @abstractmethod
    def iter_keys(self, prefix: str) -> Iterator[StoredFile]:
        """Every key under ``prefix`` (a folder-like key), in no particular order; writes
        not yet committed are not keys."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds bytes."""

    @abstractmethod
    def check(self) -> None:
        """Raise when the store does not answer (for ``/ready``)."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` in one go."""
        writer = self.open_writer(key)
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def read_bytes(self, key: str) -> bytes:
        """All the bytes of ``key``."""
        with self.open_reader(key) as handle:
            return handle.read()

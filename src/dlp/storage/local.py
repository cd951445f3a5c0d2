"""A file store on a local folder (the embedded default)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dlp.errors import NotFoundError
from dlp.storage.base import FileStore, FileWriter, StoredFile, validate_key


class LocalFileWriter(FileWriter):
    """Writes to a hidden temporary file and renames it into place on commit."""

    def __init__(self, target: Path) -> None:
        self._target = target
        self._tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO | None = self._tmp.open("wb")

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the temporary file."""
        assert self._handle is not None, "writer already closed"
        self._handle.write(chunk)

    def commit(self) -> None:
        """Flush to disk and rename atomically over the key."""
        assert self._handle is not None, "writer already closed"
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        self._tmp.replace(self._target)

    def abort(self) -> None:
        """Remove the temporary file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)


class LocalFileStore(FileStore):
    """Keys are paths below ``root``; nothing outside it is ever touched."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise NotFoundError("file", key)
        return path

    def open_writer(self, key: str) -> FileWriter:
        """Start a streaming write to ``key``."""
        return LocalFileWriter(self._path(key))

    def open_reader(self, key: str) -> BinaryIO:
        """Open ``key`` for reading."""
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFoundError("file", key) from exc

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield ``key``'s bytes chunk by chunk."""
        with self.open_reader(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def delete_prefix(self, prefix: str) -> None:
        """Remove the folder ``prefix`` and everything in it."""
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def iter_keys(self, prefix: str) -> Iterator[StoredFile]:
        """Every file below the folder ``prefix``, skipping writers' hidden partial files."""
        top = self._path(prefix)
        for folder, _subfolders, names in os.walk(top):
            for name in names:
                if name.startswith("."):
                    continue
                path = Path(folder, name)
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield StoredFile(
                    key=path.relative_to(self.root).as_posix(),
                    modified_at=datetime.fromtimestamp(modified, UTC),
                )

    def exists(self, key: str) -> bool:
        """Whether ``key`` is a file in the store."""
        return self._path(key).is_file()

    def check(self) -> None:
        """Raise unless the root folder is writable."""
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")

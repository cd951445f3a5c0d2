"""Encryption at rest: a file store that seals every file it stores with AES-256-GCM.

``EncryptedStore`` wraps any other store. A stored file is a header, then the plaintext
in chunks of ``CHUNK_SIZE`` bytes, each sealed on its own:

    header  = magic "DLPENC" | version (1 byte) | key id (8) | chunk size (4) | salt (16)
    chunk i = AES-256-GCM(plaintext[i*C : (i+1)*C]) + 16-byte tag

The file's AES key and 8-byte nonce prefix are derived (HKDF-SHA256) from the master key
and the file's random salt, so nonces never repeat however many files one key seals;
chunk ``i``'s nonce is the prefix followed by ``i``. Every chunk's associated data is the
header, ``i``, a last-chunk flag and the storage key: a chunk moved, dropped, reordered,
or copied into another file, a truncated file, and a file copied to another key all fail
their tag. Every chunk but the last holds exactly ``C`` bytes, so a plaintext offset maps
to one chunk and readers seek; both directions hold one chunk in memory at a time.
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dlp.errors import DLPError
from dlp.storage.base import FileStore, FileWriter, SeekableReader, StoredFile
from dlp.storage.keyring import Keyring

MAGIC = b"DLPENC"
VERSION = 1
CHUNK_SIZE = 64 * 1024
TAG_BYTES = 16
SALT_BYTES = 16
NONCE_PREFIX_BYTES = 8
MAX_CHUNKS = 2**32
"""Chunk numbers fill the last four bytes of the 12-byte nonce."""
MAX_CHUNK_SIZE = 64 * 2**20
"""A header naming larger chunks is refused before anything that size is read."""
HEADER = struct.Struct(">6sB8sI16s")
_CHUNK_POSITION = struct.Struct(">IB")
_DERIVATION_INFO = b"dlp file encryption v1"


class StoredFileIntegrityError(DLPError):
    """A stored file fails its encryption check: tampered with, truncated, moved to another
    key, or sealed with a key this installation does not hold."""


@dataclass(frozen=True)
class FileCipher:
    """The sealing of one stored file: its header and the key and nonces derived from it."""

    header: bytes
    storage_key: str
    chunk_size: int
    aead: AESGCM
    nonce_prefix: bytes

    @classmethod
    def derive(cls, master: bytes, header: bytes, storage_key: str) -> FileCipher:
        """The cipher of the file whose header is ``header``, under ``master``."""
        _magic, _version, _key_id, chunk_size, salt = HEADER.unpack(header)
        derived = HKDF(
            algorithm=SHA256(), length=32 + NONCE_PREFIX_BYTES, salt=salt, info=_DERIVATION_INFO
        ).derive(master)
        return cls(header, storage_key, chunk_size, AESGCM(derived[:32]), derived[32:])

    def _nonce_and_data(self, index: int, last: bool) -> tuple[bytes, bytes]:
        position = _CHUNK_POSITION.pack(index, last)
        nonce = self.nonce_prefix + position[:4]
        return nonce, self.header + position + self.storage_key.encode()

    def seal(self, index: int, plaintext: bytes | bytearray, *, last: bool) -> bytes:
        """Chunk ``index`` of the file, encrypted and tagged."""
        if index >= MAX_CHUNKS:
            raise DLPError(f"file {self.storage_key} is too large to encrypt")
        nonce, data = self._nonce_and_data(index, last)
        return self.aead.encrypt(nonce, plaintext, data)

    def open(self, index: int, sealed: bytes, *, last: bool) -> bytes:
        """The plaintext of chunk ``index``; raises when it is not the chunk sealed there."""
        nonce, data = self._nonce_and_data(index, last)
        try:
            return self.aead.decrypt(nonce, sealed, data)
        except InvalidTag:
            raise StoredFileIntegrityError(
                f"stored file {self.storage_key} failed its integrity check at chunk {index} "
                "(tampered with, truncated, or moved from another key); refusing to read it"
            ) from None


class EncryptingWriter(FileWriter):
    """Seals each full chunk as it fills; the last (short or empty) one on ``commit``.

    A full chunk is held back until more bytes arrive, so the chunk sealed as the last
    one is always the file's true end.
    """

    def __init__(self, inner: FileWriter, cipher: FileCipher) -> None:
        self._inner = inner
        self._cipher = cipher
        self._buffer = bytearray()
        self._index = 0
        inner.write(cipher.header)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``, sealing and passing on every chunk that is followed by more."""
        view = memoryview(chunk)
        size = self._cipher.chunk_size
        while view:
            if len(self._buffer) == size:
                self._inner.write(self._cipher.seal(self._index, self._buffer, last=False))
                self._index += 1
                self._buffer.clear()
            room = size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]

    def commit(self) -> None:
        """Seal the last chunk and commit the inner write."""
        self._inner.write(self._cipher.seal(self._index, self._buffer, last=True))
        self._buffer.clear()
        self._inner.commit()

    def abort(self) -> None:
        """Abort the inner write."""
        self._buffer.clear()
        self._inner.abort()


class DecryptingReader(SeekableReader):
    """A seekable plaintext view of an encrypted file over a seekable inner reader."""

    def __init__(self, inner: BinaryIO, cipher: FileCipher, stored_size: int) -> None:
        super().__init__()
        self._inner = inner
        self._cipher = cipher
        self._stride = cipher.chunk_size + TAG_BYTES
        body = stored_size - HEADER.size
        self._chunks = max(1, -(-body // self._stride))
        last_sealed = body - (self._chunks - 1) * self._stride
        if last_sealed < TAG_BYTES:
            raise StoredFileIntegrityError(
                f"stored file {cipher.storage_key} is truncated; refusing to read it"
            )
        self._stored_size = stored_size
        self._size = body - self._chunks * TAG_BYTES
        self._position = 0
        self._loaded = -1
        self._plaintext = b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the plaintext position (a plaintext offset maps to one chunk); the chunk is
        read when bytes are."""
        self._position = self.seek_target(offset, whence)
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current chunk (at most up to its end)."""
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not view:
            return 0
        index, offset = divmod(self._position, self._cipher.chunk_size)
        plaintext = self._load(index)
        count = min(len(view), len(plaintext) - offset)
        view[:count] = memoryview(plaintext)[offset : offset + count]
        self._position += count
        return count

    def readall(self) -> bytes:
        """Everything from the current position to the end."""
        parts = []
        while self._position < self._size:
            index, offset = divmod(self._position, self._cipher.chunk_size)
            part = self._load(index)[offset:]
            parts.append(part)
            self._position += len(part)
        return b"".join(parts)

    def close(self) -> None:
        """Close the inner reader too."""
        self._plaintext = b""
        self._inner.close()
        super().close()

    def _load(self, index: int) -> bytes:
        if index != self._loaded:
            # Let the previous chunk go before the next one is read.
            self._plaintext, self._loaded = b"", -1
            start = HEADER.size + index * self._stride
            length = min(self._stride, self._stored_size - start)
            if self._inner.tell() != start:
                self._inner.seek(start)
            sealed = self._inner.read(length)
            if len(sealed) != length:
                raise StoredFileIntegrityError(
                    f"stored file {self._cipher.storage_key} ended early; refusing to read it"
                )
            self._plaintext = self._cipher.open(index, sealed, last=index == self._chunks - 1)
            self._loaded = index
        return self._plaintext


class EncryptedStore(FileStore):
    """Every file of ``inner`` sealed with ``keyring``'s current key; files under its old
    keys stay readable, and so do files stored before encryption when it allows them."""

    def __init__(self, inner: FileStore, keyring: Keyring, chunk_size: int = CHUNK_SIZE) -> None:
        self.inner = inner
        self.keyring = keyring
        self.chunk_size = chunk_size

    def open_writer(self, key: str) -> FileWriter:
        """Start a write to ``key`` sealed under the current key."""
        header = HEADER.pack(
            MAGIC,
            VERSION,
            self.keyring.current_id,
            self.chunk_size,
            secrets.token_bytes(SALT_BYTES),
        )
        cipher = FileCipher.derive(self.keyring.current, header, key)
        return EncryptingWriter(self.inner.open_writer(key), cipher)

    def open_reader(self, key: str) -> BinaryIO:
        """A seekable plaintext reader over ``key``; raises ``StoredFileIntegrityError``
        when the file fails its checks, ``NotFoundError`` when it is absent."""
        inner = self.inner.open_reader(key)
        try:
            cipher = self._cipher_for(key, _read_header(inner))
            if cipher is None:
                inner.seek(0)
                return inner
            raw = DecryptingReader(inner, cipher, inner.seek(0, io.SEEK_END))
        except BaseException:
            inner.close()
            raise
        return cast(BinaryIO, io.BufferedReader(raw))

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield ``key``'s plaintext chunk by chunk."""
        with self.open_reader(key) as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix``."""
        self.inner.delete_prefix(prefix)

    def iter_keys(self, prefix: str) -> Iterator[StoredFile]:
        """Every key under ``prefix``."""
        return self.inner.iter_keys(prefix)

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds bytes."""
        return self.inner.exists(key)

    def check(self) -> None:
        """Raise when the inner store does not answer."""
        self.inner.check()

    def stored_key_id(self, key: str) -> bytes | None:
        """The id of the key ``key`` is sealed with, or None for a plaintext file."""
        with self.inner.open_reader(key) as handle:
            header = _read_header(handle)
        if not header.startswith(MAGIC):
            return None
        return bytes(HEADER.unpack(_full_header(header, key))[2])

    def rewrite(self, key: str) -> None:
        """Read ``key`` and write it back under the current key, replacing it on commit."""
        with self.open_reader(key) as source:
            writer = self.open_writer(key)
            try:
                while chunk := source.read(self.chunk_size):
                    writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            writer.commit()

    def _cipher_for(self, key: str, header: bytes) -> FileCipher | None:
        if not header.startswith(MAGIC):
            if self.keyring.allow_plaintext:
                return None
            raise StoredFileIntegrityError(
                f"stored file {key} is not encrypted and DLP_ENCRYPTION_ALLOW_PLAINTEXT is off; "
                "refusing to read it"
            )
        _magic, version, wanted, chunk_size, _salt = HEADER.unpack(_full_header(header, key))
        if version != VERSION or not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise StoredFileIntegrityError(
                f"stored file {key} has an encryption header this dlp cannot read "
                f"(format {version}, chunks of {chunk_size} bytes)"
            )
        master = self.keyring.key_for(wanted)
        if master is None:
            raise StoredFileIntegrityError(
                f"stored file {key} is sealed with key id {wanted.hex()}, which is neither "
                "DLP_ENCRYPTION_KEY nor one of DLP_ENCRYPTION_OLD_KEYS"
            )
        return FileCipher.derive(master, header, key)


def _read_header(handle: BinaryIO) -> bytes:
    """Up to a header's worth of bytes from the start of ``handle``."""
    header = b""
    while len(header) < HEADER.size and (more := handle.read(HEADER.size - len(header))):
        header += more
    return header


def _full_header(header: bytes, key: str) -> bytes:
    """``header``, once it is known to be a whole one."""
    if len(header) < HEADER.size:
        raise StoredFileIntegrityError(f"stored file {key} is truncated; refusing to read it")
    return header

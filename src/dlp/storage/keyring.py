"""The keys that encrypt stored files at rest: the current one and those it replaced."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlp.config import Settings

KEY_BYTES = 32
KEY_ID_BYTES = 8


def decode_key(text: str) -> bytes:
    """The 32 key bytes of a base64 ``DLP_ENCRYPTION_KEY``; ``ValueError`` for anything else."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "an encryption key is the base64 of 32 random bytes (`dlp keys generate` prints one)"
        ) from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"an encryption key is the base64 of {KEY_BYTES} bytes, not {len(key)} "
            "(`dlp keys generate` prints one)"
        )
    return key


def generate_key() -> str:
    """A new random key, base64 as ``DLP_ENCRYPTION_KEY`` takes it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_id(key: bytes) -> bytes:
    """The id a file's header names its key by: safe to store, it reveals nothing of it."""
    return hashlib.sha256(b"dlp encryption key id\x00" + key).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class Keyring:
    """New files are sealed with ``current``; files under ``old`` keys stay readable.

    ``allow_plaintext`` lets files stored before encryption was switched on be read as
    they are (the migration path); once ``dlp storage reencrypt`` has rewritten them,
    turning it off refuses any plaintext file planted in the store.
    """

    current: bytes
    old: tuple[bytes, ...] = ()
    allow_plaintext: bool = True

    @property
    def current_id(self) -> bytes:
        """The id new files carry."""
        return key_id(self.current)

    def key_for(self, wanted: bytes) -> bytes | None:
        """The key whose id is ``wanted``, or None when this keyring does not hold it."""
        for key in (self.current, *self.old):
            if key_id(key) == wanted:
                return key
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring | None:
        """The keyring of ``DLP_ENCRYPTION_KEY`` and ``DLP_ENCRYPTION_OLD_KEYS``; None when
        encryption at rest is off."""
        if settings.encryption_key is None:
            return None
        old = settings.encryption_old_keys
        return cls(
            current=decode_key(settings.encryption_key.get_secret_value()),
            old=tuple(
                decode_key(text)
                for text in (old.get_secret_value().split(",") if old else [])
                if text.strip()
            ),
            allow_plaintext=settings.encryption_allow_plaintext,
        )

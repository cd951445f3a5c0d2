"""Password hashing, access tokens (JWT) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from dlp.db import utcnow
from dlp.errors import AuthenticationError

PASSWORD_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
"""Argon2id, 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommendation, above OWASP's
minimum (19 MiB, 2 passes, 1 lane). Stored hashes with other parameters are redone at
the next login."""

_hasher = PasswordHasher.from_parameters(PASSWORD_PARAMETERS)
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "dlp_"


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password``; with no hash (unknown user) still spend the same time, on a
    dummy hash made with the current parameters."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(_hasher), password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def password_stamp(password_hash: str, *, key: str) -> str:
    """A short keyed digest of the stored password hash, carried by access tokens: a new
    password changes it, so tokens issued before stop working."""
    return hmac.new(key.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:16]


def stamp_matches(stamp: str | None, password_hash: str, *, key: str) -> bool:
    """Whether an access token's ``stamp`` belongs to the current password (constant time)."""
    return stamp is not None and hmac.compare_digest(stamp, password_stamp(password_hash, key=key))


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh token, API key) for storage and lookup."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_refresh_token() -> str:
    """A fresh opaque refresh token."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A fresh API key, recognisable by its prefix."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    password_stamp: str | None


def create_access_token(
    *,
    key: str,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    password_stamp: str,
    ttl: timedelta,
) -> str:
    """A signed, short-lived access token, valid until ``ttl`` passes or the password
    behind ``password_stamp`` changes."""
    now = utcnow()
    payload = {
        "sub": str(user_id),
        "org": str(organization_id),
        "pws": password_stamp,
        "typ": "access",
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, *, key: str) -> AccessClaims:
    """Verify signature, expiry and type; raise ``AuthenticationError`` otherwise."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "org"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError("invalid access token") from exc
    if payload.get("typ") != "access":
        raise AuthenticationError("invalid access token")
    try:
        stamp = payload.get("pws")
        return AccessClaims(
            uuid.UUID(payload["sub"]),
            uuid.UUID(payload["org"]),
            stamp if isinstance(stamp, str) else None,
        )
    except (ValueError, TypeError) as exc:
        raise AuthenticationError("invalid access token") from exc


def expiry(days: int) -> datetime:
    """The moment ``days`` from now."""
    return utcnow() + timedelta(days=days)

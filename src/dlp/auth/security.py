"""Password hashing, access tokens (JWT) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dlp.db import utcnow
from dlp.errors import AuthenticationError

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "dlp_"


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check ``password``; with no hash (unknown user) still spend the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


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


def create_access_token(
    *, key: str, user_id: uuid.UUID, organization_id: uuid.UUID, ttl: timedelta
) -> str:
    """A signed, short-lived access token."""
    now = utcnow()
    payload = {
        "sub": str(user_id),
        "org": str(organization_id),
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
        return AccessClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["org"]))
    except (ValueError, TypeError) as exc:
        raise AuthenticationError("invalid access token") from exc


def expiry(days: int) -> datetime:
    """The moment ``days`` from now."""
    return utcnow() + timedelta(days=days)

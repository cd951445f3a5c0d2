"""Sign-in and sign-up throttling: password guessing and account-creation floods,
bounded per account and per client IP on the installation's rate-limit counters."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dlp.errors import AuthenticationError
from dlp.ratelimit import RateLimiter

T = TypeVar("T")


def _account_key(login: str) -> str:
    # Case does not make another account; a digest keeps any name a short counter name.
    return hashlib.blake2b(login.strip().lower().encode(), digest_size=16).hexdigest()


async def throttled_login(
    limiter: RateLimiter, *, login: str, ip: str | None, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run ``attempt``, a sign-in as ``login``, unless that account or ``ip`` failed too
    often lately: then ``RateLimitedError``, even for the right password.

    The account's unit is taken before the password is checked, so concurrent guesses
    cannot overrun it; a success gives the account its budget back. The IP counts
    failures only, whatever the account (credential stuffing), and a success never
    resets it.
    """
    account = _account_key(login)
    if ip is not None:
        await limiter.refuse_if_spent(limiter.login_failures_per_ip, "login", "ip", ip)
    await limiter.take(limiter.login_failures_per_account, "login", "account", account)
    try:
        signed_in = await attempt()
    except AuthenticationError:
        if ip is not None:
            await limiter.count(limiter.login_failures_per_ip, "login", "ip", ip)
        raise
    await limiter.forget(limiter.login_failures_per_account, "login", "account", account)
    return signed_in


async def throttled_registration(
    limiter: RateLimiter, *, ip: str | None, attempt: Callable[[], Awaitable[T]]
) -> T:
    """Run ``attempt``, an account registration, unless ``ip`` registered too often lately
    (every attempt counts: each costs a password hash and may create an account)."""
    if ip is not None:
        await limiter.take(limiter.registrations_per_ip, "register", "ip", ip)
    return await attempt()

"""Which failures pass by themselves: the one place that knows the backends' fault types."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dlp.errors import ReplicaLostError, ServiceUnavailableError


def is_transient(exc: BaseException) -> bool:
    """True for faults that pass by themselves: a database, broker or store briefly away,
    or one process of a data-parallel job lost.

    Worth a retry with backoff; everything else (bad data, bad config, bugs) is not.
    """
    if isinstance(
        exc, ServiceUnavailableError | ReplicaLostError | OperationalError | InterfaceError
    ):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(
        exc, ConnectionError | TimeoutError | RedisConnectionError | RedisTimeoutError
    )

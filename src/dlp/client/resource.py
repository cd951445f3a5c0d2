"""What every group of SDK calls shares: the transport, paging, streamed downloads."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, TypeVar

import httpx

from dlp.client.errors import JobWaitTimeoutError
from dlp.client.schemas import Item, Page
from dlp.client.transport import ProgressCallback, Transport

DEFAULT_PAGE_SIZE = 100
Destination = str | Path | IO[bytes]
_FILENAME = re.compile(r'filename="?([^";]+)"?')


class Resource:
    """A group of calls (``client.datasets``, ``client.jobs``, ...) over one transport."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport


def iter_pages(fetch: Callable[[int, int], Page[Item]], page_size: int) -> Iterator[Item]:
    """Every item of a collection, fetched ``page_size`` at a time."""
    offset = 0
    while True:
        page = fetch(page_size, offset)
        yield from page.items
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


def download(
    transport: Transport,
    path: str,
    destination: Destination,
    *,
    params: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> Path | None:
    """Stream a download into a file object, a file path, or a folder (under the server's
    file name); return the path written, None for a file object."""
    with transport.stream("GET", path, params=params) as response:
        if not isinstance(destination, str | Path):
            _copy(response, destination, progress)
            return None
        target = Path(destination)
        if target.is_dir():
            match = _FILENAME.search(response.headers.get("content-disposition", ""))
            target = target / Path(match.group(1) if match else "download").name
        with target.open("wb") as handle:
            _copy(response, handle, progress)
        return target


def _copy(response: httpx.Response, handle: IO[bytes], progress: ProgressCallback | None) -> None:
    length = response.headers.get("content-length")
    total = int(length) if length and length.isdigit() else None
    done = 0
    for chunk in response.iter_bytes():
        handle.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


class Finishing(Protocol):
    """Something that runs until it ends: a job, a study, a batch prediction."""

    @property
    def status(self) -> str:
        """Its current status."""

    @property
    def finished(self) -> bool:
        """True once it reached a terminal status."""


Polled = TypeVar("Polled", bound=Finishing)


def poll_until_finished(
    fetch: Callable[[], Polled],
    *,
    what: str,
    deadline: float | None,
    poll_interval: float,
) -> Polled:
    """Fetch ``what`` until it is finished; ``JobWaitTimeoutError`` at ``deadline``
    (a ``time.monotonic()`` instant, or None to wait for ever)."""
    while True:
        current = fetch()
        if current.finished:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise JobWaitTimeoutError(f"{what} is still {current.status}", error="timeout")
        time.sleep(poll_interval)


def deadline_after(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` instant ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout

"""HTTP plumbing of the SDK: credentials, token refresh on 401, errors, streaming."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

import httpx

from dlp.client.errors import AuthenticationError, connection_error, error_from_response
from dlp.client.schemas import TokenPair

TokenCallback = Callable[[TokenPair], None]
ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes done, total bytes or None) as a transfer goes."""

DEFAULT_TIMEOUT = 30.0
REFRESH_PATH = "/api/v1/auth/refresh"


class Transport:
    """One ``httpx.Client`` with the caller's credentials.

    An access token is sent as ``Authorization: Bearer``, an API key as ``X-API-Key``.
    A 401 on a call made with an access token and a known refresh token spends the
    refresh token once (the server rotates it), hands the new pair to ``on_tokens``
    and repeats the call.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        refresh_token: str | None = None,
        on_tokens: TokenCallback | None = None,
        organization_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.access_token = token
        self.api_key = api_key
        self.refresh_token = refresh_token
        self.on_tokens = on_tokens
        self.organization_id = organization_id
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=http_transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def set_tokens(self, pair: TokenPair) -> None:
        """Use a new token pair from now on and report it to ``on_tokens``."""
        self.access_token = pair.access_token
        self.refresh_token = pair.refresh_token
        if self.on_tokens is not None:
            self.on_tokens(pair)

    def refresh(self) -> TokenPair:
        """Spend the refresh token for a new pair (the old one stops working)."""
        if not self.refresh_token:
            raise AuthenticationError(
                "no refresh token: log in again", status_code=None, error="authentication_error"
            )
        response = self.request(
            "POST",
            REFRESH_PATH,
            json={"refresh_token": self.refresh_token},
            authenticated=False,
        )
        pair = TokenPair.model_validate(response.json())
        self.set_tokens(pair)
        return pair

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send a call and return its successful answer; raise ``DLPClientError`` otherwise."""
        clean = _without_none(params)

        def build() -> httpx.Request:
            return self._http.build_request(method, path, json=json, params=clean, data=data)

        return self._send(build, authenticated=authenticated)

    def upload(
        self,
        path: str,
        file: IO[bytes],
        filename: str,
        fields: dict[str, str],
        progress: ProgressCallback | None = None,
    ) -> httpx.Response:
        """POST ``file`` as the multipart field ``file``, streamed in chunks."""
        # httpx reads (and rewinds) file objects chunk by chunk: the body is never whole in memory.
        reader = cast(IO[bytes], ProgressReader(file, progress))

        def build() -> httpx.Request:
            return self._http.build_request(
                "POST", path, files={"file": (filename, reader)}, data=fields
            )

        return self._send(build)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> Iterator[httpx.Response]:
        """An answer whose body is read as it arrives; closed when the block ends."""
        clean = _without_none(params)
        timeout = self._http.timeout
        if read_timeout is not None:
            timeout = httpx.Timeout(timeout.connect, read=read_timeout)

        def build() -> httpx.Request:
            return self._http.build_request(method, path, params=clean, timeout=timeout)

        response = self._send(build, stream=True)
        try:
            yield response
        except httpx.TransportError as exc:
            raise connection_error(self.url, exc) from exc
        finally:
            response.close()

    def _send(
        self,
        build: Callable[[], httpx.Request],
        *,
        authenticated: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        response = self._send_once(build(), authenticated=authenticated, stream=stream)
        if (
            response.status_code == 401
            and authenticated
            and self.access_token
            and self.refresh_token
        ):
            response.close()
            self.refresh()
            response = self._send_once(build(), authenticated=True, stream=stream)
        if response.is_error:
            if stream:
                response.read()
                response.close()
            raise error_from_response(response)
        return response

    def _send_once(
        self, request: httpx.Request, *, authenticated: bool, stream: bool
    ) -> httpx.Response:
        if authenticated:
            if self.access_token:
                request.headers["Authorization"] = f"Bearer {self.access_token}"
            elif self.api_key:
                request.headers["X-API-Key"] = self.api_key
            if self.organization_id:
                request.headers["X-DLP-Org"] = self.organization_id
        try:
            return self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise connection_error(self.url, exc) from exc


class ProgressReader(io.RawIOBase):
    """A binary file wrapper that reports how many bytes were read so far."""

    def __init__(self, file: IO[bytes], progress: ProgressCallback | None) -> None:
        super().__init__()
        self._file = file
        self._progress = progress
        self._total = _length_of(file)
        self._done = 0

    def readable(self) -> bool:
        """Always: this wraps a file opened for reading."""
        return True

    def seekable(self) -> bool:
        """Whether the wrapped file can seek (then uploads can be repeated)."""
        return self._file.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move in the wrapped file; progress restarts from there."""
        position = self._file.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        """The wrapped file's position."""
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        """Read from the wrapped file and report the progress."""
        chunk = self._file.read(size)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return chunk


def _length_of(file: IO[bytes]) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        position = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(position)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return end


def _without_none(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {key: value for key, value in params.items() if value is not None}

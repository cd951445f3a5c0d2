"""Request-body limits, enforced before any route parses a body into Python objects.

Every body but a multipart upload (which streams to the store under its own limit) is
read here up to ``DLP_MAX_JSON_BODY_MB`` (``DLP_MAX_PREDICT_BODY_MB`` on prediction
routes): a declared ``Content-Length`` over it is refused at once, a streamed body the
moment it crosses it. A JSON body is then checked for nesting deeper than
``DLP_MAX_JSON_DEPTH`` and for NUL characters (PostgreSQL cannot store them, and no
name or config needs one) with cheap byte scans, and handed on whole.
"""

from __future__ import annotations

import inspect
import re
from itertools import accumulate

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlp.config import Settings
from dlp.errors import DLPError, PayloadTooLargeError, ValidationError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREDICT_SUFFIXES = ("/predict", "/infer", "/invocations")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _opening in b"[{":
    _DEPTH_STEP[_opening] = 1
for _closing in b"]}":
    _DEPTH_STEP[_closing] = -1
_ESCAPED_NUL = b"\\u0000"


def json_nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body``'s arrays and objects nest deeper than ``limit`` (brackets inside
    strings do not count)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > limit


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media in (b"", b"application/json") or media.endswith(b"+json")


class BodyLimitMiddleware:
    """Refuse bodies too large (413) or JSON nested too deep or holding NUL (422)."""

    def __init__(self, app: ASGIApp, api: FastAPI, settings: Settings) -> None:
        self.app = app
        self.api = api
        self.max_bytes = settings.max_json_body_mb * 2**20
        self.max_predict_bytes = max(self.max_bytes, settings.max_predict_body_mb * 2**20)
        self.max_depth = settings.max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = b""
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                declared = value
        if content_type[:10].lower() == b"multipart/":
            await self.app(scope, receive, send)
            return
        limit = (
            self.max_predict_bytes if scope["path"].endswith(PREDICT_SUFFIXES) else self.max_bytes
        )
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            body = await _read_body(receive, limit)
            if body is None:
                return  # the client went away
            if _is_json(content_type):
                self._check_json(body)
        except DLPError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_json(self, body: bytes) -> None:
        if json_nesting_exceeds(body, self.max_depth):
            raise ValidationError(
                f"the JSON body nests arrays and objects deeper than {self.max_depth} levels"
            )
        if _ESCAPED_NUL in body:
            raise ValidationError("NUL characters (\\u0000) are not accepted in JSON bodies")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: DLPError) -> None:
        answer = self.api.exception_handlers[DLPError](Request(scope, receive), exc)
        response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body is over the {limit // 2**20} MB limit")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay

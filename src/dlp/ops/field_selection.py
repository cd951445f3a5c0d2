"""``?fields=a,b`` on the API's JSON ``GET`` answers: only the named top-level fields.

For a resource the answer keeps the named fields; for a list (``{"items": [...]}``) each
item keeps them and the envelope (``total``, ``limit``, ``offset``) stays whole. ``id`` is
always kept where the resource has one, so a trimmed answer can still name what it shows.
An unknown name answers 422 naming it; an empty ``fields`` selects nothing away.

The operations that take ``fields`` and the names each knows come from the OpenAPI
document itself (the ``GET`` operations under ``/api/`` whose 200 answer is a schema with
properties), so the document and the behaviour cannot disagree. The middleware is pure
ASGI and only looks further than the query string when ``fields`` is in it; it acts on a
200 answer only, after the route has run (a 401 or a 404 reads as usual), trimming the
JSON body the route produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlp.errors import DLPError, ValidationError

FIELDS = "fields"
_FIELDS_BYTES = FIELDS.encode()
ALWAYS_KEPT = "id"
FIELDS_PARAMETER: dict[str, Any] = {
    "name": FIELDS,
    "in": "query",
    "required": False,
    "description": "Comma-separated top-level fields to return (of each item, for a list); "
    "`id` is always returned. An unknown name answers 422. The answer then holds only "
    "those fields, whatever the schema below marks as required.",
    "schema": {"type": "string"},
}
_SCHEMA_REF = "#/components/schemas/"


@dataclass(frozen=True)
class Selectable:
    """What ``fields`` may name for one operation, and whether it trims a list's items."""

    names: frozenset[str]
    is_list: bool


def selectable_operations(document: dict[str, Any]) -> dict[str, Selectable]:
    """The ``GET`` operations that take ``fields``, by path template."""
    schemas = document.get("components", {}).get("schemas", {})
    found = {}
    for path, operations in document.get("paths", {}).items():
        operation = operations.get("get")
        if not path.startswith("/api/") or operation is None:
            continue
        content = operation.get("responses", {}).get("200", {}).get("content", {})
        answer = _resolve(schemas, content.get("application/json", {}).get("schema", {}))
        properties = answer.get("properties", {})
        items = properties.get("items", {})
        item = _resolve(schemas, items.get("items", {})) if items.get("type") == "array" else {}
        if item.get("properties"):
            found[path] = Selectable(frozenset(item["properties"]), is_list=True)
        elif properties:
            found[path] = Selectable(frozenset(properties), is_list=False)
    return found


def _resolve(schemas: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith(_SCHEMA_REF):
        resolved: dict[str, Any] = schemas.get(ref.removeprefix(_SCHEMA_REF), {})
        return resolved
    return schema


def document_field_selection(app: FastAPI) -> None:
    """Declare the ``fields`` query parameter on every operation that takes it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for path in selectable_operations(document):
            parameters = document["paths"][path]["get"].setdefault("parameters", [])
            if FIELDS_PARAMETER not in parameters:
                parameters.append(FIELDS_PARAMETER)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def requested_fields(query_string: bytes) -> list[str]:
    """The names in ``?fields=`` (several ``fields`` parameters add up); [] when none."""
    names = []
    for key, value in parse_qsl(query_string.decode("latin-1")):
        if key == FIELDS:
            names += [name.strip() for name in value.split(",") if name.strip()]
    return names


def select_fields(body: Any, names: set[str], is_list: bool) -> Any:
    """``body`` with only ``names`` (and ``id``) kept, in each item for a list."""
    keep = names | {ALWAYS_KEPT}
    if is_list and isinstance(body, dict) and isinstance(body.get("items"), list):
        return {**body, "items": [_pick(item, keep) for item in body["items"]]}
    return _pick(body, keep)


def _pick(value: Any, keep: set[str]) -> Any:
    if not isinstance(value, dict):
        return value
    return {name: field for name, field in value.items() if name in keep}


class FieldSelectionMiddleware:
    """Trim the 200 JSON answers of ``GET`` operations that were asked for ``?fields=``."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._operations: dict[str, Selectable] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or _FIELDS_BYTES not in scope["query_string"]
        ):
            await self.app(scope, receive, send)
            return
        names = set(requested_fields(scope["query_string"]))
        if not names:
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        selectable: Selectable | None = None
        chunks: list[bytes] = []

        async def send_selected(message: Message) -> None:
            nonlocal held, selectable
            if message["type"] == "http.response.start":
                selectable = self._selectable(scope, message)
                if selectable is None:
                    await send(message)
                else:
                    held = message
                return
            if held is None or selectable is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answer = b"".join(chunks)
                await self._answer(scope, receive, send, held, answer, names, selectable)

        await self.app(scope, receive, send_selected)

    def _selectable(self, scope: Scope, start: Message) -> Selectable | None:
        if start["status"] != 200:
            return None
        content_type = dict(start.get("headers", ())).get(b"content-type", b"")
        if not content_type.startswith(b"application/json"):
            return None
        if self._operations is None:
            self._operations = selectable_operations(self.api.openapi())
        template = getattr(scope.get("route"), "path", None)
        return self._operations.get(template) if template else None

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        start: Message,
        body: bytes,
        names: set[str],
        selectable: Selectable,
    ) -> None:
        unknown = sorted(names - selectable.names)
        if unknown:
            error = ValidationError(
                f"fields: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(selectable.names))}"
            )
            handler: Any = self.api.exception_handlers[DLPError]
            response = await handler(Request(scope, receive), error)
            await response(scope, receive, send)
            return
        selected = select_fields(json.loads(body), names, selectable.is_list)
        encoded = json.dumps(selected, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
        headers.append((b"content-length", str(len(encoded)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})

"""The error answers of every operation, in the OpenAPI document.

Every route can answer with the contract's error body: a missing credential (401),
a role or key scope that does not allow it (403), a rate limit (429), an outage (503).
FastAPI documents only the 422 of request validation, with a body dlp never sends;
here each operation gets the statuses it can answer with, all with the one ``Error``
schema, so clients and schema-driven test tools know what to expect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {
            "type": "string",
            "description": "The machine code (under /v2/: the message, as the protocol wants).",
        },
        "message": {"type": "string", "description": "A sentence for a person."},
        "request_id": {"type": ["string", "null"], "description": "Also in X-Request-ID."},
        "code": {"type": "string", "description": "Under /v2/ only: the machine code."},
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

ERROR_STATUSES = {
    "401": "No valid credentials.",
    "403": "The role in this organization or the API key's scope does not allow it.",
    "404": "Not found, or owned by another organization.",
    "409": "Conflicts with the resource's current state, or a quota.",
    "413": "The body is over a size limit or a storage quota.",
    "415": "An unsupported media or file type.",
    "422": "The request is not valid; the message names the field.",
    "429": "Too many requests; retry after ``Retry-After`` seconds.",
    "500": "An internal error; its request id is in the server log.",
    "503": "A dependency (database, broker) is unavailable; retry shortly.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
# FastAPI's own validation error shapes, replaced by ``Error``.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_errors(app: FastAPI) -> None:
    """Add the error answers to every operation of ``app``'s OpenAPI document."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Error" in schemas:
            return schema
        schemas["Error"] = ERROR_SCHEMA
        for name in FASTAPI_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
        for operations in schema["paths"].values():
            for operation in operations.values():
                _add_errors(operation.setdefault("responses", {}))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_errors(responses: dict[str, Any]) -> None:
    for status, description in ERROR_STATUSES.items():
        answer = {
            "description": description,
            "content": {"application/json": {"schema": ERROR_REF}},
        }
        if status == "429":
            answer["headers"] = RETRY_AFTER
        if status == "422" or status not in responses:
            responses[status] = answer


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for ``path`` (for a 405's ``Allow``)."""
    routes: list[tuple[re.Pattern[str], list[str]]] | None = getattr(
        app.state, "allowed_methods", None
    )
    if routes is None:
        routes = [
            (re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))), sorted(operations))
            for template, operations in app.openapi()["paths"].items()
        ]
        app.state.allowed_methods = routes
    methods = {m.upper() for pattern, listed in routes if pattern.fullmatch(path) for m in listed}
    return sorted(methods)

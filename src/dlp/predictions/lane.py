"""The prediction lane: ``POST /api/v1/models/{id}/predict`` and
``POST /api/v1/registry/{name}/predict`` answered before FastAPI's routing.

Online prediction is the hottest path and its answer is a few hundred bytes: on two
cores, FastAPI's routing through every included router, dependency solving and
response validation cost as much as the model itself. The lane is a pure ASGI
middleware inside the request-context middleware (request id, latency metrics, crash
handling) and inside FastAPI's tracing (it names the request's span after its route
itself), doing only what these two routes need with the same building blocks the
API uses elsewhere: the serving credential cache, the serving directory, one
pydantic-core pass over the body and one serialisation of the answer (no database
connection is held while the prediction is awaited: one held per request exhausted
the pool at concurrency 64). Its errors go
through the application's own exception handlers, so they read exactly as every
other route's. ``document_lane`` adds both routes to the OpenAPI document.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pydantic
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dlp.dependencies import SERVING_SECURITY, get_serving_principal
from dlp.predictions.schemas import PredictRequest, PredictResponse
from dlp.registry import serving

MODEL_PREDICT = "/api/v1/models/{model_id}/predict"
NAME_PREDICT = "/api/v1/registry/{name}/predict"
_MODEL_PATH = re.compile(r"/api/v1/models/([^/]+)/predict")
_NAME_PATH = re.compile(r"/api/v1/registry/([^/]+)/predict")
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class LaneRoute:
    """What the request metrics label a lane request with (FastAPI routes have ``path``)."""

    path: str


_MODEL_ROUTE = LaneRoute(MODEL_PREDICT)
_NAME_ROUTE = LaneRoute(NAME_PREDICT)


class PredictionLane:
    """Answers the two prediction routes; passes every other request on unchanged."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        by_id = _MODEL_PATH.fullmatch(path)
        by_name = None if by_id else _NAME_PATH.fullmatch(path)
        if by_id is None and by_name is None:
            await self.app(scope, receive, send)
            return
        route = _MODEL_ROUTE if by_id else _NAME_ROUTE
        scope["route"] = route
        self.api.state.tracing.route_selected(scope["method"], route.path)
        request = Request(scope, receive)
        try:
            if scope["method"] != "POST":
                raise HTTPException(405)
            if by_id is not None:
                response = await self._predict_by_id(request, by_id.group(1))
            else:
                assert by_name is not None
                response = await self._predict_by_name(request, unquote(by_name.group(1)))
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    async def _predict_by_id(self, request: Request, raw_id: str) -> Response:
        try:
            model_id = uuid.UUID(raw_id)
        except ValueError:
            raise _path_error("model_id", "Input should be a valid UUID") from None
        principal = await get_serving_principal(request)
        body = await _read_body(request)
        model = await serving.directory(request).by_id(principal, model_id)
        return _json(await serving.predict(request, model, body.inputs))

    async def _predict_by_name(self, request: Request, name: str) -> Response:
        if len(name) > MAX_NAME_LENGTH:
            raise _path_error("name", f"String should have at most {MAX_NAME_LENGTH} characters")
        principal = await get_serving_principal(request)
        body = await _read_body(request)
        model = await serving.directory(request).by_name(principal, name)
        return _json(await serving.predict(request, model, body.inputs))

    def _handler(self, exc: Exception) -> Any:
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None


async def _read_body(request: Request) -> PredictRequest:
    try:
        return PredictRequest.model_validate_json(await request.body())
    except pydantic.ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


def _path_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("path", name), "msg": message, "type": "value_error"}])


def _json(answer: PredictResponse) -> Response:
    return Response(answer.model_dump_json(), media_type="application/json")


def document_lane(app: FastAPI) -> None:
    """Describe the lane's routes in ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (PredictRequest, PredictResponse):
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        schema["paths"][MODEL_PREDICT] = {
            "post": _operation(
                "models",
                "Predict",
                "Predict up to 1,000 rows with one model version.",
                {"name": "model_id", "schema": {"type": "string", "format": "uuid"}},
            )
        }
        schema["paths"][NAME_PREDICT] = {
            "post": _operation(
                "registry",
                "Predict by name",
                "Predict with the version the traffic split picks, else the ``production`` "
                "alias; the answer's ``model_version`` names the version that served it.",
                {"name": "name", "schema": {"type": "string", "maxLength": MAX_NAME_LENGTH}},
            )
        }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operation(
    tag: str, summary: str, description: str, parameter: dict[str, Any]
) -> dict[str, Any]:
    error = {"description": "The contract's error body: error, message, request_id."}
    return {
        "tags": [tag],
        "summary": summary,
        "description": description,
        "parameters": [{"in": "path", "required": True, **parameter}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        },
        "responses": {
            "200": {
                "description": "Predictions aligned with the inputs.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}}
                },
            },
            "401": error,
            "404": error,
            "409": error,
            "422": error,
        },
        **SERVING_SECURITY,
    }

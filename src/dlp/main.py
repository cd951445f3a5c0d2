"""The FastAPI application: routers, the one error handler, start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

import dlp
from dlp.audit.router import router as audit_router
from dlp.auth.router import router as auth_router
from dlp.batch.router import router as batch_router
from dlp.cache import SingleFlightCache
from dlp.config import Settings, get_settings
from dlp.datasets.router import router as datasets_router
from dlp.errors import DLPError, RateLimitedError
from dlp.events.router import router as events_router
from dlp.faults import is_transient
from dlp.migrate import is_up_to_date
from dlp.openapi import allowed_methods, document_errors
from dlp.ops.body_limits import BodyLimitMiddleware
from dlp.ops.compression import install_compression
from dlp.ops.field_selection import FieldSelectionMiddleware, document_field_selection
from dlp.ops.headers import install_cors, install_security_headers
from dlp.ops.metrics import ApiMetrics
from dlp.ops.middleware import RequestContextMiddleware
from dlp.ops.router import router as ops_router
from dlp.ops.tracing import setup_tracing
from dlp.organizations.router import router as organizations_router
from dlp.platform import build_platform
from dlp.predictions.lane import PredictionLane, document_lane
from dlp.predictions.server import build_model_server
from dlp.protocols.router import mlflow_router, v2_router
from dlp.protocols.stream import router as stream_router
from dlp.ratelimit import ApiRateLimitMiddleware, build_rate_limiter
from dlp.registry.names_router import router as registry_router
from dlp.registry.router import router as models_router
from dlp.registry.serving import ServingDirectory, warm_production_versions
from dlp.training.router import router as training_router
from dlp.tuning.router import router as tuning_router
from dlp.web import install_web_ui
from dlp.workers.housekeeping import keep_house_periodically, reap_periodically
from dlp.workers.router import router as admin_router

log = structlog.get_logger(__name__)

_HTTP_CODES = {
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    405: "not_found",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


V2_PREFIX = "/v2/"
TRACING_SERVICE = "dlp-api"


def error_response(request: Request, status_code: int, code: str, message: str) -> JSONResponse:
    """The contract's error body, with the request's id.

    Under ``/v2/`` the Open Inference Protocol wants ``error`` to be the message
    itself (stock clients show it); ``code`` then moves to ``code``.
    """
    content = {
        "error": code,
        "message": message,
        "request_id": getattr(request.state, "request_id", None),
    }
    if request.url.path.startswith(V2_PREFIX):
        content |= {"error": message, "code": code}
    return JSONResponse(status_code=status_code, content=content)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the contract's JSON shape, in one place."""

    @app.exception_handler(DLPError)
    async def _dlp_error(request: Request, exc: DLPError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request.failed", error=exc.code, message=exc.message)
        response = error_response(request, exc.status_code, exc.code, exc.message)
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            # A value the database cannot hold (a NUL in a name, a number out of range):
            # the client's input, refused like any other invalid input.
            log.info("request.unstorable_value", error=str(exc.orig or exc))
            return error_response(
                request, 422, "validation_error", "a value in the request cannot be stored"
            )
        if not is_transient(exc):
            raise exc
        log.warning("request.database_unavailable", error=str(exc.orig or exc))
        return error_response(
            request, 503, "service_unavailable", "the database is unavailable; retry shortly"
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "validation_error", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400:
            # Starlette's "error parsing the body": the contract calls a bad body a 422.
            return error_response(request, 422, "validation_error", message)
        code = _HTTP_CODES.get(exc.status_code, "internal_error")
        response = error_response(request, exc.status_code, code, message)
        if exc.status_code == 405:
            # Starlette's own Allow names only the first route's methods of the path.
            response.headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return response


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    metrics = ApiMetrics()
    tracing = setup_tracing(settings, TRACING_SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rate_limiter = build_rate_limiter(settings)  # first: it refuses malformed budgets
        platform = build_platform(settings, tracing)
        if not is_up_to_date(platform.engine):
            platform.close()
            raise RuntimeError(
                "the database schema is not at the latest migration: run `dlp db upgrade`"
            )
        app.state.platform = platform
        metrics.watch(platform, settings.resolved_data_dir)
        app.state.model_server = build_model_server(platform.store, settings, metrics)
        app.state.credential_cache = SingleFlightCache(settings.serving_lookup_cache_seconds)
        app.state.rate_limiter = rate_limiter
        app.state.serving_directory = ServingDirectory(
            platform, settings.serving_lookup_cache_seconds
        )
        warming = asyncio.create_task(
            warm_production_versions(platform, app.state.model_server), name="dlp-warm"
        )
        reaper = asyncio.create_task(reap_periodically(platform), name="dlp-reaper")
        housekeeper = asyncio.create_task(
            keep_house_periodically(platform), name="dlp-housekeeping"
        )
        thresholds = gc.get_threshold()
        if settings.api_gc_threshold:
            gc.set_threshold(settings.api_gc_threshold, *thresholds[1:])
        yield
        gc.set_threshold(*thresholds)
        for task in (housekeeper, reaper, warming):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await rate_limiter.close()
        platform.close()
        tracing.shutdown()

    app = FastAPI(
        title="dlp",
        version=dlp.__version__,
        summary="Self-hosted deep-learning platform: datasets, training jobs, models, predictions.",
        lifespan=lifespan,
        telemetry=tracing.fastapi_telemetry(),
    )
    app.state.metrics = metrics
    app.state.tracing = tracing
    install_error_handlers(app)
    # Routes are matched in this order: the protocols' prediction paths come first (the
    # prediction lane answers /predict before routing).
    for router in (
        models_router,
        registry_router,
        mlflow_router,
        v2_router,
        stream_router,
        ops_router,
        auth_router,
        audit_router,
        organizations_router,
        datasets_router,
        training_router,
        tuning_router,
        batch_router,
        events_router,
        admin_router,
    ):
        app.include_router(router)
    # Outermost last: headers, request context, CORS, body limits, the prediction lane,
    # gzip (predictions never reach it), ?fields= (which reads the answers uncompressed).
    app.add_middleware(FieldSelectionMiddleware, api=app)
    install_compression(app)
    app.add_middleware(PredictionLane, api=app)
    app.add_middleware(ApiRateLimitMiddleware, api=app)
    app.add_middleware(BodyLimitMiddleware, api=app, settings=settings)
    install_cors(app, settings)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    install_security_headers(app)
    document_lane(app)
    document_errors(app)
    document_field_selection(app)
    install_web_ui(app)
    return app

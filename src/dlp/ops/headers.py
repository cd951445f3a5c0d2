"""HTTP hygiene on every answer: security headers, and CORS only for listed origins.

Pure ASGI with header lists built once, so the prediction hot path pays one list
extension per response (a ``BaseHTTPMiddleware`` would cost a task and a queue).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlp.config import Settings

# The web UI loads only its own vendored scripts and styles (no inline ones; htmx's
# injected indicator style is switched off in base.html), so 'self' is all it needs.
UI_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The interactive API docs load Swagger UI / ReDoc from a CDN with an inline script.
DOCS_CONTENT_SECURITY_POLICY = "frame-ancestors 'none'"
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"
CACHEABLE_PREFIX = "/ui/static/"
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After", "Content-Disposition"]

Headers = list[tuple[bytes, bytes]]


def _encode(headers: dict[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


class SecurityHeadersMiddleware:
    """Add nosniff, frame denial, no referrer and a CSP to every HTTP answer; HSTS over
    https; ``Cache-Control: no-store`` on everything but static files (answers carry
    tokens, keys and tenant data) unless the route set its own caching."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str]) -> None:
        self.app = app
        self.docs_paths = docs_paths
        common = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        }
        self._ui = _encode(common | {"Content-Security-Policy": UI_CONTENT_SECURITY_POLICY})
        self._docs = _encode(common | {"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY})
        self._hsts = _encode({"Strict-Transport-Security": STRICT_TRANSPORT_SECURITY})
        self._no_store = _encode({"Cache-Control": "no-store"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self._docs if path in self.docs_paths else self._ui
        if scope.get("scheme") == "https":
            extra = extra + self._hsts
        no_store = not path.startswith(CACHEABLE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: Headers = [*message.get("headers", ()), *extra]
                if no_store and not any(name == b"cache-control" for name, _ in headers):
                    headers += self._no_store
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Let the origins in ``DLP_CORS_ORIGINS`` call the API from a browser; none by default.

    Credentials are allowed, so the list is explicit: Starlette echoes only a listed
    ``Origin``, never ``*``. Install it inside the request-context middleware, so that
    preflight answers carry a request id too.
    """
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
        )


def install_security_headers(app: FastAPI) -> None:
    """Add the security headers outermost, so they reach every answer (crashes included)."""
    docs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        SecurityHeadersMiddleware, docs_paths=frozenset(p for p in docs if p is not None)
    )

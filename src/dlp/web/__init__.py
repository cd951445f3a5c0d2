"""The browser UI: Jinja2 page shells and htmx fragments over the JSON API, static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dlp.web.fragments import router as fragments_router
from dlp.web.pages import router as pages_router
from dlp.web.templating import STATIC_DIR

STATIC_PATH = "/ui/static"


def install_web_ui(app: FastAPI) -> None:
    """Serve the UI's pages at ``/`` and ``/ui/...`` and its static files at ``/ui/static``."""
    app.include_router(pages_router)
    app.include_router(fragments_router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")

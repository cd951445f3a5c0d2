"""gzip for the API's larger answers (lists, the OpenAPI document, the web UI's pages).

Starlette's pure ASGI ``GZipMiddleware``, with three choices made here:

- answers under 1 KiB go out as they are: compressing them saves less than it costs;
- event streams are never compressed (nor held back: each frame must leave at once), and
  neither are downloads: the archives, Parquet and model files are compressed already,
  and every download keeps its ``Content-Length`` so clients can show progress;
- level 6 (zlib's default) rather than Starlette's 9, which costs about twice the CPU
  for a percent or two of size on JSON.

Install it inside the prediction lane: prediction answers are small and hot, and never
pass through it.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

MINIMUM_SIZE = 1024
COMPRESS_LEVEL = 6
UNCOMPRESSED_TYPES = (
    *DEFAULT_EXCLUDED_CONTENT_TYPES,  # text/event-stream, zip, gzip, images among them
    "application/octet-stream",
    "application/vnd.apache.parquet",
    "text/csv",
)


def install_compression(app: FastAPI) -> None:
    """gzip answers of 1 KiB and more for clients that accept it."""
    app.add_middleware(
        GZipMiddleware,
        minimum_size=MINIMUM_SIZE,
        compresslevel=COMPRESS_LEVEL,
        exclude_content_types=UNCOMPRESSED_TYPES,
    )

"""A worker's own Prometheus endpoint (``dlp worker --metrics-port``).

Jobs run in Celery's pool children, separate processes. prometheus_client's multiprocess
mode has each child write its instruments (``dlp.jobs.metrics``) to files of its own in
a temporary folder of this worker (local to its host or container, even where the data
directory is shared), and the parent, the one process that lives as long as the worker,
adds them up when scraped: no channel between the processes to maintain, and counts
survive a pool child that is replaced. The parent adds its own CPU, memory and open
files, and the data directory's disk.

The socket is bound before the pool forks (a busy port stops the worker at once), but
served from a thread started once the pool is up, so no child inherits a thread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app, values
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from dlp.ops.collectors import DiskCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _QuietHandler(WSGIRequestHandler):
    """Scrapes are not worth a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


class WorkerMetricsServer:
    """Serves ``/metrics`` of this worker and its pool children."""

    def __init__(self, data_dir: Path, *, host: str, port: int) -> None:
        registry = CollectorRegistry()
        self._server = make_server(
            host, port, make_wsgi_app(registry), ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.folder = Path(tempfile.mkdtemp(prefix="dlp-worker-metrics-"))
        os.environ[MULTIPROCESS_ENV] = str(self.folder)
        # prometheus_client picks how values are kept when first imported: pick again
        # now that the folder is set, before any job instrument exists.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        MultiProcessCollector(registry, path=str(self.folder))  # type: ignore[no-untyped-call]
        ProcessCollector(registry=registry)
        registry.register(DiskCollector(data_dir))
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="dlp-metrics"
        )

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for, or the one picked for port 0)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Start answering scrapes."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and remove this worker's metric files."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


def forget_pool_process(pid: int) -> None:
    """Drop the "running now" values of a pool child that is exiting (its counts stay)."""
    folder = os.environ.get(MULTIPROCESS_ENV)
    if folder:
        mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]

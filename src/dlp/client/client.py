"""``Client``: the whole HTTP contract of a dlp server as typed Python calls."""

from __future__ import annotations

from types import TracebackType

import httpx

from dlp.client.auth import Auth
from dlp.client.batch import BatchPredictions
from dlp.client.datasets import Datasets
from dlp.client.organizations import Invitations, Organizations
from dlp.client.registry import Models, Registry
from dlp.client.schemas import QueuesOverview
from dlp.client.training import TrainingJobs
from dlp.client.transport import DEFAULT_TIMEOUT, TokenCallback, Transport
from dlp.client.tuning import Studies


class Client:
    """A dlp server at ``url``, called with an access ``token`` or an ``api_key``.

    Calls are grouped as ``auth``, ``datasets``, ``jobs``, ``models``, ``registry``,
    ``studies``, ``batch``, ``organizations`` and ``invitations``. Failures raise
    ``DLPClientError`` (or a subclass per contract error code) carrying ``error`` and
    ``request_id``. With a ``refresh_token`` the client renews an expired access token on
    its own and hands each new pair to ``on_tokens`` (to persist it).

    >>> with Client("http://127.0.0.1:8000") as dlp:
    ...     dlp.auth.login("alice", "a long password")
    ...     job = dlp.jobs.submit(dataset_id, task="classification", target="label")
    ...     job.wait()
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        api_key: str | None = None,
        refresh_token: str | None = None,
        on_tokens: TokenCallback | None = None,
        organization_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.transport = Transport(
            url,
            token=token,
            api_key=api_key,
            refresh_token=refresh_token,
            on_tokens=on_tokens,
            organization_id=organization_id,
            timeout=timeout,
            http_transport=http_transport,
        )
        self.auth = Auth(self.transport)
        self.datasets = Datasets(self.transport)
        self.jobs = TrainingJobs(self.transport)
        self.models = Models(self.transport)
        self.registry = Registry(self.transport)
        self.studies = Studies(self.transport)
        self.batch = BatchPredictions(self.transport)
        self.organizations = Organizations(self.transport)
        self.invitations = Invitations(self.transport)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.transport.url

    def health(self) -> bool:
        """True when the server answers ``GET /health``."""
        return self.transport.request("GET", "/health", authenticated=False).status_code == 200

    def queues(self) -> QueuesOverview:
        """Queue depths, workers and running jobs (the installation's superuser only)."""
        response = self.transport.request("GET", "/api/v1/admin/queues")
        return QueuesOverview.model_validate(response.json())

    def close(self) -> None:
        """Close the client's connections."""
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

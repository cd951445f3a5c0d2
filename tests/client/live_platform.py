"""One live ``dlp serve`` per test module, with a user and a trained model, for the SDK and
CLI tests. Not a test module: ``tests/client`` and ``tests/cli`` import it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dlp.client import Client, Dataset, TrainingJob
from tests.live import LiveServer, live_server
from tests.test_serve_live import PASSWORD, write_breast_cancer_csv

TRAINING_SECONDS = 180.0
EPOCHS = 2


@dataclass
class Platform:
    """A live server with alice logged in, her dataset and a succeeded training job."""

    server: LiveServer
    client: Client
    csv_path: Path
    held_out: list[dict[str, float]]
    dataset: Dataset
    job: TrainingJob

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url


@contextmanager
def running_platform(folder: Path) -> Iterator[Platform]:
    """Start a server, register and log in alice, upload breast cancer, train it once."""
    csv_path = folder / "breast_cancer.csv"
    held_out, _labels = write_breast_cancer_csv(csv_path)
    with live_server(folder / "data") as server, Client(server.url) as client:
        client.auth.register("alice", "alice@example.com", PASSWORD)
        client.auth.login("alice", PASSWORD)
        dataset = client.datasets.upload(csv_path)
        job = client.jobs.submit(
            dataset.id, task="classification", target="target", training={"epochs": EPOCHS}
        ).wait(timeout=TRAINING_SECONDS)
        assert job.status == "succeeded", f"{job}\n{server.log_tail()}"
        yield Platform(server, client, csv_path, held_out, dataset, job)

"""Model calls (list, get, predict, download, delete) and registry calls by model name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dlp.client.resource import DEFAULT_PAGE_SIZE, Destination, Resource, download, iter_pages
from dlp.client.schemas import Alias, ModelVersion, Page, Prediction, RegistryName, Traffic
from dlp.client.transport import ProgressCallback

MAX_INPUTS = 1000
"""Most inputs one predict call takes."""


class Models(Resource):
    """``client.models``: model versions by id."""

    def list(self, *, limit: int = 50, offset: int = 0) -> Page[ModelVersion]:
        """One page of the organization's model versions, newest first."""
        response = self._transport.request(
            "GET", "/api/v1/models", params={"limit": limit, "offset": offset}
        )
        return Page[ModelVersion].model_validate(response.json())

    def iter(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[ModelVersion]:
        """Every model version of the organization, page after page."""
        return iter_pages(lambda limit, offset: self.list(limit=limit, offset=offset), page_size)

    def get(self, model_id: str) -> ModelVersion:
        """One model version with lineage and metrics."""
        response = self._transport.request("GET", f"/api/v1/models/{model_id}")
        return ModelVersion.model_validate(response.json())

    def predict(self, model_id: str, inputs: Sequence[Any]) -> Prediction:
        """Predict up to 1,000 inputs: row objects (tables), strings (texts) or base64
        PNG/JPEG strings (images)."""
        response = self._transport.request(
            "POST", f"/api/v1/models/{model_id}/predict", json={"inputs": list(inputs)}
        )
        return Prediction.model_validate(response.json())

    def download(
        self,
        model_id: str,
        destination: Destination,
        *,
        format: str = "safetensors",
        progress: ProgressCallback | None = None,
    ) -> Path | None:
        """Stream the weights (``safetensors``) or an ``onnx`` / ``torchscript`` export into
        a path, a folder (under the server's file name) or a binary file object."""
        return download(
            self._transport,
            f"/api/v1/models/{model_id}/download",
            destination,
            params={"format": format},
            progress=progress,
        )

    def delete(self, model_id: str) -> None:
        """Delete a model version and its files."""
        self._transport.request("DELETE", f"/api/v1/models/{model_id}")


class Registry(Resource):
    """``client.registry``: model names, their versions, aliases and traffic split."""

    def versions(self, name: str) -> RegistryName:
        """The versions of a model name (newest first), its aliases and traffic split."""
        response = self._transport.request("GET", f"{_prefix(name)}/versions")
        return RegistryName.model_validate(response.json())

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point an alias (``production``, ``staging``, ...) at a version."""
        response = self._transport.request(
            "PUT", f"{_prefix(name)}/aliases/{quote(alias, safe='')}", json={"version": version}
        )
        return Alias.model_validate(response.json())

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        self._transport.request("DELETE", f"{_prefix(name)}/aliases/{quote(alias, safe='')}")

    def traffic(self, name: str) -> Traffic:
        """The traffic split of a model name."""
        return Traffic.model_validate(
            self._transport.request("GET", f"{_prefix(name)}/traffic").json()
        )

    def set_traffic(self, name: str, weights: dict[int, float]) -> Traffic:
        """Split registry predictions between versions by weight, e.g. ``{1: 90, 2: 10}``."""
        body = {str(version): weight for version, weight in weights.items()}
        response = self._transport.request("PUT", f"{_prefix(name)}/traffic", json=body)
        return Traffic.model_validate(response.json())

    def clear_traffic(self, name: str) -> None:
        """Remove the traffic split: predictions go to ``production`` again."""
        self._transport.request("DELETE", f"{_prefix(name)}/traffic")

    def predict(self, name: str, inputs: Sequence[Any]) -> Prediction:
        """Predict with the version the traffic split or the ``production`` alias picks."""
        response = self._transport.request(
            "POST", f"{_prefix(name)}/predict", json={"inputs": list(inputs)}
        )
        return Prediction.model_validate(response.json())


def _prefix(name: str) -> str:
    return f"/api/v1/registry/{quote(name, safe='')}"

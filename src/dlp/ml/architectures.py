"""Model families and the registry that builds one from its resolved config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dlp.ml.cnn import build_cnn
from dlp.ml.config import InputSpec, MLPConfig, ResolvedModelConfig
from dlp.ml.text_models import build_text_model


def embedding_dim(cardinality: int) -> int:
    """Width of a categorical embedding: grows slowly with the number of categories."""
    width: int = round(1.6 * float(cardinality) ** 0.56)
    return max(2, min(16, width))


class MLP(nn.Module):
    """Linear + ReLU + Dropout blocks followed by a linear output layer.

    With ``cardinalities``, the last ``len(cardinalities)`` input columns are
    category indices; each goes through its own embedding before the blocks.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        dropout: float,
        cardinalities: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.n_dense = in_features - len(cardinalities)
        self.embeddings = nn.ModuleList(
            nn.Embedding(size, embedding_dim(size)) for size in cardinalities
        )
        layers: list[nn.Module] = []
        width = self.n_dense + sum(embedding_dim(size) for size in cardinalities)
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """Logits (classification) or standardised predictions (regression)."""
        if len(self.embeddings):
            indices = features[:, self.n_dense :].long()
            parts = [features[:, : self.n_dense]]
            parts += [embed(indices[:, i]) for i, embed in enumerate(self.embeddings)]
            features = torch.cat(parts, dim=1)
        output: Tensor = self.layers(features)
        return output


def _build_mlp(config: MLPConfig, spec: InputSpec, n_outputs: int) -> nn.Module:
    return MLP(
        spec.n_features,
        config.hidden_sizes,
        n_outputs,
        config.dropout,
        spec.categorical_cardinalities,
    )


# One builder per model ``type``; a new family adds its config to the ModelConfig
# union in dlp.ml.config and its builder here.
MODEL_FAMILIES: dict[str, Callable[[Any, InputSpec, int], nn.Module]] = {
    "mlp": _build_mlp,
    "cnn": build_cnn,
    "text": build_text_model,
}


def build_model(config: ResolvedModelConfig, spec: InputSpec, n_outputs: int) -> nn.Module:
    """Instantiate the network a resolved model config describes, for inputs shaped ``spec``."""
    builder = MODEL_FAMILIES.get(config.type)
    if builder is None:
        raise ValueError(f"no model family registered for type {config.type!r}")
    return builder(config, spec, n_outputs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

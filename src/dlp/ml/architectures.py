"""Model families and the registry that builds one from its resolved config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from dlp.ml.config import MLPConfig, ResolvedModelConfig


class MLP(nn.Module):
    """Linear + ReLU + Dropout blocks followed by a linear output layer."""

    def __init__(
        self, in_features: int, hidden_sizes: Sequence[int], out_features: int, dropout: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """Logits (classification) or standardised predictions (regression)."""
        output: Tensor = self.layers(features)
        return output


def _build_mlp(config: MLPConfig, n_features: int, n_outputs: int) -> nn.Module:
    return MLP(n_features, config.hidden_sizes, n_outputs, config.dropout)


# One builder per model ``type``; a new family adds its config to the ModelConfig
# union in dlp.ml.config and its builder here.
MODEL_FAMILIES: dict[str, Callable[[Any, int, int], nn.Module]] = {"mlp": _build_mlp}


def build_model(config: ResolvedModelConfig, n_features: int, n_outputs: int) -> nn.Module:
    """Instantiate the network a resolved model config describes."""
    builder = MODEL_FAMILIES.get(config.type)
    if builder is None:
        raise ValueError(f"no model family registered for type {config.type!r}")
    return builder(config, n_features, n_outputs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

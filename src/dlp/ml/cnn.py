"""The ``cnn`` model family: a small ResNet for images (``N x C x S x S`` float32 in)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dlp.ml.config import CNNConfig, InputSpec


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with a shortcut (a 1x1 conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # A zero last scale makes each block start as the identity: stabler early training.
        nn.init.zeros_(self.bn2.weight)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, features: Tensor) -> Tensor:
        """The block's output, same resolution or halved (stride 2)."""
        out = self.relu(self.bn1(self.conv1(features)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + self.shortcut(features))
        return result


class CNN(nn.Module):
    """Stem conv, residual stages (each after the first halves the resolution), pool, linear."""

    def __init__(
        self,
        in_channels: int,
        stage_channels: Sequence[int],
        blocks_per_stage: int,
        n_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        width = stage_channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for stage, channels in enumerate(stage_channels):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(ResidualBlock(width, channels, stride))
                width = channels
        self.stages = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        """Logits for a batch of normalised images."""
        features = self.stages(self.stem(images))
        pooled = features.mean(dim=(2, 3))
        logits: Tensor = self.head(self.dropout(pooled))
        return logits


def build_cnn(config: CNNConfig, spec: InputSpec, n_outputs: int) -> nn.Module:
    """The CNN a config describes, for ``spec.channels``-channel images."""
    if spec.channels not in (1, 3):
        raise ValueError(f"the cnn family takes 1- or 3-channel images, not {spec.channels}")
    return CNN(spec.channels, config.channels, config.blocks_per_stage, n_outputs, config.dropout)

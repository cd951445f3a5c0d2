"""The image encoder: encoded PNG/JPEG in, normalised ``N x C x S x S`` float32 out.

Fitted on the training split: the channel count (1 when every training image is
greyscale, else 3), the square side ``S`` the network takes, and per-channel mean
and std of the training pixels (on a 0..1 scale). Images are stretched to the
square (the aspect ratio is not kept, nothing is cropped), bilinear.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import numpy as np
import pyarrow as pa
import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from dlp.errors import ValidationError
from dlp.ml.config import InputSpec
from dlp.ml.encoders import parse_state
from dlp.ml.image_archive import MAX_IMAGE_PIXELS, decode_image, image_pixels

STATE_VERSION: Final = 1
CHUNK_ELEMENTS = 1 << 22
"""Pixels converted to float per step when normalising or computing statistics."""
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class ImageEncoderState(BaseModel):
    """The JSON form of a fitted ``ImageEncoder``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["image"] = "image"
    version: Literal[1] = STATE_VERSION
    channels: Literal[1, 3]
    image_size: int = Field(ge=8, le=512)
    mean: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]]
    std: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    resize: Literal["stretch"] = "stretch"

    @pydantic.model_validator(mode="after")
    def _one_statistic_per_channel(self) -> ImageEncoderState:
        if not len(self.mean) == len(self.std) == self.channels:
            raise ValueError("mean and std need one value per channel")
        return self


class ImageEncoder:
    """Decodes, converts, resizes and normalises images for the ``cnn`` family."""

    def __init__(self, state: ImageEncoderState) -> None:
        self._state = state
        shape = (1, state.channels, 1, 1)
        std = torch.tensor(state.std, dtype=torch.float32).view(shape)
        # x / 255 then (x - mean) / std, as one multiply-add per pixel.
        self._scale = 1.0 / (255.0 * std)
        self._shift = -torch.tensor(state.mean, dtype=torch.float32).view(shape) / std

    @classmethod
    def fit(cls, pixels: Tensor, rows: Tensor, *, image_size: int) -> ImageEncoder:
        """Per-channel mean and std of ``pixels[rows]`` (uint8 ``N x C x S x S``)."""
        channels = int(pixels.shape[1])
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        for block in _row_blocks(rows, pixels):
            values = pixels[block].to(torch.float64)
            total += values.sum(dim=(0, 2, 3))
            squares += values.square().sum(dim=(0, 2, 3))
        count = max(len(rows), 1) * pixels.shape[2] * pixels.shape[3]
        means = (total / count / 255.0).clamp(0.0, 1.0).tolist()
        variances = (squares / count / 255.0**2).tolist()
        stds = [math.sqrt(max(v - m * m, 0.0)) for m, v in zip(means, variances, strict=True)]
        state = ImageEncoderState(
            channels=1 if channels == 1 else 3,
            image_size=image_size,
            mean=means,
            std=[s if s > 1e-6 else 1.0 for s in stds],
        )
        return cls(state)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ImageEncoder:
        """Rebuild a fitted encoder from ``state_dict()``; ValidationError if corrupt."""
        return cls(parse_state(ImageEncoderState, state, "image preprocessing"))

    @property
    def state(self) -> ImageEncoderState:
        """The validated state model."""
        return self._state

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able state of this encoder."""
        return self._state.model_dump(mode="json")

    @property
    def input_spec(self) -> InputSpec:
        """Channels and square side, for ``build_model``."""
        return InputSpec(channels=self._state.channels, image_size=self._state.image_size)

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """One input, ``image``: a base64-encoded PNG or JPEG."""
        return [{"name": "image", "dtype": "image"}]

    def pixels(self, data: bytes, *, name: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """One encoded image as the ``C x S x S`` uint8 array the network is trained on."""
        channels, size = self._state.channels, self._state.image_size
        decoded = decode_image(
            data,
            name=name,
            max_pixels=MAX_IMAGE_PIXELS,
            draft=("L" if channels == 1 else "RGB", size),
        )
        with decoded.picture as picture:
            return image_pixels(picture, channels=channels, size=size)

    def encode_inputs(self, inputs: Sequence[Any]) -> Tensor:
        """Base64 PNG/JPEG strings (or raw encoded bytes) to normalised float32 images."""
        return self._encode(inputs, [f"inputs[{index}]" for index in range(len(inputs))])

    def encode_table(self, table: pa.Table) -> Tensor:
        """The ``image`` column's encoded images, each named by the ``path`` column if any."""
        if "image" not in table.column_names:
            raise ValidationError("the data is missing column 'image'")
        images = table.column("image").to_pylist()
        names = (
            table.column("path").to_pylist()
            if "path" in table.column_names
            else [f"row {index}" for index in range(len(images))]
        )
        return self._encode(images, names)

    def _encode(self, items: Sequence[Any], names: Sequence[str]) -> Tensor:
        size = self._state.image_size
        batch = np.empty((len(items), self._state.channels, size, size), dtype=np.uint8)
        for index, (item, name) in enumerate(zip(items, names, strict=True)):
            batch[index] = self.pixels(_encoded_bytes(item, name), name=name)
        return self.normalise(torch.from_numpy(batch))

    def normalise(self, pixels: Tensor, rows: Tensor | None = None) -> Tensor:
        """Float32 network input of uint8 ``pixels`` (only ``rows`` when given), in blocks."""
        if rows is None:
            rows = torch.arange(pixels.shape[0])
        out = torch.empty((len(rows), *pixels.shape[1:]), dtype=torch.float32)
        start = 0
        for block in _row_blocks(rows, pixels):
            values = pixels[block].to(torch.float32).mul_(self._scale).add_(self._shift)
            out[start : start + len(block)] = values
            start += len(block)
        return out


def _row_blocks(rows: Tensor, pixels: Tensor) -> list[Tensor]:
    per_row = max(int(np.prod(pixels.shape[1:])), 1)
    step = max(CHUNK_ELEMENTS // per_row, 1)
    return [rows[start : start + step] for start in range(0, len(rows), step)]


def _encoded_bytes(item: Any, name: str) -> bytes:
    """The image bytes of one input: base64 text (a data URL is fine) or raw bytes."""
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if not isinstance(item, str):
        raise ValidationError(
            f"{name} must be a base64-encoded PNG or JPEG string, not {type(item).__name__}"
        )
    text = _WHITESPACE.sub("", _DATA_URL.sub("", item, count=1))
    if not text:
        raise ValidationError(f"{name} is empty; send a base64-encoded PNG or JPEG")
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(f"{name} is not valid base64: {exc}") from exc

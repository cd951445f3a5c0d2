"""Image classification: train the ``cnn`` family on a ``.zip`` of one folder per class.

Memory: images are decoded one at a time straight into one preallocated uint8
tensor (``N x C x S x S`` bytes). The two splits are then normalised into float32
(4 bytes per value) block by block and the uint8 tensor is dropped, so the peak
before training is about 5 bytes per value and training holds 4, plus the
training loop's own shuffled copy of the training split (about 3.2 more at the
default 20% validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import torch
from torch import Tensor

from dlp.errors import ValidationError
from dlp.ml.artifact import MIN_ROWS, RunOptions, TrainedModel, package_model
from dlp.ml.config import CNNConfig, InputSpec, ModelConfig, TrainingConfig, resolve_model_config
from dlp.ml.image_archive import (
    GREY_MODES,
    ArchiveImage,
    ArchiveLimits,
    ImageArchive,
    image_pixels,
    open_image_archive,
    suggested_image_size,
)
from dlp.ml.image_encoder import ImageEncoder
from dlp.ml.objectives import ClassificationObjective
from dlp.ml.split import IndexArray, split_train_validation
from dlp.ml.targets import ClassificationTarget
from dlp.ml.trainer import TensorSplit, TrainingCallback, TrainingCancelled

__all__ = ["ImageData", "ImageEncoder", "load_image_archive", "train_images"]

LABEL_NAME = "class"
CANCEL_CHECK_EVERY = 256
"""Images decoded between two polls of ``TrainingCallback.should_stop``."""


@dataclass(frozen=True)
class ImageData:
    """A decoded archive: uint8 ``N x C x S x S`` pixels and each image's class folder."""

    pixels: Tensor
    labels: list[str]


def load_image_archive(
    file: BinaryIO,
    size: int,
    *,
    channels: int | None = None,
    limits: ArchiveLimits | None = None,
) -> ImageData:
    """Decode every image of an archive to ``size x size`` (channels: 1 if all grey, else 3)."""
    with open_image_archive(file, limits or ArchiveLimits()) as archive:
        if channels is None:
            channels = _channels([archive.probe(image)[0] for image in archive.images])
        pixels = _decode_all(archive, archive.images, channels=channels, size=size)
        return ImageData(pixels=pixels, labels=[image.label for image in archive.images])


def train_images(
    file: BinaryIO,
    *,
    model: ModelConfig,
    training: TrainingConfig,
    callback: TrainingCallback | None = None,
    limits: ArchiveLimits | None = None,
    run: RunOptions | None = None,
) -> TrainedModel:
    """Train a classifier of an archive's class folders; labels are the folder names.

    ``auto`` picks a CNN whose input side is the training images' median shorter side
    (clamped to 8..64, a multiple of 4). Raises ValidationError when the archive
    cannot serve the request and ``TrainingCancelled`` when the callback asks to stop.
    """
    with open_image_archive(file, limits or ArchiveLimits()) as archive:
        images = archive.images
        if len(images) < MIN_ROWS:
            raise ValidationError(
                f"training needs at least {MIN_ROWS} images; the archive has {len(images)}"
            )
        target, codes, train_rows, val_rows = _split(images, training)
        headers = [archive.probe(images[row]) for row in train_rows]
        channels = _channels([mode for mode, _ in headers])
        size = (
            model.input_size
            if isinstance(model, CNNConfig)
            else suggested_image_size([header_size for _, header_size in headers])
        )
        resolved = resolve_model_config(
            model,
            data_kind="image",
            spec=InputSpec(channels=channels, image_size=size),
            n_rows=len(train_rows),
        )
        pixels = _decode_all(archive, images, channels=channels, size=size, callback=callback)
    train_index, val_index = torch.from_numpy(train_rows), torch.from_numpy(val_rows)
    encoder = ImageEncoder.fit(pixels, train_index, image_size=size)
    train_features = encoder.normalise(pixels, train_index)
    val_features = encoder.normalise(pixels, val_index)
    del pixels
    targets = torch.from_numpy(codes)
    return package_model(
        data_kind="image",
        task="classification",
        model=resolved,
        training=training,
        encoder=encoder,
        target=target,
        objective=ClassificationObjective(),
        train=TensorSplit(train_features, targets[train_index]),
        validation=TensorSplit(val_features, targets[val_index]),
        callback=callback,
        run=run,
    )


def validation_images(
    file: BinaryIO, training: TrainingConfig, *, limits: ArchiveLimits, max_images: int
) -> tuple[list[bytes], list[str]]:
    """The encoded images of the validation split training drew from this archive (the
    first ``max_images`` of them), and their class folders."""
    with open_image_archive(file, limits) as archive:
        images = archive.images
        _, _, _, val_rows = _split(images, training)
        chosen = [images[row] for row in val_rows[:max_images]]
        return [archive.read(image) for image in chosen], [image.label for image in chosen]


def _split(
    images: Sequence[ArchiveImage], training: TrainingConfig
) -> tuple[ClassificationTarget, npt.NDArray[np.int64], IndexArray, IndexArray]:
    """The classes, each image's class index, and the seeded, stratified train and
    validation rows."""
    labels = pa.chunked_array([pa.array([image.label for image in images], type=pa.string())])
    target = ClassificationTarget.fit(labels, name=LABEL_NAME)
    codes = target.encode(labels, name=LABEL_NAME)
    train_rows, val_rows = split_train_validation(
        len(images), fraction=training.validation_fraction, seed=training.seed, strata=codes
    )
    return target, codes, train_rows, val_rows


def _channels(modes: Sequence[str]) -> int:
    return 1 if all(mode in GREY_MODES for mode in modes) else 3


def _decode_all(
    archive: ImageArchive,
    images: Sequence[ArchiveImage],
    *,
    channels: int,
    size: int,
    callback: TrainingCallback | None = None,
) -> Tensor:
    """Every image decoded straight into one preallocated uint8 tensor."""
    pixels = torch.empty((len(images), channels, size, size), dtype=torch.uint8)
    out = pixels.numpy()
    draft = ("L" if channels == 1 else "RGB", size)
    for index, image in enumerate(images):
        if callback is not None and index % CANCEL_CHECK_EVERY == 0 and callback.should_stop():
            raise TrainingCancelled(0)
        with archive.decode(image, draft=draft).picture as picture:
            out[index] = image_pixels(picture, channels=channels, size=size)
    return pixels

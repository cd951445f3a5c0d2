"""Image archives for tests: scikit-learn's digits as 8x8 PNGs, one folder per digit."""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def encode_image(pixels: np.ndarray, image_format: str = "PNG", **options) -> bytes:
    """Encoded bytes of a uint8 ``H x W`` (grey) or ``H x W x 3`` (RGB) array."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def as_base64(data: bytes) -> str:
    """The base64 text the predict endpoint takes for an image."""
    return base64.b64encode(data).decode("ascii")


def zip_bytes(files: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding ``files`` (entry name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@cache
def digit_pixels() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as uint8 ``N x 8 x 8`` (0..16 scaled to 0..255) and int labels."""
    bunch = load_digits()
    pixels = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    return pixels, bunch.target.astype(np.int64)


@dataclass(frozen=True)
class DigitsSplit:
    """A training archive of digits and held-out PNGs with their labels (folder names)."""

    train_zip: bytes
    test_pngs: list[bytes]
    test_labels: list[str]
    test_pixels: np.ndarray


def digits_archive(
    *, test_fraction: float = 0.2, seed: int = 0, top_folder: str | None = None
) -> DigitsSplit:
    """Digits zipped as ``<digit>/<index>.png`` (optionally inside ``top_folder``).

    A stratified, seeded ``test_fraction`` of the images is held out of the zip.
    """
    pixels, labels = digit_pixels()
    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    prefix = f"{top_folder}/" if top_folder else ""
    files = {f"{prefix}{labels[i]}/{i:04d}.png": encode_image(pixels[i]) for i in sorted(train)}
    return DigitsSplit(
        train_zip=zip_bytes(files),
        test_pngs=[encode_image(pixels[i]) for i in test],
        test_labels=[str(labels[i]) for i in test],
        test_pixels=pixels[test],
    )

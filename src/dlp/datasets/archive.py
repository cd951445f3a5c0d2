"""Validate and profile an uploaded image archive (a ``.zip`` of one folder per class).

Every image is decoded once, to prove it decodes, and dropped before the next:
memory stays at one image however large the archive. No torch is imported here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from statistics import median_low
from typing import Any, BinaryIO

from dlp.ml.image_archive import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    ArchiveLimits,
    open_image_archive,
)

PROFILE_DRAFT_SIDE = 64
"""JPEGs are decoded at a reduced scale (still every byte of them) when this allows."""


def profile_image_archive(
    open_file: Callable[[], BinaryIO],
    *,
    max_entries: int,
    max_uncompressed_bytes: int,
    max_compression_ratio: float,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> dict[str, Any]:
    """Check an image archive and describe it: classes, counts, image sizes and modes.

    Raises ValidationError (422) for anything malformed or unsafe, and
    PayloadTooLargeError (413) for archives or images over the limits; in both
    cases the message names the entry at fault.
    """
    limits = ArchiveLimits(
        max_entries=max_entries,
        max_uncompressed_bytes=max_uncompressed_bytes,
        max_compression_ratio=max_compression_ratio,
        max_image_pixels=max_image_pixels,
        max_image_bytes=max_image_bytes,
    )
    class_counts: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    widths: list[int] = []
    heights: list[int] = []
    with open_file() as handle, open_image_archive(handle, limits) as archive:
        for image in archive.images:
            decoded = archive.decode(image, draft=(None, PROFILE_DRAFT_SIDE))
            decoded.picture.close()
            class_counts[image.label] += 1
            modes[decoded.mode] += 1
            widths.append(decoded.size[0])
            heights.append(decoded.size[1])
        classes = archive.classes
    return {
        "classes": classes,
        "n_images": len(widths),
        "class_counts": {name: class_counts[name] for name in classes},
        "image_sizes": {
            "min": [min(widths), min(heights)],
            "max": [max(widths), max(heights)],
            "median": [median_low(widths), median_low(heights)],
        },
        "modes": dict(sorted(modes.items())),
    }

"""Read image archives safely: a ``.zip`` of one folder per class, decoded with Pillow.

No torch here: dataset profiling (on the API's upload path) and training share it.
An archive is checked before anything is inflated: entry count, path safety, entry
types, compression method, declared sizes and compression ratios. While reading,
actual bytes are counted too, so a header that lies about sizes gets nowhere.
Each image is checked against a pixel limit before Pillow decodes it.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO, NamedTuple, cast

import numpy as np
import numpy.typing as npt
from PIL import Image

from dlp.errors import PayloadTooLargeError, ValidationError
from dlp.ml.zip_directory import count_entries

MAX_IMAGE_PIXELS = 40_000_000
"""Largest image (width x height) decoded; about 7,300 x 5,500."""
MAX_IMAGE_BYTES = 256 * 2**20
"""Largest encoded image read into memory (an uncompressed 40 MP RGBA bitmap is 160 MB)."""
RATIO_CHECK_MIN_BYTES = 1 << 16
"""Entries (and archives) smaller than this inflate too little for their ratio to matter."""
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
)
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
"""Pillow modes that carry no colour: a dataset of only these trains on one channel."""
JUNK_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
"""Folders and files that archivers add on their own; skipped like dotfiles."""
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold; the defaults match the platform's default settings."""

    max_entries: int = 100_000
    max_uncompressed_bytes: int = 4096 * 2**20
    max_compression_ratio: float = 100.0
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_image_bytes: int = MAX_IMAGE_BYTES


@dataclass(frozen=True)
class ArchiveImage:
    """One image entry and the class folder it sits in."""

    info: zipfile.ZipInfo
    label: str

    @property
    def name(self) -> str:
        """The entry's path inside the archive."""
        return self.info.filename


class ImageArchive:
    """A checked archive: its image entries, class names, and bounded reads of entries."""

    def __init__(self, archive: zipfile.ZipFile, limits: ArchiveLimits) -> None:
        self._zip = archive
        self._limits = limits
        self.images = _class_images(archive.infolist())
        self.classes = sorted({image.label for image in self.images})

    def read(self, image: ArchiveImage) -> bytes:
        """The entry's bytes; more than its declared size is refused as it inflates.

        Declared sizes were checked against the limits on open, so counting each
        entry against its own declared size bounds the whole archive too.
        """
        info = image.info
        if info.file_size > self._limits.max_image_bytes:
            raise PayloadTooLargeError(
                f"the archive entry {image.name!r} is {info.file_size} bytes, over the "
                f"per-image limit of {self._limits.max_image_bytes}"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            with self._zip.open(info) as entry:
                while chunk := entry.read(_READ_CHUNK):
                    size += len(chunk)
                    if size > info.file_size:
                        raise PayloadTooLargeError(
                            f"the archive entry {image.name!r} inflates past its declared size"
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValidationError(f"the archive entry {image.name!r} is corrupt: {exc}") from exc
        return b"".join(chunks)

    def probe(self, image: ArchiveImage) -> tuple[str, tuple[int, int]]:
        """Mode and (width, height) from the image's header, inflating only the header."""
        try:
            with (
                self._zip.open(image.info) as entry,
                Image.open(entry, formats=IMAGE_FORMATS) as picture,
            ):
                return picture.mode, picture.size
        except Exception as exc:  # Pillow raises many unrelated types on bad bytes
            raise _not_an_image(_entry(image), exc) from exc

    def decode(
        self, image: ArchiveImage, *, draft: tuple[str | None, int] | None = None
    ) -> DecodedImage:
        """The decoded image (see ``decode_image``)."""
        return decode_image(
            self.read(image),
            name=_entry(image),
            max_pixels=self._limits.max_image_pixels,
            draft=draft,
        )


@contextmanager
def open_image_archive(file: BinaryIO, limits: ArchiveLimits) -> Iterator[ImageArchive]:
    """Check an uploaded ``.zip`` of class folders and yield it ready to read."""
    with _seekable(file) as handle:
        counted = count_entries(handle, stop_after=limits.max_entries)
        if counted is not None and counted > limits.max_entries:
            raise PayloadTooLargeError(f"the archive holds more than {limits.max_entries} entries")
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValidationError(f"the file is not a valid .zip archive: {exc}") from exc
        with archive:
            infos = archive.infolist()
            if len(infos) > limits.max_entries:
                raise PayloadTooLargeError(
                    f"the archive holds more than {limits.max_entries} entries"
                )
            handle.seek(0, 2)
            _check_entries(infos, limits, archive_size=handle.tell())
            yield ImageArchive(archive, limits)


class DecodedImage(NamedTuple):
    """A decoded image with the mode and size its file declares (before any draft)."""

    picture: Image.Image
    mode: str
    size: tuple[int, int]


def decode_image(
    data: bytes, *, name: str, max_pixels: int, draft: tuple[str | None, int] | None = None
) -> DecodedImage:
    """Decode encoded image bytes with Pillow, refusing huge or broken images.

    ``draft`` (mode, side) lets JPEG decoding scale down on the fly to at least that
    side, which is much faster when the image will be shrunk anyway.
    """
    try:
        picture = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLargeError(f"{name} has too many pixels to decode") from exc
    except Exception as exc:  # Pillow raises many unrelated types on bad bytes
        raise _not_an_image(name, exc) from exc
    width, height = picture.size
    if width * height > max_pixels:
        raise PayloadTooLargeError(
            f"{name} is {width}x{height} pixels, over the limit of {max_pixels} pixels"
        )
    if width < 1 or height < 1:
        raise ValidationError(f"{name} is an empty image")
    mode = picture.mode
    if draft is not None:
        picture.draft(draft[0], (draft[1], draft[1]))
    try:
        picture.load()
    except Exception as exc:  # Pillow raises many unrelated types on bad bytes
        raise ValidationError(f"{name} does not decode as an image: {exc}") from exc
    return DecodedImage(picture, mode, (width, height))


def image_pixels(picture: Image.Image, *, channels: int, size: int) -> npt.NDArray[np.uint8]:
    """A ``channels x size x size`` uint8 array: mode converted, then stretched to a square.

    The aspect ratio is not kept (the whole image is resized, bilinear), so nothing
    is cropped away; alpha is dropped and 16-bit grey is scaled to 8 bits.
    """
    target = "L" if channels == 1 else "RGB"
    if picture.mode in {"I", "F"} or picture.mode.startswith("I;16"):
        # Pillow's own conversion clips high-bit-depth grey instead of scaling it.
        scale = 1.0 if picture.mode == "F" else 1.0 / 257.0
        values = np.asarray(picture, dtype=np.float32) * scale
        picture = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    elif picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode != target:
        picture = picture.convert(target)
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(picture, dtype=np.uint8)
    if channels == 1:
        return array[np.newaxis]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def suggested_image_size(sizes: list[tuple[int, int]], *, low: int = 8, high: int = 64) -> int:
    """Side for ``auto``: the median shorter side, clamped to [low, high], a multiple of 4."""
    median = float(np.median([min(width, height) for width, height in sizes])) if sizes else 32
    return int(min(max(round(median / 4) * 4, low), high))


@contextmanager
def _seekable(file: BinaryIO) -> Iterator[BinaryIO]:
    """The file itself when it can seek, else a temporary copy (zip needs to seek)."""
    if file.seekable():
        yield file
        return
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(file, copy, _READ_CHUNK)
        copy.seek(0)
        yield cast(BinaryIO, copy)


def _check_entries(infos: list[zipfile.ZipInfo], limits: ArchiveLimits, archive_size: int) -> None:
    """Refuse unsafe names, links, unsupported entries and declared sizes over the limits."""
    declared = 0
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        _check_name(name)
        if name in seen:
            raise ValidationError(f"the archive holds {name!r} twice")
        seen.add(name)
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type == stat.S_IFLNK:
            raise ValidationError(f"the archive entry {name!r} is a symbolic link")
        if file_type not in {0, stat.S_IFREG, stat.S_IFDIR}:
            raise ValidationError(f"the archive entry {name!r} is not a regular file")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise ValidationError(f"the archive entry {name!r} is encrypted")
        if info.compress_type not in {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}:
            raise ValidationError(
                f"the archive entry {name!r} uses an unsupported compression method; "
                "store or deflate entries (the usual .zip compression)"
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES and info.file_size > (
            limits.max_compression_ratio * max(info.compress_size, 1)
        ):
            raise PayloadTooLargeError(
                f"the archive entry {name!r} is compressed more than "
                f"{limits.max_compression_ratio:g} to 1 (a zip bomb?)"
            )
        declared += info.file_size
    if declared > limits.max_uncompressed_bytes:
        raise PayloadTooLargeError(
            f"the archive inflates to {declared} bytes, more than the limit of "
            f"{limits.max_uncompressed_bytes}"
        )
    if declared > RATIO_CHECK_MIN_BYTES and declared > limits.max_compression_ratio * max(
        archive_size, 1
    ):
        raise PayloadTooLargeError(
            f"the archive is compressed more than {limits.max_compression_ratio:g} to 1 "
            "(a zip bomb?)"
        )


def _check_name(name: str) -> None:
    if "\\" in name:
        raise ValidationError(f"the archive entry {name!r} has a backslash in its path")
    if name.startswith("/") or _DRIVE.match(name):
        raise ValidationError(f"the archive entry {name!r} has an absolute path")
    parts = name.rstrip("/").split("/")
    if any(part in {"", ".", ".."} for part in parts) or "\x00" in name:
        raise ValidationError(f"the archive entry {name!r} has an unsafe path")


def _class_images(infos: list[zipfile.ZipInfo]) -> list[ArchiveImage]:
    """Image entries labelled by class folder; one wrapping top folder is allowed."""
    files = [
        (info, PurePosixPath(info.filename).parts)
        for info in infos
        if not info.is_dir() and not _is_junk(info.filename)
    ]
    if not files:
        raise ValidationError("the archive holds no images")
    tops = {parts[0] for _, parts in files}
    if len(tops) == 1 and all(len(parts) > 2 for _, parts in files):
        files = [(info, parts[1:]) for info, parts in files]
    images: list[ArchiveImage] = []
    for info, parts in files:
        if len(parts) < 2:
            raise ValidationError(
                f"{info.filename!r} is outside any class folder; put each image in a "
                "folder named after its class (cat/001.png)"
            )
        if len(parts) > 2:
            raise ValidationError(
                f"{info.filename!r} is nested too deep; lay the archive out as "
                "<class>/<image> (one folder per class, optionally inside one top folder)"
            )
        if PurePosixPath(parts[1]).suffix.lower() not in IMAGE_SUFFIXES:
            raise ValidationError(
                f"{info.filename!r} is not an image file; class folders may hold only "
                f"{', '.join(sorted(IMAGE_SUFFIXES))} files"
            )
        images.append(ArchiveImage(info=info, label=parts[0]))
    n_classes = len({image.label for image in images})
    if n_classes < 2:
        raise ValidationError(
            f"the archive has {n_classes} class folder; classification needs at least 2"
        )
    return images


def _is_junk(name: str) -> bool:
    return any(part.startswith(".") or part in JUNK_NAMES for part in name.split("/"))


def _not_an_image(name: str, exc: Exception) -> ValidationError:
    detail = str(exc) or type(exc).__name__
    if len(detail) > 200:
        detail = detail[:200] + " ..."
    return ValidationError(f"{name} is not a readable PNG/JPEG/GIF/BMP/WEBP/TIFF image: {detail}")


def _entry(image: ArchiveImage) -> str:
    return f"the archive entry {image.name!r}"

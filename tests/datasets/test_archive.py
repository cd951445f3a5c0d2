"""Image archives: hostile zips are refused with the right error; good ones are profiled."""

from __future__ import annotations

import io
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from typing import BinaryIO

import numpy as np
import pytest

from dlp.datasets.archive import profile_image_archive
from dlp.errors import PayloadTooLargeError, ValidationError
from dlp.ml.zip_directory import count_entries
from tests.images import digits_archive, encode_image, zip_bytes

GREY = encode_image(np.arange(48, dtype=np.uint8).reshape(6, 8))
RGB = encode_image(np.full((10, 4, 3), 120, dtype=np.uint8), "JPEG")
TWO_CLASSES = {"cat/1.png": GREY, "dog/2.jpg": RGB}
LIMITS = {"max_entries": 100, "max_uncompressed_bytes": 10**9, "max_compression_ratio": 100.0}


def _profile(data: bytes, **overrides):
    limits = {**LIMITS, **overrides}
    return profile_image_archive(lambda: io.BytesIO(data), **limits)


def _with(files: dict[str, bytes]) -> bytes:
    return zip_bytes({**TWO_CLASSES, **files})


def _zeros_entry(name: str, n_bytes: int) -> bytes:
    """A zip of the two good images plus ``n_bytes`` zeros deflated, written in 1 MiB steps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in TWO_CLASSES.items():
            archive.writestr(entry, data)
        with archive.open(name, "w") as handle:
            chunk = bytes(1 << 20)
            for _ in range(n_bytes >> 20):
                handle.write(chunk)
    return buffer.getvalue()


def _set_declared_size(data: bytes, name: str, size: int) -> bytes:
    """Make both headers of entry ``name`` claim ``size`` uncompressed bytes."""
    patched = bytearray(data)
    encoded = name.encode()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    struct.pack_into("<L", patched, info.header_offset + 22, size)  # local header
    at = 0
    while (at := patched.find(b"PK\x01\x02", at + 1)) >= 0:
        length = struct.unpack_from("<H", patched, at + 28)[0]
        if patched[at + 46 : at + 46 + length] == encoded:
            struct.pack_into("<L", patched, at + 24, size)  # central directory
            return bytes(patched)
    raise AssertionError(f"{name} not found")


def test_a_good_archive_is_profiled() -> None:
    data = zip_bytes(
        {
            "pets/": b"",
            "pets/cat/": b"",
            "pets/cat/1.png": GREY,
            "pets/cat/2.png": GREY,
            "pets/cat/.DS_Store": b"junk",
            "pets/dog/a.jpg": RGB,
            "pets/.hidden/x.txt": b"junk",
            "__MACOSX/pets/cat/._1.png": b"junk",
        }
    )
    profile = _profile(data)
    assert profile == {
        "classes": ["cat", "dog"],
        "n_images": 3,
        "class_counts": {"cat": 2, "dog": 1},
        "image_sizes": {"min": [4, 6], "max": [8, 10], "median": [8, 6]},
        "modes": {"L": 2, "RGB": 1},
    }


def test_digits_archive_profiles_as_ten_classes() -> None:
    profile = _profile(digits_archive().train_zip, max_entries=10_000)
    assert profile["classes"] == [str(d) for d in range(10)]
    assert profile["n_images"] == sum(profile["class_counts"].values()) == 1437
    assert profile["image_sizes"]["median"] == [8, 8] and profile["modes"] == {"L": 1437}


@pytest.mark.parametrize(
    "data",
    [b"", b"just some text, not a zip", GREY, zip_bytes(TWO_CLASSES)[:-30]],
    ids=["empty", "text", "png", "truncated"],
)
def test_not_a_zip_is_refused(data: bytes) -> None:
    with pytest.raises(ValidationError, match=r"not a valid \.zip"):
        _profile(data)


def test_corrupt_entry_is_refused_by_name() -> None:
    data = bytearray(zip_bytes(TWO_CLASSES, compression=zipfile.ZIP_STORED))
    at = data.find(b"IDAT")
    data[at + 8 : at + 20] = bytes(12)  # damage the pixel data, keep the zip structure
    with pytest.raises(ValidationError, match=r"'cat/1.png'"):
        _profile(bytes(data))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.png", "unsafe path"),
        ("cat/../../evil.png", "unsafe path"),
        ("cat/./x.png", "unsafe path"),
        ("/abs.png", "absolute path"),
        ("C:/windows/x.png", "absolute path"),
        ("cat\\x.png", "backslash"),
    ],
)
def test_unsafe_paths_are_refused(name: str, problem: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in TWO_CLASSES.items():
            archive.writestr(entry, data)
        # zipfile would sanitise these names on the way in; write them raw.
        info = zipfile.ZipInfo("placeholder")
        info.filename = name
        archive.writestr(info, GREY)
    with pytest.raises(ValidationError, match=problem):
        _profile(buffer.getvalue())


def test_symlinks_are_refused() -> None:
    link = zipfile.ZipInfo("cat/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in TWO_CLASSES.items():
            archive.writestr(entry, data)
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ValidationError, match=r"'cat/link.png' is a symbolic link"):
        _profile(buffer.getvalue())


def test_too_many_entries() -> None:
    files = {f"cat/{i}.png": GREY for i in range(6)} | {"dog/1.png": GREY}
    with pytest.raises(PayloadTooLargeError, match=r"more than 5 entries"):
        _profile(zip_bytes(files), max_entries=5)
    assert _profile(zip_bytes(files), max_entries=7)["n_images"] == 7


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes each ``ZipExtFile.read`` call hands out while a test runs."""
    sizes: list[int] = []
    original = zipfile.ZipExtFile.read

    def counting_read(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        data = original(self, n)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    return sizes


def test_zip_bomb_is_refused_before_inflating(inflated: list[int]) -> None:
    data = _zeros_entry("cat/bomb.png", 200 << 20)
    assert len(data) < 1 << 20  # 200 MB of zeros deflate to about 200 KB
    with pytest.raises(PayloadTooLargeError, match=r"'cat/bomb.png' is compressed more than 100"):
        _profile(data)
    with pytest.raises(PayloadTooLargeError, match=r"inflates to .* more than the limit"):
        _profile(data, max_compression_ratio=10_000.0, max_uncompressed_bytes=100 << 20)
    assert sum(inflated) == 0  # refused from the central directory alone


def test_a_lying_declared_size_gets_nowhere(inflated: list[int]) -> None:
    data = _set_declared_size(_zeros_entry("cat/bomb.png", 64 << 20), "cat/bomb.png", 1000)
    with pytest.raises(ValidationError, match=r"'cat/bomb.png'"):
        _profile(data)
    assert sum(inflated) < 1 << 16  # nowhere near the 64 MB the entry really holds


def test_many_small_compressible_entries_trip_the_archive_ratio() -> None:
    files = {f"cat/{i}.png": bytes(60_000) for i in range(40)}
    with pytest.raises(PayloadTooLargeError, match=r"archive is compressed more than 100"):
        _profile(zip_bytes(files))


def test_images_that_do_not_decode_are_named() -> None:
    broken = GREY[:16] + b"garbage" * 10
    with pytest.raises(ValidationError, match=r"'dog/broken.png' is not a readable"):
        _profile(_with({"dog/broken.png": broken}))


def test_truncated_image_is_refused() -> None:
    big = encode_image(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(ValidationError, match=r"'dog/cut.png' does not decode"):
        _profile(_with({"dog/cut.png": big[: len(big) // 2]}))


def test_non_images_in_class_folders_are_named() -> None:
    with pytest.raises(ValidationError, match=r"'cat/notes.txt' is not an image file"):
        _profile(_with({"cat/notes.txt": b"hello"}))


def test_images_outside_class_folders_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"'loose.png' is outside any class folder"):
        _profile(_with({"loose.png": GREY}))
    with pytest.raises(ValidationError, match=r"nested too deep"):
        _profile(_with({"cat/more/x.png": GREY}))


@pytest.mark.parametrize(
    "files",
    [{"cat/1.png": GREY, "cat/2.png": GREY}, {"top/cat/1.png": GREY}, {"cat/": b""}],
    ids=["one-class", "one-class-wrapped", "no-images"],
)
def test_fewer_than_two_classes(files: dict[str, bytes]) -> None:
    with pytest.raises(ValidationError, match=r"class folder|no images"):
        _profile(zip_bytes(files))


def test_image_pixel_limit() -> None:
    large = encode_image(np.zeros((300, 400), dtype=np.uint8))
    with pytest.raises(PayloadTooLargeError, match=r"'dog/large.png' is 400x300 pixels"):
        profile_image_archive(
            lambda: io.BytesIO(_with({"dog/large.png": large})), **LIMITS, max_image_pixels=100_000
        )


def test_pillow_decompression_bomb_is_refused() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">L", len(body)) + kind + body + struct.pack(">L", zlib.crc32(kind + body))
        )

    header = struct.pack(">LLBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(PayloadTooLargeError, match=r"'dog/bomb.png'"):
        _profile(_with({"dog/bomb.png": bomb}))


def test_unsupported_entries_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry, data in TWO_CLASSES.items():
            archive.writestr(entry, data)
        archive.writestr("dog/b.png", GREY, compress_type=zipfile.ZIP_BZIP2)
    with pytest.raises(ValidationError, match=r"unsupported compression method"):
        _profile(buffer.getvalue())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match=r"Duplicate"):
        archive.writestr("cat/1.png", GREY)
        archive.writestr("cat/1.png", GREY)
        archive.writestr("dog/1.png", GREY)
    with pytest.raises(ValidationError, match=r"'cat/1.png' twice"):
        _profile(buffer.getvalue())


def test_entry_count_walks_the_central_directory() -> None:
    data = zip_bytes({f"c/{i}": b"x" for i in range(30)})
    assert count_entries(io.BytesIO(data), stop_after=100) == 30
    assert count_entries(io.BytesIO(data), stop_after=10) == 11
    prepended = b"#!/bin/sh\nexit 0\n" * 100 + data  # self-extractor style
    assert count_entries(io.BytesIO(prepended), stop_after=100) == 30
    assert count_entries(io.BytesIO(b"not a zip"), stop_after=100) is None


def test_unseekable_uploads_are_read_through_a_temporary_copy() -> None:
    class Stream(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[override]
            return self._inner.readinto(buffer)

    def open_stream() -> BinaryIO:
        return io.BufferedReader(Stream(zip_bytes(TWO_CLASSES)))  # type: ignore[return-value]

    profile = profile_image_archive(open_stream, **LIMITS)
    assert profile["classes"] == ["cat", "dog"]


def test_per_image_byte_limit() -> None:
    big = encode_image(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(
        PayloadTooLargeError, match=r"'dog/big.png' is \d+ bytes, over the per-image"
    ):
        profile_image_archive(
            lambda: io.BytesIO(_with({"dog/big.png": big})), **LIMITS, max_image_bytes=1000
        )


def test_profiling_does_not_import_torch() -> None:
    code = "import sys, dlp.datasets.archive; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"

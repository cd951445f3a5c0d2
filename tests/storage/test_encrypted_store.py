"""Encryption at rest: every file sealed in AES-256-GCM chunks on the local store and on
S3, readable and seekable as plaintext, refused clearly when tampered with, and kept
readable across a key rotation; and the API serving files from an encrypted store."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydantic
import pytest

from dlp.config import Settings
from dlp.storage.encrypted import CHUNK_SIZE, HEADER, MAGIC, EncryptedStore
from dlp.storage.encrypted import StoredFileIntegrityError as IntegrityError
from dlp.storage.keyring import Keyring, generate_key, key_id
from dlp.storage.local import LocalFileStore
from dlp.storage.rotation import reencrypt_files
from dlp.storage.s3 import S3Store
from tests.factories import fresh_installation, table_csv, upload_ok
from tests.s3 import s3_client

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)
MARKER = b"secret-marker-"
MiB = 2**20
STRIDE = CHUNK_SIZE + 16
"""One sealed chunk on disk: its plaintext and the GCM tag."""


@dataclass
class Sealed:
    """An encrypted store and a way to read its files' stored bytes behind its back."""

    store: EncryptedStore
    stored_bytes: Callable[[str], bytes]


@pytest.fixture(params=["local", "s3"])
def sealed(request: pytest.FixtureRequest, tmp_path: Path) -> Sealed:
    """An encrypted store over the local store, then over S3 (moto)."""
    if request.param == "local":
        return Sealed(
            EncryptedStore(LocalFileStore(tmp_path), Keyring(KEY_A)),
            lambda key: (tmp_path / key).read_bytes(),
        )
    bucket = request.getfixturevalue("bucket")

    def object_bytes(key: str) -> bytes:
        return bytes(s3_client().get_object(Bucket=bucket, Key=f"dlp/{key}")["Body"].read())

    return Sealed(EncryptedStore(S3Store(bucket, "dlp"), Keyring(KEY_A)), object_bytes)


def _local(tmp_path: Path, key: bytes = KEY_A, *, allow_plaintext: bool = True) -> EncryptedStore:
    return EncryptedStore(LocalFileStore(tmp_path), Keyring(key, allow_plaintext=allow_plaintext))


def _patterned(size: int) -> bytes:
    """``size`` bytes in which every offset is distinguishable, sprinkled with MARKER."""
    pattern = b"".join(MARKER + i.to_bytes(4, "big") for i in range(size // 18 + 1))
    return pattern[:size]


def test_files_of_every_size_round_trip_and_seek_across_chunk_borders(sealed: Sealed) -> None:
    for size in (0, 1000, CHUNK_SIZE, 3 * CHUNK_SIZE + 123):
        data = _patterned(size)
        sealed.store.write_bytes(f"orgs/o/{size}.bin", data)
        assert sealed.store.read_bytes(f"orgs/o/{size}.bin") == data
        assert b"".join(sealed.store.iter_chunks(f"orgs/o/{size}.bin", 10_000)) == data
        with sealed.store.open_reader(f"orgs/o/{size}.bin") as handle:
            assert handle.seek(0, io.SEEK_END) == size
            for offset in (CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, size - 5):
                if 0 <= offset <= size:
                    handle.seek(offset)
                    assert handle.read(10) == data[offset : offset + 10], (size, offset)
                    assert handle.tell() == min(offset + 10, size)


def test_the_stored_bytes_are_not_the_plaintext(sealed: Sealed) -> None:
    data = _patterned(2 * CHUNK_SIZE + 7)
    sealed.store.write_bytes("orgs/o/data.csv", data)
    stored = sealed.stored_bytes("orgs/o/data.csv")
    assert stored.startswith(MAGIC) and MARKER not in stored
    assert len(stored) == HEADER.size + len(data) + 3 * 16


def _tamper(path: Path, change: Callable[[bytes], bytes]) -> None:
    path.write_bytes(change(path.read_bytes()))


def _flip_a_byte(stored: bytes) -> bytes:
    position = HEADER.size + STRIDE + 100
    return stored[:position] + bytes([stored[position] ^ 1]) + stored[position + 1 :]


def _swap_first_two_chunks(stored: bytes) -> bytes:
    first, second = HEADER.size, HEADER.size + STRIDE
    return (
        stored[:first]
        + stored[second : second + STRIDE]
        + stored[first:second]
        + stored[second + STRIDE :]
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_flip_a_byte, id="flipped-byte"),
        pytest.param(_swap_first_two_chunks, id="swapped-chunks"),
        pytest.param(lambda stored: stored[: HEADER.size + 3 * STRIDE], id="last-chunk-dropped"),
        pytest.param(lambda stored: stored[:-1], id="last-chunk-cut"),
        pytest.param(lambda stored: stored[: HEADER.size - 3], id="header-cut"),
    ],
)
def test_a_tampered_file_is_refused_as_an_integrity_failure(
    tmp_path: Path, change: Callable[[bytes], bytes]
) -> None:
    store = _local(tmp_path)
    store.write_bytes("orgs/o/f.bin", _patterned(3 * CHUNK_SIZE + 500))
    _tamper(tmp_path / "orgs/o/f.bin", change)
    with pytest.raises(IntegrityError, match=r"stored file orgs/o/f\.bin .*refusing to read it"):
        store.read_bytes("orgs/o/f.bin")


def test_a_file_copied_to_another_key_is_refused(tmp_path: Path) -> None:
    store = _local(tmp_path)
    store.write_bytes("orgs/a/model.bin", b"weights of organization a")
    (tmp_path / "orgs/b").mkdir(parents=True)
    (tmp_path / "orgs/b/model.bin").write_bytes((tmp_path / "orgs/a/model.bin").read_bytes())
    with pytest.raises(IntegrityError, match="moved from another key"):
        store.read_bytes("orgs/b/model.bin")


def test_a_file_under_a_key_not_held_names_the_key_id(tmp_path: Path) -> None:
    _local(tmp_path, KEY_A).write_bytes("orgs/o/f.bin", b"data")
    with pytest.raises(IntegrityError, match=f"key id {key_id(KEY_A).hex()}"):
        _local(tmp_path, KEY_B).read_bytes("orgs/o/f.bin")


def test_plaintext_files_are_read_until_plaintext_is_disallowed(tmp_path: Path) -> None:
    LocalFileStore(tmp_path).write_bytes("orgs/o/old.csv", b"a,b\n1,2\n")
    assert _local(tmp_path).read_bytes("orgs/o/old.csv") == b"a,b\n1,2\n"
    with pytest.raises(IntegrityError, match="not encrypted"):
        _local(tmp_path, allow_plaintext=False).read_bytes("orgs/o/old.csv")


def test_rotation_keeps_files_readable_and_reencrypt_moves_them_to_the_new_key(
    sealed: Sealed,
) -> None:
    files = {f"orgs/o/{size}.bin": _patterned(size) for size in (0, 10, 2 * CHUNK_SIZE + 1)}
    for key, data in files.items():
        sealed.store.write_bytes(key, data)
    sealed.store.inner.write_bytes("orgs/o/legacy.csv", b"written before encryption")
    files["orgs/o/legacy.csv"] = b"written before encryption"

    rotated = EncryptedStore(sealed.store.inner, Keyring(KEY_B, old=(KEY_A,)))
    assert {key: rotated.read_bytes(key) for key in files} == files
    heard: list[tuple[str, str]] = []
    report = reencrypt_files(rotated, "orgs", lambda key, outcome: heard.append((key, outcome)))
    assert (report.old_key, report.plaintext, report.current, report.failures) == (3, 1, 0, {})
    assert len(heard) == 4
    assert {rotated.stored_key_id(key) for key in files} == {key_id(KEY_B)}

    again = reencrypt_files(rotated, "orgs")
    assert (again.current, again.old_key, again.plaintext) == (4, 0, 0)
    without_a = EncryptedStore(sealed.store.inner, Keyring(KEY_B, allow_plaintext=False))
    assert {key: without_a.read_bytes(key) for key in files} == files


def test_the_reencrypt_command_rewrites_old_files_and_prints_its_counts(tmp_path: Path) -> None:
    files = tmp_path / "files"
    _local(files, KEY_A).write_bytes("orgs/o/a.bin", b"sealed with a")
    LocalFileStore(files).write_bytes("orgs/o/plain.csv", b"x\n1\n")
    clean = {name: value for name, value in os.environ.items() if not name.startswith("DLP_")}
    env = {
        **clean,
        "DLP_DATA_DIR": str(tmp_path),
        "DLP_ENCRYPTION_KEY": generate_key(),
        "DLP_ENCRYPTION_OLD_KEYS": generate_key() + "," + base64.b64encode(KEY_A).decode(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "dlp", "storage", "reencrypt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "rewritten from an old key: 1" in result.stdout
    assert "rewritten from plaintext: 1" in result.stdout
    assert "orgs/o/plain.csv: rewritten from plaintext" in result.stdout
    assert (files / "orgs/o/plain.csv").read_bytes().startswith(MAGIC)


def test_writing_and_reading_64_mb_keeps_memory_at_a_few_chunks(tmp_path: Path) -> None:
    store = _local(tmp_path)
    block = os.urandom(MiB)
    tracemalloc.start()
    try:
        writer = store.open_writer("orgs/o/big.bin")
        for _ in range(64):
            writer.write(block)
        writer.commit()
        _current, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with store.open_reader("orgs/o/big.bin") as handle:
            total = 0
            while chunk := handle.read(CHUNK_SIZE):
                total += len(chunk)
        _current, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"64 MiB: tracemalloc peak {write_peak / MiB:.2f} MiB writing, {read_peak / MiB:.2f} read"
    )
    assert total == 64 * MiB
    assert write_peak < 3 * CHUNK_SIZE and read_peak < 5 * CHUNK_SIZE


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"encryption_key": "not base64!"}, "base64 of 32 random bytes"),
        ({"encryption_key": "c2hvcnQ="}, "base64 of 32 bytes, not 5"),
        ({"encryption_key": ""}, "base64 of 32 bytes, not 0"),
        ({"encryption_old_keys": generate_key()}, "need a current DLP_ENCRYPTION_KEY"),
    ],
)
def test_a_bad_encryption_key_is_refused_at_start_up(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Settings(data_dir=tmp_path, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", ["embedded", "scaleout"])
def test_datasets_upload_and_download_through_an_encrypted_store(
    tmp_path: Path, shape: str
) -> None:
    content = table_csv(["x", "label"], [[i, f"{MARKER.decode()}{i}"] for i in range(5000)])
    with fresh_installation(shape, tmp_path, encryption_key=generate_key()) as (
        deployed,
        client,
        account,
    ):
        dataset = upload_ok(client, account, content, "secret.csv")
        assert dataset["n_rows"] == 5000 and len(content) > CHUNK_SIZE + 200
        url = f"/api/v1/datasets/{dataset['id']}/download"
        assert client.get(url, headers=account.headers).content == content
        stored = [path for path in deployed.store_root.rglob("*") if path.is_file()]
        assert stored and all(MARKER not in path.read_bytes() for path in stored)

        _tamper(next(path for path in stored if dataset["id"] in str(path)), _flip_a_byte)
        broken = client.get(url, headers=account.headers)
        assert broken.status_code == 500
        assert broken.json()["error"] == "internal_error"
        assert "failed its integrity check" in broken.json()["message"]

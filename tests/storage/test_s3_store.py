"""The file-store contract, on the local folder store and on S3 (a moto server over HTTP
through boto3), and what only the S3 store does: multipart uploads, server-side
encryption, batched deletes, flat memory and its errors."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlp.config import Settings
from dlp.errors import NotFoundError, ServiceUnavailableError, ValidationError
from dlp.storage import FileStore, create_file_store
from dlp.storage.local import LocalFileStore
from dlp.storage.s3 import MIN_PART_SIZE, S3Store
from tests.s3 import s3_client

MiB = 2**20


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FileStore:
    """Each store in turn; the S3 one keeps its keys below a prefix of a fresh bucket."""
    if request.param == "local":
        return LocalFileStore(tmp_path / "files")
    return S3Store(request.getfixturevalue("bucket"), "dlp/files")


def _write(store: FileStore, key: str, *chunks: bytes) -> None:
    writer = store.open_writer(key)
    for chunk in chunks:
        writer.write(chunk)
    writer.commit()


def test_committed_bytes_read_back_whole_streamed_and_seeked(store: FileStore) -> None:
    data = bytes(range(256)) * 40
    _write(store, "orgs/o1/datasets/d1/original.csv", data[:100], data[100:5000], data[5000:])

    assert store.exists("orgs/o1/datasets/d1/original.csv")
    assert store.read_bytes("orgs/o1/datasets/d1/original.csv") == data
    assert b"".join(store.iter_chunks("orgs/o1/datasets/d1/original.csv", 999)) == data
    with store.open_reader("orgs/o1/datasets/d1/original.csv") as handle:
        assert handle.seekable()
        assert handle.read(3) == data[:3]
        handle.seek(5000)
        assert handle.tell() == 5000
        assert handle.read(10) == data[5000:5010]
        assert handle.seek(-4, io.SEEK_END) == len(data) - 4
        assert handle.read() == data[-4:]
        handle.seek(7)
        assert handle.read() == data[7:]


def test_an_empty_file_is_a_file(store: FileStore) -> None:
    store.write_bytes("a/empty.bin", b"")

    assert store.exists("a/empty.bin")
    assert store.read_bytes("a/empty.bin") == b""
    assert list(store.iter_chunks("a/empty.bin")) in ([], [b""])


def test_writes_are_invisible_until_commit_and_abort_leaves_nothing(store: FileStore) -> None:
    writer = store.open_writer("a/partial.bin")
    writer.write(b"half of it")
    assert not store.exists("a/partial.bin")

    writer.abort()

    assert not store.exists("a/partial.bin")
    assert list(store.iter_keys("a")) == []


def test_a_missing_key_is_not_found_everywhere(store: FileStore) -> None:
    assert not store.exists("a/missing.bin")
    with pytest.raises(NotFoundError):
        store.open_reader("a/missing.bin")
    with pytest.raises(NotFoundError):
        store.read_bytes("a/missing.bin")
    with pytest.raises(NotFoundError):
        next(store.iter_chunks("a/missing.bin"))


def test_delete_prefix_removes_the_folder_or_the_key_and_spares_neighbours(
    store: FileStore,
) -> None:
    for key in ("d/1/x.csv", "d/1/sub/y.bin", "d/10/x.csv", "d/2/out.parquet", "d/2/keep.txt"):
        store.write_bytes(key, key.encode())

    store.delete_prefix("d/1")
    store.delete_prefix("d/2/out.parquet")
    store.delete_prefix("d/nothing-here")

    assert sorted(item.key for item in store.iter_keys("d")) == ["d/10/x.csv", "d/2/keep.txt"]


def test_iter_keys_lists_committed_keys_below_a_folder_with_their_times(
    store: FileStore,
) -> None:
    store.write_bytes("orgs/o1/models/m1/model.safetensors", b"weights")
    store.write_bytes("orgs/o1/models/m1/model.json", b"{}")
    store.write_bytes("orgs/o2/models/m2/model.json", b"{}")
    pending = store.open_writer("orgs/o1/models/m1/pending.bin")
    pending.write(b"not committed")

    listed = list(store.iter_keys("orgs/o1"))
    pending.abort()

    assert sorted(item.key for item in listed) == [
        "orgs/o1/models/m1/model.json",
        "orgs/o1/models/m1/model.safetensors",
    ]
    assert all(item.modified_at.tzinfo is not None for item in listed)


def test_keys_that_could_escape_the_store_are_refused(store: FileStore) -> None:
    operations = (store.open_writer, store.open_reader, store.exists, store.delete_prefix)
    for key in ("../escape", "a/../../escape", "/absolute", "a//b", "", "."):
        for operation in operations:
            with pytest.raises(ValidationError):
                operation(key)


def test_parquet_and_zip_files_are_read_in_place_by_seeking(store: FileStore) -> None:
    table = pa.table({"a": list(range(5000)), "b": [f"row {i}" for i in range(5000)]})
    parquet = io.BytesIO()
    pq.write_table(table, parquet, row_group_size=1000)
    store.write_bytes("d/data.parquet", parquet.getvalue())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for i in range(30):
            zipped.writestr(f"class-{i % 3}/{i}.bin", os.urandom(3000))
    store.write_bytes("d/images.zip", archive.getvalue())

    with store.open_reader("d/data.parquet") as handle:
        assert pq.ParquetFile(handle).read().equals(table)
    with store.open_reader("d/images.zip") as handle, zipfile.ZipFile(handle) as zipped:
        expected = zipfile.ZipFile(io.BytesIO(archive.getvalue()))
        for info in reversed(zipped.infolist()):
            assert zipped.read(info) == expected.read(info.filename)


def test_the_s3_store_keeps_keys_below_its_prefix(bucket: str) -> None:
    S3Store(bucket, "/team/dlp/").write_bytes("orgs/o1/x.csv", b"x")

    listed = s3_client().list_objects_v2(Bucket=bucket)["Contents"]

    assert [item["Key"] for item in listed] == ["team/dlp/orgs/o1/x.csv"]


def test_a_file_larger_than_a_part_goes_up_as_a_multipart_upload(bucket: str) -> None:
    store = S3Store(bucket, part_size=MIN_PART_SIZE)
    chunk = os.urandom(MiB)
    chunks = [chunk] * 11 + [b"tail"]

    _write(store, "big.bin", *chunks)

    head = s3_client().head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 11 * MiB + 4
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a 3-part upload
    digest = hashlib.sha256()
    for part in store.iter_chunks("big.bin"):
        digest.update(part)
    assert digest.digest() == hashlib.sha256(b"".join(chunks)).digest()


def test_an_aborted_multipart_upload_leaves_no_object_and_no_pending_parts(bucket: str) -> None:
    store = S3Store(bucket, part_size=MIN_PART_SIZE)
    writer = store.open_writer("big.bin")
    writer.write(os.urandom(MIN_PART_SIZE + 10))
    client = s3_client()
    assert len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1

    writer.abort()

    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []


@pytest.mark.parametrize("size", [10, MIN_PART_SIZE + 1])
def test_every_write_asks_for_server_side_encryption_when_configured(
    bucket: str, size: int
) -> None:
    aes = S3Store(bucket, "aes", sse="AES256", part_size=MIN_PART_SIZE)
    kms = S3Store(bucket, "kms", sse="aws:kms", sse_kms_key_id="alias/dlp")
    aes.write_bytes("f.bin", b"x" * size)
    kms.write_bytes("f.bin", b"x" * size)

    client = s3_client()
    assert client.head_object(Bucket=bucket, Key="aes/f.bin")["ServerSideEncryption"] == "AES256"
    head = client.head_object(Bucket=bucket, Key="kms/f.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/dlp")


def test_delete_prefix_deletes_more_keys_than_one_batch(bucket: str) -> None:
    store = S3Store(bucket, delete_batch=3)
    for i in range(10):
        store.write_bytes(f"job/checkpoints/epoch-{i:05d}.safetensors", b"c")
    store.write_bytes("job/keep.json", b"{}")

    store.delete_prefix("job/checkpoints")

    listed = s3_client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["job/keep.json"]


def test_writing_64_mb_keeps_memory_at_about_one_part(bucket: str) -> None:
    store = S3Store(bucket)
    store.check()  # builds the client (its service model) before measuring
    chunk = os.urandom(MiB)

    tracemalloc.start()
    try:
        writer = store.open_writer("big.bin")
        for _ in range(64):
            writer.write(chunk)
        writer.commit()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(f"tracemalloc peak while writing 64 MiB: {peak / MiB:.1f} MiB")
    assert s3_client().head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == 64 * MiB
    assert peak < 1.5 * store.part_size


def test_a_missing_bucket_is_an_outage_naming_the_bucket_but_no_secret(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-shown-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANEVERSHOWN")
    store = S3Store("no-such-bucket-here")

    failures = []
    for attempt in (store.check, lambda: store.write_bytes("a.bin", b"x")):
        with pytest.raises(ServiceUnavailableError) as raised:
            attempt()
        failures.append(raised.value.message)

    for message in failures:
        assert "no-such-bucket-here" in message
        assert "never-shown-secret" not in message and "AKIANEVERSHOWN" not in message


def test_the_storage_url_picks_the_store_and_bad_s3_urls_stop_start_up(tmp_path: Path) -> None:
    s3 = create_file_store("s3://my-bucket/some/prefix/", s3_sse="AES256")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("my-bucket", "some/prefix")
    assert isinstance(create_file_store(f"file://{tmp_path}"), LocalFileStore)

    for url, complaint in [
        ("s3:///prefix-only", "names no bucket"),
        ("s3://bucket/a/../b", "invalid prefix"),
        ("gs://bucket/x", "unsupported"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            create_file_store(url)
    with pytest.raises(ValueError, match="needs DLP_S3_SSE=aws:kms"):
        create_file_store("s3://bucket", s3_sse="AES256", s3_sse_kms_key_id="key")
    with pytest.raises(ValueError, match="s3_sse"):
        Settings(s3_sse="rot13")

"""Stream a multipart upload straight into the file store, in constant memory.

Starlette's form parser spools the whole body before the endpoint runs; this
reader feeds the body to ``python_multipart`` chunk by chunk instead, writes the
file part to the store as it arrives, and stops with 413 the moment the limit
is crossed, leaving nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from dlp.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError
from dlp.storage import FileStore, FileWriter

MAX_FIELD_BYTES = 4096
FLUSH_BYTES = 1 << 20


@dataclass
class ReceivedUpload:
    """The small form fields and where the file's bytes were stored."""

    fields: dict[str, str]
    filename: str
    key: str
    size_bytes: int


@dataclass
class _PartState:
    name: str | None = None
    filename: str | None = None
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)


class _StreamingForm:
    """Callbacks for python_multipart that route the file part to a store writer."""

    def __init__(self, file_field: str, key_for: Callable[[str], str], store: FileStore) -> None:
        self.file_field = file_field
        self.key_for = key_for
        self.store = store
        self.fields: dict[str, str] = {}
        self.part = _PartState()
        self.writer: FileWriter | None = None
        self.filename: str | None = None
        self.key: str | None = None
        self.pending = bytearray()
        self.file_bytes = 0
        self.file_done = False

    def on_part_begin(self) -> None:
        self.part = _PartState()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.part.header_field).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self.part.header_value))
            self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
            filename = options.get(b"filename")
            self.part.filename = filename.decode("utf-8", "replace") if filename else None
        self.part.header_field = bytearray()
        self.part.header_value = bytearray()

    def on_headers_finished(self) -> None:
        if self.part.name == self.file_field:
            if self.writer is not None or self.file_done:
                raise ValidationError(f"send exactly one '{self.file_field}' part")
            self.filename = self.part.filename or ""
            self.key = self.key_for(self.filename)
            self.writer = self.store.open_writer(self.key)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.name == self.file_field:
            self.pending += data[start:end]
            self.file_bytes += end - start
        else:
            self.part.value += data[start:end]
            if len(self.part.value) > MAX_FIELD_BYTES:
                raise ValidationError(f"form field '{self.part.name}' is too long")

    def on_part_end(self) -> None:
        if self.part.name == self.file_field:
            self.file_done = True
        elif self.part.name:
            self.fields[self.part.name] = self.part.value.decode("utf-8", "replace")

    def take_pending(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


async def receive_upload(
    request: Request,
    *,
    store: FileStore,
    key_for: Callable[[str], str],
    max_bytes: int,
    too_large: str | None = None,
    file_field: str = "file",
) -> ReceivedUpload:
    """Read a ``multipart/form-data`` body, streaming the ``file`` part into the store.

    A file over ``max_bytes`` stops the stream with 413 saying ``too_large`` (default:
    the limit in MB).
    """
    refusal = too_large or f"the upload is over the {max_bytes // 2**20} MB limit"
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaTypeError("upload the file as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise PayloadTooLargeError(refusal)
    form = _StreamingForm(file_field, key_for, store)
    parser = MultipartParser(boundary, callbacks=_callbacks(form))  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ValidationError(f"malformed multipart body: {exc}") from exc
            if form.file_bytes > max_bytes:
                raise PayloadTooLargeError(refusal)
            if form.writer is not None and len(form.pending) >= FLUSH_BYTES:
                await run_in_threadpool(form.writer.write, form.take_pending())
        parser.finalize()
        if form.writer is None or form.key is None or not form.file_done:
            raise ValidationError(f"the form has no complete '{file_field}' file part")
        await run_in_threadpool(form.writer.write, form.take_pending())
        await run_in_threadpool(form.writer.commit)
    except BaseException:
        if form.writer is not None:
            await run_in_threadpool(form.writer.abort)
        raise
    return ReceivedUpload(
        fields=form.fields, filename=form.filename or "", key=form.key, size_bytes=form.file_bytes
    )


def _callbacks(form: _StreamingForm) -> dict[str, Callable[..., None]]:
    return {
        "on_part_begin": form.on_part_begin,
        "on_header_field": form.on_header_field,
        "on_header_value": form.on_header_value,
        "on_header_end": form.on_header_end,
        "on_headers_finished": form.on_headers_finished,
        "on_part_data": form.on_part_data,
        "on_part_end": form.on_part_end,
    }

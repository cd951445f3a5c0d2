"""Count a zip's entries by walking its central directory, before ``zipfile`` parses it.

``zipfile.ZipFile`` builds one Python object per central-directory record on open,
so a 1 GB upload made only of records would cost gigabytes of memory before any
entry limit could be checked. Walking the records here costs nothing per entry.
Anything this walk cannot make sense of is left for ``zipfile`` to judge.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_RECORD = struct.Struct("<4s4B4HL2L5H2L")
_RECORD_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF


def count_entries(handle: BinaryIO, *, stop_after: int) -> int | None:
    """Central-directory records, counted up to ``stop_after + 1``; None if unreadable."""
    span = _central_directory(handle)
    if span is None:
        return None
    start, size = span
    handle.seek(start)
    count = walked = 0
    while walked < size and count <= stop_after:
        header = handle.read(_RECORD.size)
        if len(header) < _RECORD.size or header[:4] != _RECORD_SIGNATURE:
            return None
        fields = _RECORD.unpack(header)
        variable = fields[12] + fields[13] + fields[14]  # name, extra, comment lengths
        handle.seek(variable, 1)
        walked += _RECORD.size + variable
        count += 1
    return count


def _central_directory(handle: BinaryIO) -> tuple[int, int] | None:
    """(offset, size) of the central directory, found from the end records."""
    handle.seek(0, 2)
    file_size = handle.tell()
    tail_size = min(file_size, _END.size + _MAX_COMMENT)
    handle.seek(file_size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or at + _END.size > len(tail):
        return None
    end_offset = file_size - tail_size + at
    directory_size = _END.unpack_from(tail, at)[5]
    directory_end = end_offset
    locator_offset = end_offset - _ZIP64_LOCATOR.size
    if locator_offset >= _ZIP64_END.size:
        handle.seek(locator_offset)
        locator = handle.read(_ZIP64_LOCATOR.size)
        if locator[:4] == _ZIP64_LOCATOR_SIGNATURE:
            # The zip64 end record sits right before its locator (as zipfile assumes).
            directory_end = locator_offset - _ZIP64_END.size
            handle.seek(directory_end)
            record = handle.read(_ZIP64_END.size)
            if len(record) < _ZIP64_END.size or record[:4] != _ZIP64_END_SIGNATURE:
                return None
            directory_size = _ZIP64_END.unpack(record)[8]
    start = directory_end - directory_size
    return (start, directory_size) if start >= 0 else None

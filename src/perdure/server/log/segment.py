"""The on-disk format of the local log: segment names, record frames, and the tail scan.

Pure functions over bytes; no file handles, no asyncio (those live in `local.py`).

A log directory holds:

    LOCK                              flock()ed by the one process that has the log open
    00000000000000000001.seg          segments, named by the LSN of their first record
    00000000000000004097.seg          (20 decimal digits, so names sort like LSNs)
    00000000000000008193.seg.tmp      only after a crash during rollover; deleted on open

A segment is a 16-byte header followed by records back to back, nothing else:

    header   magic b"PDLOGv1\\n" (8 bytes) | first_lsn u64

    record   magic b"\\xa7\\x1d\\x0c\\xe5" (4 bytes) | crc u32 | length u32 |
             batch_index u32 | lsn u64 | payload (length bytes)

Integers are little-endian. `crc` is zlib.crc32 over the 16 header bytes that follow it
(length, batch_index, lsn) and then the payload, so a damaged length or LSN fails the check
just like a damaged payload. `batch_index` is the record's position inside the group commit
(one write plus one fsync) that stored it: `lsn - batch_index` is that commit's first LSN.
The record magic lets recovery find record boundaries again after a damaged one.

Why recovery can tell a torn tail from corruption (the writer in `local.py` keeps these):
a segment gets its final name only after its header was fsynced, and the directory is
fsynced after the rename; a group commit is written only after the previous one's fsync
returned. So a crash can damage only the records of the last group commit in the last
segment, and only those were never acknowledged. Scanning the last segment, the first
record that is invalid (bad magic, bad checksum, length past the end, unexpected LSN,
zeros) starts the damaged region. If a valid record of a *later* group commit (its first
LSN is above the damaged record's LSN) exists anywhere after it, the damaged record was
already durable: that is corruption and `LogCorruption` is raised. Otherwise the region is
the torn last commit and is cut off, including any records of that same commit that happen
to be intact after the hole (keeping them would leave a gap in the LSNs; none of them was
acknowledged).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from perdure.server.log.errors import LogCorruption

__all__ = [
    "MAX_RECORD_LENGTH",
    "RECORD_HEADER_SIZE",
    "SEGMENT_HEADER_SIZE",
    "SEGMENT_SUFFIX",
    "TailScan",
    "check_segment_header",
    "encode_batch",
    "encode_segment_header",
    "iter_records",
    "parse_segment_name",
    "scan_tail",
    "segment_name",
]

SEGMENT_MAGIC = b"PDLOGv1\n"
SEGMENT_SUFFIX = ".seg"
_SEGMENT_HEADER = struct.Struct("<8sQ")
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size

RECORD_MAGIC = b"\xa7\x1d\x0c\xe5"
_RECORD_HEADER = struct.Struct("<4sIIIQ")
_RECORD_PREFIX = struct.Struct("<4sI")  # magic, crc
_RECORD_CHECKED = struct.Struct("<IIQ")  # length, batch_index, lsn: covered by the crc
RECORD_HEADER_SIZE = _RECORD_HEADER.size
_CHECKED_START = _RECORD_PREFIX.size
MAX_RECORD_LENGTH = 0xFFFF_FFFF  # what the u32 length field can express

_SEGMENT_NAME = re.compile(r"^(\d{20})" + re.escape(SEGMENT_SUFFIX) + r"$")


def segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first LSN of a segment file name, or None if `name` is not a segment."""
    match = _SEGMENT_NAME.match(name)
    return int(match.group(1)) if match else None


def encode_segment_header(first_lsn: int) -> bytes:
    return _SEGMENT_HEADER.pack(SEGMENT_MAGIC, first_lsn)


def check_segment_header(buf: bytes, path: str, first_lsn: int) -> None:
    """Raise LogCorruption unless `buf` starts with the header of segment `first_lsn`."""
    if len(buf) < SEGMENT_HEADER_SIZE:
        raise LogCorruption(path, 0, f"segment header is {len(buf)} bytes long")
    magic, header_lsn = _SEGMENT_HEADER.unpack_from(buf, 0)
    if magic != SEGMENT_MAGIC:
        raise LogCorruption(path, 0, f"not a perdure log segment (magic {magic!r})")
    if header_lsn != first_lsn:
        raise LogCorruption(path, 8, f"header says first LSN {header_lsn}, name says {first_lsn}")


def encode_batch(payloads: Sequence[bytes], first_lsn: int) -> bytes:
    """Frame the records of one group commit; the i-th payload gets LSN first_lsn + i."""
    parts: list[bytes] = []
    add = parts.append
    crc32 = zlib.crc32
    pack_prefix = _RECORD_PREFIX.pack
    pack_checked = _RECORD_CHECKED.pack
    for index, payload in enumerate(payloads):
        checked = pack_checked(len(payload), index, first_lsn + index)
        add(pack_prefix(RECORD_MAGIC, crc32(payload, crc32(checked))))
        add(checked)
        add(payload)
    return b"".join(parts)


def iter_records(buf: bytes, offset: int, first_lsn: int) -> Iterator[tuple[int, int, int]]:
    """Yield (lsn, payload_start, payload_end) for each valid record from `offset` on.

    Stops silently at the end of `buf` or at the first record that is invalid or does not
    carry the next expected LSN (starting at `first_lsn`); the caller compares the last
    payload_end it saw with len(buf) to know which.
    """
    view = memoryview(buf)
    end = len(buf)
    crc32 = zlib.crc32
    unpack = _RECORD_HEADER.unpack_from
    expected = first_lsn
    pos = offset
    while end - pos >= RECORD_HEADER_SIZE:
        magic, crc, length, _batch_index, lsn = unpack(buf, pos)
        start = pos + RECORD_HEADER_SIZE
        stop = start + length
        if magic != RECORD_MAGIC or lsn != expected or stop > end:
            return
        if crc32(view[start:stop], crc32(view[pos + _CHECKED_START : start])) != crc:
            return
        yield lsn, start, stop
        expected += 1
        pos = stop


def _valid_record_at(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(lsn, batch_index) of the checksummed record starting at `pos`, or None."""
    if len(buf) - pos < RECORD_HEADER_SIZE:
        return None
    magic, crc, length, batch_index, lsn = _RECORD_HEADER.unpack_from(buf, pos)
    start = pos + RECORD_HEADER_SIZE
    stop = start + length
    if magic != RECORD_MAGIC or stop > len(buf) or batch_index >= lsn:
        return None
    view = memoryview(buf)
    if zlib.crc32(view[start:stop], zlib.crc32(view[pos + _CHECKED_START : start])) != crc:
        return None
    return lsn, batch_index


def _later_commit_after(buf: bytes, offset: int, damaged_lsn: int) -> int | None:
    """Offset of a valid record at or after `offset` whose group commit started after
    `damaged_lsn`, or None if there is none."""
    pos = buf.find(RECORD_MAGIC, offset)
    while pos >= 0:
        record = _valid_record_at(buf, pos)
        if record is not None:
            lsn, batch_index = record
            if lsn - batch_index > damaged_lsn:
                return pos
        pos = buf.find(RECORD_MAGIC, pos + 1)
    return None


@dataclass(slots=True, frozen=True)
class TailScan:
    """What recovery learned from the last segment."""

    end: int
    """Offset just past the last valid record (the segment header size if none)."""
    next_lsn: int
    """LSN the next appended record gets."""
    torn_bytes: int
    """Bytes after `end` that belong to a torn, never acknowledged group commit."""


def scan_tail(buf: bytes, path: str, first_lsn: int) -> TailScan:
    """Find the end of the valid records of the last segment (whose header is valid).

    Raises LogCorruption if a damaged record is followed by a record of a later group
    commit (see the module docstring).
    """
    end = SEGMENT_HEADER_SIZE
    next_lsn = first_lsn
    for lsn, _start, stop in iter_records(buf, end, first_lsn):
        end = stop
        next_lsn = lsn + 1
    if end < len(buf):
        later = _later_commit_after(buf, end, next_lsn)
        if later is not None:
            raise LogCorruption(
                path,
                end,
                f"record {next_lsn} is damaged, yet a later group commit follows it at "
                f"offset {later}; it was acknowledged and must not be dropped",
            )
    return TailScan(end=end, next_lsn=next_lsn, torn_bytes=len(buf) - end)

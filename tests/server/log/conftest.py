"""Fixtures of the local log tests: a log directory and a way to look inside its files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from perdure.server.log.segment import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    iter_records,
    parse_segment_name,
)


@dataclass(frozen=True)
class RecordSpan:
    lsn: int
    start: int
    """Offset of the record header in its segment file."""
    payload_start: int
    end: int
    """Offset just past the payload."""


@dataclass(frozen=True)
class SegmentInspector:
    """Reads and damages the segment files of one log directory, bypassing the log."""

    directory: Path

    def files(self) -> list[Path]:
        found = [p for p in self.directory.iterdir() if parse_segment_name(p.name) is not None]
        return sorted(found, key=lambda p: parse_segment_name(p.name) or 0)

    def first_lsns(self) -> list[int]:
        return [parse_segment_name(p.name) or 0 for p in self.files()]

    def spans(self, path: Path) -> dict[int, RecordSpan]:
        """Where each valid record of a segment file lies."""
        buf = path.read_bytes()
        first_lsn = parse_segment_name(path.name)
        assert first_lsn is not None
        return {
            lsn: RecordSpan(lsn, start - RECORD_HEADER_SIZE, start, stop)
            for lsn, start, stop in iter_records(buf, SEGMENT_HEADER_SIZE, first_lsn)
        }

    def flip_byte(self, path: Path, offset: int) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x5A
        path.write_bytes(bytes(data))

    def overwrite(self, path: Path, offset: int, data: bytes) -> None:
        content = bytearray(path.read_bytes())
        content[offset : offset + len(data)] = data
        path.write_bytes(bytes(content))


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def segments(log_dir: Path) -> SegmentInspector:
    return SegmentInspector(log_dir)

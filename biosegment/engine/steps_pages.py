"""Reading a run's steps file (``steps.jsonl``) one bounded page at a time.

:class:`~biosegment.engine.live_snapshot.LiveRecorder` appends one line per optimizer step; a
long run writes millions. :func:`read_steps_page` answers "the steps after step N" by reading
only a page: at most ``limit`` records and :data:`PAGE_BYTES` bytes, from where the previous
page ended (its ``cursor``, a byte offset) or, without one, from a line found by bisecting the
file on step numbers. What a page costs never depends on the file's length.

A run resumed after an interruption repeats the steps since its last saved state, so steps in
the file can go back. A repeated step replaces the earlier records of the same and later steps
(as :func:`~biosegment.engine.live_snapshot.read_steps` does over the whole file) within what a
page reads; a caller that already had the earlier records keeps them. Bisection stays correct
over such files: reading may start at any line that follows a line with a step at or below N
(or at the top), and bisection only ever moves its start to such lines.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

__all__ = ["StepsPage", "read_steps_page", "STEPS_PER_PAGE", "PAGE_BYTES"]

#: Records in one page at most.
STEPS_PER_PAGE = 5000
#: Bytes one page reads at most (records are about 60 bytes; the rest is for repeated steps).
PAGE_BYTES = 2**20
# Bisection stops once the start is known within this many bytes, then reads forward.
_BISECT_SPAN = 2**16
# A line longer than this is not a record (records are a few dozen bytes).
_MAX_LINE = 4096
# Lines one bisection probe reads looking for a record before it gives up on its half.
_PROBE_LINES = 16
_CHUNK = 2**16


@dataclass(frozen=True)
class StepsPage:
    """Records after a step, in step order; ``more``: ask again with ``cursor`` for the rest."""

    steps: list[dict] = field(default_factory=list)
    more: bool = False
    cursor: int = 0


def _record(line: bytes) -> dict | None:
    """The record a line holds, or None for a line that is not one (junk, a cut-off write)."""
    if not line or len(line) > _MAX_LINE:
        return None
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    return record


def _probe(handle: BinaryIO, offset: int, end: int) -> tuple[int, int] | None:
    """``(step, end of its line)`` of the first record on a line starting after ``offset``."""
    handle.seek(offset)
    handle.readline(_MAX_LINE + 1)  # the rest of the line ``offset`` falls in
    position = handle.tell()
    for _ in range(_PROBE_LINES):
        if position >= end:
            return None
        line = handle.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            return None  # the end of the file, a line being written, or no record at all
        position += len(line)
        record = _record(line.rstrip(b"\n"))
        if record is not None:
            return record["step"], position
    return None


def _bisect(handle: BinaryIO, size: int, after: int) -> int:
    """A line start to read forward from: the top, or the end of a line whose step is at or
    below ``after``; on a file whose steps only grow, within :data:`_BISECT_SPAN` bytes of the
    first step above ``after``."""
    low, high = 0, size
    while high - low > _BISECT_SPAN:
        middle = (low + high) // 2
        found = _probe(handle, middle, high)
        if found is None or found[0] > after:
            high = middle
        else:
            low = found[1]
    return low


def _is_line_start(handle: BinaryIO, offset: int, size: int) -> bool:
    if offset == 0:
        return True
    if offset > size:
        return False
    handle.seek(offset - 1)
    return handle.read(1) == b"\n"


def _read_forward(handle: BinaryIO, start: int, after: int, limit: int) -> StepsPage:
    records: list[dict] = []
    handle.seek(start)
    line_start = start  # where the line being read begins: always a valid cursor
    pending = b""  # the part of that line read so far
    dropped = 0  # bytes of that line already let go: it is too long to be a record
    spent = 0
    while spent < PAGE_BYTES:
        chunk = handle.read(_CHUNK)
        if not chunk:
            return StepsPage(records, False, line_start)
        spent += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            line_start += dropped + len(line) + 1
            record = None if dropped else _record(line)
            dropped = 0
            if record is None:
                continue
            step = record["step"]
            while records and records[-1]["step"] >= step:
                records.pop()  # a resumed run repeats steps: the later record wins
            if step > after:
                records.append(record)
                if len(records) >= limit:
                    return StepsPage(records, True, line_start)
        if len(pending) > _MAX_LINE:
            dropped += len(pending)
            pending = b""
    return StepsPage(records, True, line_start)


def read_steps_page(
    steps_file: Path, *, after: int = 0, cursor: int | None = None, limit: int = STEPS_PER_PAGE
) -> StepsPage:
    """The first records with a step above ``after`` (at most ``limit``, read within
    :data:`PAGE_BYTES`), and where to go on from.

    ``cursor`` is the ``cursor`` of the page before, asked for with ``after`` set to the last
    step it gave (or the same ``after`` if it gave none). A cursor that is not the start of a
    line of this file is ignored, and the file bisected instead.
    """
    limit = max(1, min(int(limit), STEPS_PER_PAGE))
    try:
        handle = open(steps_file, "rb")
    except FileNotFoundError:
        return StepsPage()
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if cursor is not None and cursor >= 0 and _is_line_start(handle, cursor, size):
            start = cursor
        else:
            start = _bisect(handle, size, after)
        return _read_forward(handle, start, after, limit)

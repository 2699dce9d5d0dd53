"""Send files to a person's browser as downloads, a block at a time, never whole in memory.

A download is one file (a TIFF, an exported model) or a folder sent as a zip that is written
while it is sent (an OME-Zarr store): either way the server holds one block of
:data:`BLOCK_BYTES` at a time, whatever the size. What a download had to make first (a
converted volume, an export) lives in a scratch folder under ``<data>/.biosegment/downloads``
and is removed when the response ends, sent in full or not. File names in
``Content-Disposition`` are reduced to letters, digits, ``.``, ``_`` and ``-``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from flask import Response

from biosegment.config import Config

__all__ = [
    "BLOCK_BYTES",
    "safe_file_name",
    "scratch_folder",
    "file_download",
    "zip_download",
    "remove_scratch",
]

BLOCK_BYTES = 2**20
#: Scratch folders older than this are left over from a crash and are removed.
_STALE_SECONDS = 24 * 3600
_SCRATCH = "downloads"


def safe_file_name(text: str, suffix: str) -> str:
    """``text`` as a file name every system accepts, ending in ``suffix``."""
    kept = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in text)
    return (kept.strip("._") or "download")[:120] + suffix


def scratch_folder(config: Config) -> Path:
    """A new empty folder for one download's files; old leftovers (a crash mid-download) go."""
    parent = config.state_dir / _SCRATCH
    parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for entry in parent.iterdir():
        try:
            if now - entry.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="download-", dir=parent))


def _attachment(body: Iterator[bytes], file_name: str, mimetype: str, length: int | None):
    response = Response(body, mimetype=mimetype, direct_passthrough=True)
    # safe_file_name's names hold no quote or backslash, so the plain quoted form is exact
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response.headers["Cache-Control"] = "no-store"
    if length is not None:
        response.headers["Content-Length"] = str(length)
    return response


def remove_scratch(scratch: Path | None) -> None:
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def _file_blocks(path: Path, scratch: Path | None) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK_BYTES):
                yield block
    finally:
        remove_scratch(scratch)


def file_download(
    path: Path, file_name: str, mimetype: str, *, scratch: Path | None = None
) -> Response:
    """``path`` as an attachment called ``file_name``; ``scratch`` is removed afterwards."""
    try:
        length = path.stat().st_size
    except OSError:
        remove_scratch(scratch)
        raise
    response = _attachment(_file_blocks(path, scratch), file_name, mimetype, length)
    response.call_on_close(lambda: remove_scratch(scratch))
    return response


class _Outbox:
    """What the zip writer wrote since the last look: a write-only, unseekable stream."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _folder_files(folder: Path) -> list[Path]:
    files = []
    for directory, folders, names in os.walk(folder):
        folders.sort()
        files += [Path(directory) / name for name in sorted(names)]
    return files


def _nonempty(data: bytes) -> Iterator[bytes]:
    # an empty chunk could read as the end of a chunked response
    if data:
        yield data


def _zip_blocks(folder: Path, top: str, scratch: Path | None) -> Iterator[bytes]:
    outbox = _Outbox()
    try:
        # stored, not deflated: the chunks of an OME-Zarr store are compressed already
        with zipfile.ZipFile(outbox, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
            for path in _folder_files(folder):
                name = f"{top}/{path.relative_to(folder).as_posix()}"
                entry = zipfile.ZipInfo.from_file(path, name)
                entry.compress_type = zipfile.ZIP_STORED
                with open(path, "rb") as source, archive.open(entry, "w") as target:
                    while block := source.read(BLOCK_BYTES):
                        target.write(block)
                        yield from _nonempty(outbox.take())
                yield from _nonempty(outbox.take())
        yield from _nonempty(outbox.take())
    finally:
        remove_scratch(scratch)


def zip_download(
    folder: Path, top: str, file_name: str, *, scratch: Path | None = None
) -> Response:
    """The files under ``folder`` as a zip (inside it, the folder ``top``), written as sent."""
    response = _attachment(_zip_blocks(folder, top, scratch), file_name, "application/zip", None)
    response.call_on_close(lambda: remove_scratch(scratch))
    return response

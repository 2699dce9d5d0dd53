"""Read the files of a bioimage.io package (a zip or a folder) within bounds.

A package names its files in ``rdf.yaml`` by paths relative to itself. Every read here checks
two things before any byte is read: the path stays inside the package (no ``..`` out of it,
no absolute path, no link to a file elsewhere), and the file's size is within the bound its
caller gives. A zip member's size is the one its header declares; the read is also cut off
at the bound, so a member whose header understates what it unpacks to is refused as soon as
it passes the bound, never unpacked whole into memory.
"""

from __future__ import annotations

import hashlib
import posixpath
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from biosegment.errors import InputError

__all__ = [
    "PackageFiles",
    "RDF_NAME",
    "RDF_NAMES",
    "MAX_RDF_BYTES",
    "MAX_WEIGHTS_BYTES",
    "MAX_TEST_TENSOR_BYTES",
    "source_of",
]

RDF_NAME = "rdf.yaml"
#: The description's file names: format 0.5 and 0.4 (``rdf.yaml``), and the newer spelling.
RDF_NAMES = (RDF_NAME, "bioimageio.yaml")
#: A model description is text of a few kilobytes; 4 MiB leaves room for long documentation
#: pasted inline while keeping YAML parsing (several times the text in memory) small.
MAX_RDF_BYTES = 4 * 2**20
#: The state-dict weights of the largest U-Nets in the BioImage Model Zoo (3-D nnU-Net-sized
#: networks) take about 120 MB; BioSegment's own are under 10 MB. An import holds about four
#: copies at once (the file's bytes, the loaded tensors, the network, the saved copy), so
#: 256 MiB keeps one import near 1 GiB of memory.
MAX_WEIGHTS_BYTES = 256 * 2**20
#: Test tensors are one small image and its logits: BioSegment writes 256² (2-D) or 64³ (3-D);
#: other tools' 3-D tests with a few classes stay near 50 MB.
MAX_TEST_TENSOR_BYTES = 64 * 2**20
_READ_BLOCK = 2**20


def source_of(entry: dict) -> str:
    """The file a description entry names (format 0.5 ``source``, 0.4 ``uri``)."""
    return str(entry.get("source") or entry.get("uri") or "")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


class PackageFiles:
    """The files of one package, read by the paths ``rdf.yaml`` gives them."""

    def __init__(self, source: Path):
        self.source = Path(source)
        self._zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if self.source.is_file():
            try:
                self._zip = zipfile.ZipFile(self.source)
            except zipfile.BadZipFile:
                raise InputError("not a zip file or a package folder", source=self.source) from None
            names = [n for n in self._zip.namelist() if PurePosixPath(n).name in RDF_NAMES]
            if not names:
                self.close()
                raise InputError("no rdf.yaml in the package", source=self.source)
            self.rdf_name = min(names, key=len)
            self.prefix = str(PurePosixPath(self.rdf_name).parent).strip(".")
            self.rdf_name = PurePosixPath(self.rdf_name).name
        else:
            found = [n for n in RDF_NAMES if (self.source / n).is_file()]
            if not found:
                raise InputError("no rdf.yaml in the package folder", source=self.source)
            self.rdf_name = found[0]

    # -- reading ------------------------------------------------------------------------------

    def read_rdf(self) -> bytes:
        return self.read(self.rdf_name, where=self.rdf_name, limit=MAX_RDF_BYTES)

    def read_checked(self, entry: dict, *, where: str, limit: int) -> bytes:
        """The bytes of a file entry (``source`` + optional ``sha256``), checked.

        :param where: the entry's field in ``rdf.yaml``, named by every error.
        :param limit: the most bytes the file may hold.
        """
        name = source_of(entry)
        payload = self.read(name, where=where, limit=limit)
        expected = entry.get("sha256")
        if expected and hashlib.sha256(payload).hexdigest() != str(expected).lower():
            raise InputError(
                f"{name} does not match its sha256 in rdf.yaml (damaged or edited package)",
                source=self.source,
                where=where,
            )
        return payload

    def read(self, name: str, *, where: str, limit: int) -> bytes:
        """The bytes of the package file ``name``, refused when it leaves the package, is
        missing, or holds more than ``limit`` bytes (``where`` names the field)."""
        if "://" in name:
            raise InputError(
                f"{name} is a download; BioSegment imports packages whose files "
                "are inside them (download the zip first)",
                source=self.source,
                where=where,
            )
        relative = self._inside_name(name, where)
        if self._zip is not None:
            return self._read_member(relative, name, where, limit)
        return self._read_file(relative, name, where, limit)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    # -- the checks ---------------------------------------------------------------------------

    def _inside_name(self, name: str, where: str) -> str:
        """``name`` as a clean relative path, refused when it points out of the package."""
        clean = posixpath.normpath(name.replace("\\", "/")) if name else ""
        if (
            not clean
            or clean == "."
            or clean.startswith("/")
            or clean == ".."
            or clean.startswith("../")
            or PurePosixPath(clean).drive
            or ":" in PurePosixPath(clean).parts[0]
        ):
            raise InputError(
                f"{name!r} is not a path inside the package; a package names its own "
                "files relative to rdf.yaml",
                source=self.source,
                where=where,
            )
        return clean

    def _too_big(
        self, name: str, where: str, size: int, limit: int, *, declared: bool
    ) -> InputError:
        said = "declares" if declared else "holds"
        return InputError(
            f"{name} {said} {_mib(size)}, more than the {_mib(limit)} BioSegment reads for "
            "this file; it was not read",
            source=self.source,
            where=where,
        )

    def _read_member(self, relative: str, name: str, where: str, limit: int) -> bytes:
        assert self._zip is not None
        member = f"{self.prefix}/{relative}" if self.prefix else relative
        try:
            info = self._zip.getinfo(member)
        except KeyError:
            raise InputError(
                f"the package names {name} but does not contain it",
                source=self.source,
                where=where,
            ) from None
        if info.file_size > limit:
            raise self._too_big(name, where, info.file_size, limit, declared=True)
        # The header may understate what the member unpacks to: read no further than the
        # bound, so such a member costs at most the bound before it is refused.
        pieces, total = [], 0
        try:
            with self._zip.open(info) as stream:
                while block := stream.read(min(_READ_BLOCK, limit + 1 - total)):
                    pieces.append(block)
                    total += len(block)
                    if total > limit:
                        raise self._too_big(name, where, total, limit, declared=False)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            # Python stops at the declared size and then finds the checksum wrong, so a
            # member that unpacks to more than its header says ends here too.
            raise InputError(
                f"{name} cannot be unpacked ({exc}); the zip is damaged or its sizes are false",
                source=self.source,
                where=where,
            ) from None
        return b"".join(pieces)

    def _read_file(self, relative: str, name: str, where: str, limit: int) -> bytes:
        root = self.source.resolve()
        path = self.source / relative
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise InputError(
                f"{name} is a link to a file outside the package; copy the file in instead",
                source=self.source,
                where=where,
            )
        if not path.is_file():
            raise InputError(
                f"the package names {name} but does not contain it",
                source=self.source,
                where=where,
            )
        size = path.stat().st_size
        if size > limit:
            raise self._too_big(name, where, size, limit, declared=False)
        with open(path, "rb") as handle:
            payload = handle.read(limit + 1)
        if len(payload) > limit:  # grew since the size was read
            raise self._too_big(name, where, len(payload), limit, declared=False)
        return payload

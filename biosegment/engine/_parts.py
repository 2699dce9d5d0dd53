"""The parts folder that lets a segmentation resume and be shared between workers.

Each finished z-block's class ids (and, when asked for, its class probabilities) are saved as
``z00000-00016.npy`` (``z00000-00016.prob.npy``) in a hidden folder beside the output,
written under a temporary name and renamed, so a part either exists whole or not at all. A
``plan.json`` records the volume shape, the block plan and a fingerprint of the model,
volume and settings, so parts from a different run are never mixed into this one.

A block's labels part is the one record that the block is done (:func:`finished_blocks`), and
:func:`assemble_parts` is the one way from a complete parts folder to an output: it streams the
blocks in order through any :class:`~biosegment.volumes.slice_writer.SliceWriter` (a label TIFF,
an OME-Zarr image), so where the result goes is the writer passed in, not a branch here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biosegment.errors import InputError
from biosegment.volumes import LabelVolumeWriter
from biosegment.volumes.atomic import AtomicFile

if TYPE_CHECKING:  # pragma: no cover
    from biosegment.volumes.slice_writer import SliceWriter

__all__ = ["PartsPlan", "PartsFolder", "default_parts_dir", "finished_blocks", "assemble_parts"]

_PLAN_NAME = "plan.json"
_PLAN_VERSION = 1


def default_parts_dir(output: Path) -> Path:
    """``<folder>/.<name>.parts``: hidden, so the data-folder watcher ignores it."""
    output = Path(output)
    return output.with_name(f".{output.name}.parts")


@dataclass(frozen=True, slots=True)
class PartsPlan:
    """What a parts folder holds: which blocks of which volume, from which computation."""

    shape: tuple[int, int, int]
    blocks: tuple[tuple[int, int], ...]
    num_classes: int
    probabilities: bool
    fingerprint: str

    def as_dict(self) -> dict:
        return {
            "version": _PLAN_VERSION,
            "shape": list(self.shape),
            "blocks": [list(b) for b in self.blocks],
            "num_classes": self.num_classes,
            "probabilities": self.probabilities,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict, *, source: Path) -> PartsPlan:
        try:
            return cls(
                shape=_triple(data["shape"]),
                blocks=tuple((int(a), int(b)) for a, b in data["blocks"]),
                num_classes=int(data["num_classes"]),
                probabilities=bool(data["probabilities"]),
                fingerprint=str(data["fingerprint"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"unreadable parts plan ({exc})", source=source) from None


class PartsFolder:
    """One parts folder; several processes may write different blocks into it at once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def plan_path(self) -> Path:
        return self.folder / _PLAN_NAME

    def read_plan(self) -> PartsPlan | None:
        if not self.plan_path.is_file():
            return None
        try:
            data = json.loads(self.plan_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable parts plan ({exc})", source=self.plan_path) from None
        return PartsPlan.from_dict(data, source=self.plan_path)

    def adopt(self, plan: PartsPlan, *, discard_other: bool) -> None:
        """Make this folder hold parts of ``plan``.

        A folder holding another plan's parts is cleared when ``discard_other`` (one process
        owns the whole run), else refused: two different runs must not share a folder.
        """
        current = self.read_plan()
        if current == plan:
            return
        if current is not None:
            if not discard_other:
                raise InputError(
                    "parts folder belongs to a different segmentation (other "
                    "model, volume or settings)",
                    source=self.folder,
                )
            self.remove()
        self.folder.mkdir(parents=True, exist_ok=True)
        with AtomicFile(self.plan_path) as handle:
            handle.file.write(json.dumps(plan.as_dict(), indent=1).encode("utf-8"))

    def _path(self, z0: int, z1: int, kind: str) -> Path:
        suffix = ".prob.npy" if kind == "probabilities" else ".npy"
        return self.folder / f"z{z0:05d}-{z1:05d}{suffix}"

    def has(self, z0: int, z1: int, *, probabilities: bool) -> bool:
        if not self._path(z0, z1, "labels").is_file():
            return False
        return not probabilities or self._path(z0, z1, "probabilities").is_file()

    def save(self, z0: int, z1: int, labels: np.ndarray, probabilities: np.ndarray | None) -> None:
        # Probabilities first: a labels part is the marker that the whole block is done.
        if probabilities is not None:
            self._save_array(self._path(z0, z1, "probabilities"), probabilities)
        self._save_array(self._path(z0, z1, "labels"), labels)

    def load(self, z0: int, z1: int, kind: str = "labels") -> np.ndarray:
        path = self._path(z0, z1, kind)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable segmentation part ({exc})", source=path) from None

    def read_box(
        self,
        plan: PartsPlan,
        z: slice,
        y: slice,
        x: slice,
        *,
        kind: str = "labels",
        channel: int | None = None,
    ) -> np.ndarray:
        """``volume[z, y, x]`` of the labels (or one ``channel`` of the probabilities) across
        the blocks it spans; each part is mapped, not loaded, so only the box is read."""
        pieces = []
        for z0, z1 in plan.blocks:
            low, high = max(z.start, z0), min(z.stop, z1)
            if low >= high:
                continue
            path = self._path(z0, z1, kind)
            try:
                part = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(f"unreadable segmentation part ({exc})", source=path) from None
            if channel is not None:
                part = part[channel]
            pieces.append(np.asarray(part[low - z0 : high - z0, y, x]))
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]

    def missing(self, plan: PartsPlan) -> list[tuple[int, int]]:
        return [b for b in plan.blocks if not self.has(*b, probabilities=plan.probabilities)]

    def complete_plan(self) -> PartsPlan:
        """The plan of a folder whose every block is there.

        :raises InputError: when the folder holds no plan or some blocks are still missing.
        """
        plan = self.read_plan()
        if plan is None:
            raise InputError("no segmentation parts here", source=self.folder)
        missing = self.missing(plan)
        if missing:
            shown = ", ".join(f"{a}-{b}" for a, b in missing[:5])
            raise InputError(
                f"{len(missing)} of {len(plan.blocks)} blocks are not segmented "
                f"yet (z {shown}{', ...' if len(missing) > 5 else ''})",
                source=self.folder,
            )
        return plan

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _save_array(path: Path, array: np.ndarray) -> None:
        with AtomicFile(path) as handle:
            np.save(handle.file, np.ascontiguousarray(array), allow_pickle=False)


def finished_blocks(parts_dir: Path, blocks: list[tuple[int, int]]) -> set[int]:
    """Indices of ``blocks`` whose labels part is saved in ``parts_dir``."""
    folder = PartsFolder(parts_dir)
    return {
        index for index, (z0, z1) in enumerate(blocks) if folder.has(z0, z1, probabilities=False)
    }


def assemble_parts(
    parts: PartsFolder | Path,
    writer: SliceWriter | Path,
    *,
    class_id: int | None = None,
    keep: bool = False,
) -> Path:
    """Write every block of a complete parts folder through ``writer``, in order, and commit.

    :param parts: the parts folder (or its path) that :func:`segment_block` saved into.
    :param writer: an open writer of the volume's shape (the plan's: see
        :meth:`PartsFolder.complete_plan`); a path stands for a compressed uint8 label TIFF.
    :param class_id: write this class's probabilities (uint8, 255 = 1.0) instead of class ids.
    :param keep: leave the parts in place (more outputs will be made from them); by default
        they are removed once the output is committed.
    :returns: the committed output's path.
    :raises InputError: when the folder holds no plan, blocks are missing, or probabilities are
        asked of parts computed without them; nothing is written and the parts stay.
    """
    folder = parts if isinstance(parts, PartsFolder) else PartsFolder(parts)
    try:
        plan = folder.complete_plan()
        if class_id is not None and not plan.probabilities:
            raise InputError(
                "these parts were computed without probabilities", source=folder.folder
            )
        if isinstance(writer, (str, Path)):
            writer = LabelVolumeWriter(Path(writer), plan.shape, dtype="uint8")
        if tuple(writer.shape) != plan.shape:
            raise ValueError(
                f"{writer.path}: the writer's shape {tuple(writer.shape)} is not the "
                f"parts' {plan.shape}"
            )
    except BaseException:
        if not isinstance(writer, (str, Path)):
            writer.abort()
        raise
    with writer:
        for z0, z1 in plan.blocks:
            if class_id is None:
                writer.write_block(z0, folder.load(z0, z1))
            else:
                writer.write_block(z0, folder.load(z0, z1, "probabilities")[class_id])
    if not keep:
        folder.remove()
    return Path(writer.path)


def _triple(values: Iterable[int | float | str]) -> tuple[int, int, int]:
    """``(z, y, x)`` sizes from plain data; a ValueError unless there are three numbers."""
    z, y, x = (int(v) for v in values)
    return (z, y, x)

"""Turn class labels into objects: 3-D connected components, computed one slab at a time.

A segmentation says which class every voxel belongs to; a lab wants to count and measure the
mitochondria, not the mitochondrion class. :func:`label_instances` gives every connected object
of the chosen classes its own id in a uint32 instance volume, without ever holding more than
one slab of ``block_planes`` z planes:

1. Each slab's class mask is labelled with :func:`scipy.ndimage.label`; the labels get ids
   that are unique across slabs ("provisional" ids, numbered slab after slab, so that their
   order is the order of each label's first voxel in C order).
2. Where the last plane of one slab touches the first plane of the next, the two labels are the
   same object: such pairs are merged with a union-find (connected components of the graph of
   contacts), keeping only the face planes and one count per provisional id in memory.
3. Each object takes the smallest provisional id it contains as its representative. Ordering
   objects by it orders them by their first voxel, which is exactly how
   :func:`scipy.ndimage.label` numbers its labels; objects smaller than ``min_voxels`` are
   dropped and the rest numbered 1, 2, 3, ... in that order. With one class and no minimum
   size, the result therefore equals ``scipy.ndimage.label(mask, structure)``.
4. A second pass labels each slab again (the same answer, faster than keeping it) and writes
   the final ids slab by slab.

Connectivity follows scipy's ``generate_binary_structure(3, connectivity)``: 1 (the default, as
in ``scipy.ndimage.label``) joins voxels that share a face (6 neighbours), 2 also an edge (18),
3 also a corner (26, scikit-image's default). Faces are the default because EM stacks are
anisotropic (sections 3-10 times thicker than pixels), where an edge or corner contact
between sections is as likely a touch of two organelles as a continuation of one, and
because scipy labels that way four times faster. Memory beyond one slab is a few tens of
bytes per provisional label (its voxel count, class and place in the union-find) and the
contact pairs of the slab faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from biosegment.engine.volume_blocks import (
    DEFAULT_BLOCK_PLANES,
    BlockSink,
    BlockSource,
    z_ranges,
)
from biosegment.errors import InputError

__all__ = [
    "DEFAULT_CONNECTIVITY",
    "Instances",
    "label_instances",
    "connectivity_structure",
    "voxels_for_volume",
]

#: 6-connectivity: voxels sharing a face are one object (scipy.ndimage.label's default).
DEFAULT_CONNECTIVITY = 1
_MAX_ID = np.iinfo(np.uint32).max


def connectivity_structure(connectivity: int) -> np.ndarray:
    """scipy's 3x3x3 ``structure`` for ``connectivity`` 1 (6 neighbours), 2 (18) or 3 (26)."""
    if connectivity not in (1, 2, 3):
        raise InputError(
            f"connectivity must be 1 (faces), 2 (edges) or 3 (corners), got {connectivity!r}",
            where="connectivity",
        )
    return ndimage.generate_binary_structure(3, connectivity)


def voxels_for_volume(volume_nm3: float, voxel_size: Sequence[float]) -> int:
    """The fewest voxels whose volume reaches ``volume_nm3`` at ``voxel_size`` (z, y, x) nm.

    For a minimum object size given in nm³: objects of at least this many voxels are kept.
    """
    sizes = [float(v) for v in voxel_size]
    if len(sizes) != 3 or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise InputError(
            f"voxel size must be three positive numbers, got {voxel_size}", where="voxel_size"
        )
    if not (math.isfinite(volume_nm3) and volume_nm3 >= 0):
        raise InputError(
            f"a volume must be zero or more nm³, got {volume_nm3}", where="min_volume_nm3"
        )
    voxels = volume_nm3 / math.prod(sizes)
    # 1e-9 keeps a volume of exactly n voxels (up to rounding) at n, not n + 1.
    return max(0, math.ceil(voxels - 1e-9 * max(1.0, voxels)))


@dataclass(frozen=True, slots=True)
class Instances:
    """What :func:`label_instances` wrote, indexed by object id (index 0 is the background).

    ``class_of_id[i]`` is the class object ``i`` belongs to and ``voxels[i]`` its size;
    ``first_id[c]`` and ``count[c]`` say which ids class ``c`` received (consecutive, in the
    order the classes were asked for); ``removed`` counts objects dropped as too small.
    """

    class_of_id: np.ndarray
    voxels: np.ndarray
    first_id: dict[int, int]
    count: dict[int, int]
    removed: int

    @property
    def objects(self) -> int:
        """How many objects there are (the largest id)."""
        return len(self.voxels) - 1


class _Provisional:
    """Provisional ids of pass 1: each slab's labels, one id range per (slab, class)."""

    def __init__(self) -> None:
        self.voxels: list[np.ndarray] = [np.zeros(1, np.int64)]  # id 0: the background
        self.classes: list[np.ndarray] = [np.full(1, -1, np.int64)]
        self.bases: list[int] = []  # the id before each (slab, class)'s first label
        self.pairs: list[np.ndarray] = []  # (n, 2) provisional ids in contact across faces
        self.total = 1

    def add(self, labels: np.ndarray, mask: np.ndarray, count: int, class_index: int) -> int:
        base = self.total - 1
        self.bases.append(base)
        # Counting only the mask's voxels: the background is most of a slab.
        self.voxels.append(np.bincount(labels[mask], minlength=count + 1)[1:].astype(np.int64))
        self.classes.append(np.full(count, class_index, np.int64))
        self.total += count
        return base


def _face_contacts(above: np.ndarray, below: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Pairs of ids joined across a slab border: ``above`` is the last plane of one slab,
    ``below`` the first plane of the next (both as global ids, 0 for background)."""
    height, width = above.shape
    found = []
    for dy, dx in zip(*np.nonzero(structure[2]), strict=True):
        dy, dx = int(dy) - 1, int(dx) - 1
        # above[y, x] touches below[y + dy, x + dx]
        a = above[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
        b = below[max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)]
        both = (a != 0) & (b != 0)
        if both.any():
            found.append(np.stack([a[both], b[both]], axis=1))
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found)
    # One sortable key per pair: much faster than np.unique(axis=0).
    width = int(pairs[:, 1].max()) + 1
    keys = np.unique(pairs[:, 0] * width + pairs[:, 1])
    return np.stack(np.divmod(keys, width), axis=1)


def _class_indices(class_ids: Sequence[int]) -> list[int]:
    chosen = [int(c) for c in class_ids]
    if not chosen:
        raise InputError("name at least one class to split into objects", where="class_ids")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"a class is named twice in {chosen}", where="class_ids")
    return chosen


def label_instances(
    classes: Any,
    output: Any,
    *,
    class_ids: Sequence[int] = (1,),
    connectivity: int = DEFAULT_CONNECTIVITY,
    min_voxels: int = 0,
    block_planes: int = DEFAULT_BLOCK_PLANES,
) -> Instances:
    """Write the connected objects of ``class_ids`` in ``classes`` to ``output`` as uint32 ids.

    :param classes: the (z, y, x) class-label volume (or a boolean mask with ``class_ids=(1,)``
        or ``(True,)``): an array-like, a volume reader or a
        :class:`~biosegment.engine.volume_blocks.BlockSource`. It is read twice, one slab of
        ``block_planes`` planes at a time.
    :param output: where the uint32 instance volume goes, slab by slab in z order: a label
        writer, an array taking slice assignment, or a ``write(z0, block)`` function.
    :param class_ids: the classes to split; objects of the first class get the first ids.
    :param connectivity: 1, 2 or 3, as in ``scipy.ndimage.generate_binary_structure(3, n)``.
    :param min_voxels: objects with fewer voxels are dropped (see :func:`voxels_for_volume`
        for a size in nm³).
    :param block_planes: z planes per slab; peak memory is about 13 bytes per slab voxel.
    :returns: the ids written, their classes and sizes.
    :raises InputError: for a bad parameter, a volume that is not 3-D, or more objects than
        uint32 can number.
    """
    source = BlockSource.of(classes, name="classes")
    sink = BlockSink.of(output)
    chosen = _class_indices(class_ids)
    structure = connectivity_structure(connectivity)
    if min_voxels < 0:
        raise InputError(
            f"minimum size must be zero or more voxels, got {min_voxels}", where="min_voxels"
        )
    slabs = list(z_ranges(source.shape[0], block_planes))

    provisional = _Provisional()
    last_planes: list[np.ndarray | None] = [None] * len(chosen)
    for z0, z1 in slabs:
        block = source.planes(z0, z1)
        for index, class_id in enumerate(chosen):
            mask = block == class_id
            labels, count = ndimage.label(mask, structure=structure)
            base = provisional.add(labels, mask, count, index)
            first = np.where(labels[0] > 0, labels[0].astype(np.int64) + base, 0)
            previous = last_planes[index]
            if previous is not None:
                provisional.pairs.append(_face_contacts(previous, first, structure))
            last_planes[index] = np.where(labels[-1] > 0, labels[-1].astype(np.int64) + base, 0)
        del block

    final_of, instances = _number_objects(provisional, chosen, min_voxels)
    bases = iter(provisional.bases)
    for z0, z1 in slabs:
        block = source.planes(z0, z1)
        ids = np.zeros(block.shape, np.uint32)
        for class_id in chosen:
            mask = block == class_id
            labels, count = ndimage.label(mask, structure=structure)
            ids[mask] = final_of[labels[mask].astype(np.int64) + next(bases)]
        del block
        sink.write(z0, ids)
    return instances


def _number_objects(
    provisional: _Provisional, chosen: list[int], min_voxels: int
) -> tuple[np.ndarray, Instances]:
    """Merge contacts, drop small objects and give the rest their final ids.

    :returns: the final id (uint32, 0 when dropped) of every provisional id, and the summary.
    """
    total = provisional.total
    voxels = np.concatenate(provisional.voxels)
    class_index = np.concatenate(provisional.classes)
    pairs = np.concatenate(provisional.pairs) if provisional.pairs else np.zeros((0, 2), np.int64)
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(total, total)
    )
    _, component = connected_components(graph, directed=False)
    # Provisional ids are in first-voxel order, so a component's smallest id is its first voxel.
    _, root = np.unique(component, return_index=True)
    component_voxels = np.bincount(component, weights=voxels).astype(np.int64)
    component_class = class_index[root]
    keep = (component_voxels >= max(1, min_voxels)) & (component_class >= 0)
    order = np.lexsort((root, component_class))
    order = order[keep[order]]
    if len(order) > _MAX_ID:
        raise InputError(
            f"{len(order)} objects are more than a uint32 volume can number", where="classes"
        )
    final_of_component = np.zeros(len(root), np.uint32)
    final_of_component[order] = np.arange(1, len(order) + 1, dtype=np.uint32)
    final_of = final_of_component[component]

    class_of_id = np.zeros(len(order) + 1, np.int64)
    class_of_id[1:] = np.asarray(chosen, np.int64)[component_class[order]]
    sizes = np.zeros(len(order) + 1, np.int64)
    sizes[1:] = component_voxels[order]
    first_id: dict[int, int] = {}
    count: dict[int, int] = {}
    for index, class_id in enumerate(chosen):
        ids = np.flatnonzero(component_class[order] == index) + 1
        first_id[class_id] = int(ids[0]) if len(ids) else 0
        count[class_id] = len(ids)
    real = int(np.count_nonzero(component_class >= 0))
    summary = Instances(class_of_id, sizes, first_id, count, removed=real - len(order))
    return final_of, summary

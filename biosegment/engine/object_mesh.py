"""One object of an instance volume as a surface mesh, written as PLY or OBJ.

Labs look at mitochondria in 3-D (webKnossos, Blender, ParaView, napari's surface layer). A mesh
is made by marching cubes on the object's bounding box, padded by one empty voxel so the surface
closes, at the dataset's voxel size, so vertices are in nanometres (in voxels when the voxel
size is unknown) and in the volume's coordinates (x, y, z, as mesh formats expect). A large
object is decimated by marching on the share of object voxels in ``step`` x ``step`` cells of
each section (sections are already thin in z) until its faces fit ``max_faces``, which keeps
the shape and volume and drops detail evenly. Memory follows the object's box, which is
refused (naming the object) when its arrays would exceed the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import marching_cubes

from biosegment.engine.volume_blocks import BlockSource
from biosegment.errors import InputError
from biosegment.volumes.atomic import AtomicFile

__all__ = [
    "Mesh",
    "object_mesh",
    "write_mesh",
    "mesh_bytes",
    "MESH_FORMATS",
    "MESH_BYTES_PER_VOXEL",
]

#: What a mesh can be written as.
MESH_FORMATS = ("ply", "obj")
#: Bytes per box voxel while a mesh is made: the ids read, the padded float32 mask and the
#: marching cubes' own arrays.
MESH_BYTES_PER_VOXEL = 24
_MEMORY_BUDGET = 2**30
_COARSEST_STEP = 16


@dataclass(frozen=True, slots=True)
class Mesh:
    """Vertices (x, y, z; nm, or voxels without a voxel size) and triangles (vertex indices)."""

    vertices: np.ndarray
    faces: np.ndarray
    step: int
    unit: str

    @property
    def face_count(self) -> int:
        return len(self.faces)


def object_mesh(
    labels: Any,
    object_id: int,
    box: Sequence[int],
    *,
    voxel_size: Sequence[float] | None = None,
    max_faces: int = 200_000,
    memory_budget: int = _MEMORY_BUDGET,
) -> Mesh:
    """The surface of object ``object_id`` of ``labels`` within ``box``.

    :param labels: the (z, y, x) instance volume (array-like, volume reader or BlockSource).
    :param box: ``(z0, y0, x0, z1, y1, x1)`` in voxels, ends exclusive (the object table's).
    :param voxel_size: (z, y, x) in nm; None gives vertices in voxels.
    :param max_faces: decimate (a coarser marching grid) until the mesh has at most this many.
    :raises InputError: for a box outside the volume or over the memory budget, or an object
        the box does not hold.
    """
    source = BlockSource.of(labels, name="instances")
    z0, y0, x0, z1, y1, x1 = (int(v) for v in box)
    if not (0 <= z0 < z1 <= source.shape[0] and 0 <= y0 < y1 <= source.shape[1]) or not (
        0 <= x0 < x1 <= source.shape[2]
    ):
        raise InputError(f"box {tuple(box)} is not inside the volume {source.shape}", where="box")
    voxels = (z1 - z0 + 2) * (y1 - y0 + 2) * (x1 - x0 + 2)
    if voxels * MESH_BYTES_PER_VOXEL > memory_budget:
        raise InputError(
            f"object {object_id} spans {voxels} voxels; a mesh of it needs about "
            f"{voxels * MESH_BYTES_PER_VOXEL // 2**20} MiB, more than the "
            f"{memory_budget // 2**20} MiB allowed",
            where="object",
        )
    crop = source.read(slice(z0, z1), slice(y0, y1), slice(x0, x1)) == object_id
    if not crop.any():
        raise InputError(f"object {object_id} has no voxel in box {tuple(box)}", where="object")
    spacing = np.array((1.0, 1.0, 1.0) if voxel_size is None else voxel_size, np.float64)
    step = 1
    while True:
        verts, faces = _march(crop, step, spacing)
        small_enough = len(faces) <= max_faces
        if small_enough or step >= _COARSEST_STEP or min(crop.shape[1:]) <= 2 * step:
            break
        step *= 2
    # back to the volume's coordinates: the pooled cells' centres and the one-cell padding
    shift = np.array([z0 - 1.0, y0 - step + (step - 1) / 2, x0 - step + (step - 1) / 2])
    vertices = (verts.astype(np.float64) + shift * spacing)[:, ::-1].astype(np.float32)
    # marching cubes winds its triangles for (z, y, x); written as (x, y, z) (a mirror image)
    # the same order faces outwards, which the tests check by the sign of the volume
    triangles = np.ascontiguousarray(faces, dtype=np.int32)
    unit = "voxel" if voxel_size is None else "nanometer"
    return Mesh(vertices=vertices, faces=triangles, step=step, unit=unit)


def _march(mask: np.ndarray, step: int, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes at level 0.5 on the share of object voxels in ``step`` x ``step`` cells
    of each plane (sections are already thin in z), padded by an empty cell all round."""
    z, y, x = mask.shape
    ny, nx = -(-y // step), -(-x // step)
    padded = np.zeros((z, ny * step, nx * step), np.float32)
    padded[:, :y, :x] = mask
    share = padded.reshape(z, ny, step, nx, step).mean(axis=(2, 4))
    grid = np.zeros((z + 2, ny + 2, nx + 2), np.float32)
    grid[1:-1, 1:-1, 1:-1] = share
    cell = (float(spacing[0]), float(spacing[1]) * step, float(spacing[2]) * step)
    verts, faces, _, _ = marching_cubes(grid, level=0.5, spacing=cell)
    return verts, faces


def write_mesh(mesh: Mesh, path: Path, *, fmt: str | None = None) -> Path:
    """Write ``mesh`` as binary PLY or as OBJ (chosen by ``fmt`` or the file's suffix),
    atomically."""
    path = Path(path)
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen not in MESH_FORMATS:
        raise InputError(
            f"mesh format must be one of {', '.join(MESH_FORMATS)}, not {chosen!r}", where="format"
        )
    with AtomicFile(path) as target:
        target.file.write(mesh_bytes(mesh, chosen))
    return path


def mesh_bytes(mesh: Mesh, fmt: str) -> bytes:
    """The file content of ``mesh`` as ``ply`` (binary, little-endian) or ``obj`` (text)."""
    if fmt == "ply":
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            f"comment BioSegment object mesh, unit {mesh.unit}\n"
            f"element vertex {len(mesh.vertices)}\n"
            "property float x\nproperty float y\nproperty float z\n"
            f"element face {len(mesh.faces)}\n"
            "property list uchar int vertex_indices\nend_header\n"
        ).encode("ascii")
        vertices = np.ascontiguousarray(mesh.vertices, "<f4").tobytes()
        rows = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        rows["n"] = 3
        rows["v"] = mesh.faces
        return header + vertices + rows.tobytes()
    if fmt == "obj":
        lines = [f"# BioSegment object mesh, unit {mesh.unit}"]
        lines += [f"v {x:.6g} {y:.6g} {z:.6g}" for x, y, z in mesh.vertices.tolist()]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces.tolist()]
        return ("\n".join(lines) + "\n").encode("ascii")
    raise InputError(f"mesh format must be one of {', '.join(MESH_FORMATS)}", where="format")

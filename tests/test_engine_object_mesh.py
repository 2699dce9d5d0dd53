"""Object meshes: closed, outward-facing surfaces in nanometres at the object's place, decimated
to a face budget, written as PLY and OBJ that trimesh (the Python mesh library) reads back."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from biosegment.engine.object_mesh import object_mesh, write_mesh
from biosegment.errors import InputError

VOXEL = (30.0, 4.0, 4.0)


def ball(shape=(40, 120, 140), centre=(20, 60, 70), radius_nm=120.0) -> np.ndarray:
    z, y, x = np.indices(shape).astype(np.float64)
    dz, dy, dx = (
        (z - centre[0]) * VOXEL[0],
        (y - centre[1]) * VOXEL[1],
        (x - centre[2]) * VOXEL[2],
    )
    labels = np.zeros(shape, np.uint32)
    labels[dz**2 + dy**2 + dx**2 <= radius_nm**2] = 7
    labels[:3, :5, :5] = 2  # another object in the corner, outside the ball's box
    return labels


def box_of(labels: np.ndarray, object_id: int) -> tuple[int, ...]:
    where = np.argwhere(labels == object_id)
    return (*where.min(axis=0), *(where.max(axis=0) + 1))


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_a_ball_becomes_a_closed_mesh_of_its_volume_at_its_place(tmp_path, fmt):
    labels = ball()
    mesh = object_mesh(labels, 7, box_of(labels, 7), voxel_size=VOXEL)
    path = write_mesh(mesh, tmp_path / f"object-7.{fmt}")
    loaded = trimesh.load(path, file_type=fmt, process=True)
    assert loaded.is_watertight
    assert len(loaded.faces) == mesh.face_count
    expected = (labels == 7).sum() * np.prod(VOXEL)
    # outward normals give a positive volume, within the voxelisation's error
    assert loaded.volume == pytest.approx(expected, rel=0.1)
    # x, y, z in nm at the object's place in the volume
    np.testing.assert_allclose(loaded.centroid, [70 * 4.0, 60 * 4.0, 20 * 30.0], atol=8.0)


def test_a_large_object_is_decimated_to_the_face_budget(tmp_path):
    labels = ball(shape=(60, 300, 300), centre=(30, 150, 150), radius_nm=500.0)
    full = object_mesh(labels, 7, box_of(labels, 7), voxel_size=VOXEL, max_faces=10**7)
    small = object_mesh(labels, 7, box_of(labels, 7), voxel_size=VOXEL, max_faces=5000)
    assert full.step == 1 and small.step > 1
    assert small.face_count <= 5000 < full.face_count
    loaded = trimesh.load(write_mesh(small, tmp_path / "small.ply"), process=True)
    assert loaded.volume == pytest.approx(full_volume(full), rel=0.15)


def full_volume(mesh) -> float:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=True).volume


def test_bad_requests_name_what_is_wrong(tmp_path):
    labels = ball()
    with pytest.raises(InputError) as caught:
        object_mesh(labels, 7, (0, 0, 0, 50, 10, 10))
    assert caught.value.where == "box"
    with pytest.raises(InputError, match="no voxel") as caught:
        object_mesh(labels, 9, box_of(labels, 7))
    with pytest.raises(InputError, match="MiB") as caught:
        object_mesh(labels, 7, box_of(labels, 7), memory_budget=1000)
    with pytest.raises(InputError) as caught:
        write_mesh(object_mesh(labels, 7, box_of(labels, 7)), tmp_path / "x.stl")
    assert caught.value.where == "format"

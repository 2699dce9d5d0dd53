"""The object table against scikit-image's regionprops_table, with objects crossing slabs.

Every measurement is computed from sums accumulated slab by slab; regionprops sees the whole
volume at once. They must agree to 1e-6, and the surface area, summed cube by cube, must equal
the marching-cubes mesh of each whole object to 1e-6 (the issue asks 1 %; the mesh's float32
vertices are the limit), whatever the slab size.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from skimage.measure import marching_cubes, mesh_surface_area, regionprops_table

from biosegment.engine.instances import label_instances
from biosegment.engine.object_table import COLUMNS, measure_objects, write_object_table
from biosegment.errors import InputError

PROPERTIES = ["label", "area", "centroid", "bbox", "intensity_mean"]
AXES = ["axis_major_length", "axis_minor_length"]
VOXEL_SIZE = (30.0, 6.0, 8.0)


def _ellipsoids(seed: int, shape=(36, 44, 50), count=14) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    mask = np.zeros(shape, bool)
    for _ in range(count):
        centre = rng.uniform(0, shape)
        radii = rng.uniform(1.5, 9, 3)
        mask |= (
            ((z - centre[0]) / radii[0]) ** 2
            + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2
        ) <= 1
    return mask


@pytest.fixture(scope="module")
def scene():
    mask = _ellipsoids(11)
    classes = mask.astype(np.uint8) * 2
    ids = np.zeros(mask.shape, np.uint32)
    found = label_instances(classes, ids, class_ids=(2,), block_planes=5)
    image = np.random.default_rng(4).integers(0, 4000, mask.shape).astype(np.uint16)
    return ids, found, image


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("block_planes", [1, 4, 7, 100])
def test_measurements_equal_regionprops_table(scene, block_planes):
    ids, found, image = scene
    table = measure_objects(
        ids,
        class_of_id=found.class_of_id,
        intensity=image,
        voxel_size=VOXEL_SIZE,
        block_planes=block_planes,
    )
    voxels = regionprops_table(ids, image, properties=PROPERTIES + AXES)
    nm = regionprops_table(ids, image, properties=PROPERTIES + AXES, spacing=VOXEL_SIZE)
    c = table.columns
    assert len(table) == found.objects >= 8
    assert c["id"].tolist() == voxels["label"].tolist()
    assert set(c["class"].tolist()) == {2}
    _close(c["voxels"], voxels["area"])
    _close(c["volume_nm3"], nm["area"])
    for axis, name in enumerate("zyx"):
        _close(c[f"centroid_{name}"], voxels[f"centroid-{axis}"])
        _close(c[f"centroid_{name}_nm"], nm[f"centroid-{axis}"])
        assert c[f"bbox_{name}0"].tolist() == voxels[f"bbox-{axis}"].tolist()
        assert c[f"bbox_{name}1"].tolist() == voxels[f"bbox-{axis + 3}"].tolist()
        _close(c[f"bbox_{name}0_nm"], voxels[f"bbox-{axis}"] * VOXEL_SIZE[axis])
    _close(c["mean_intensity"], voxels["intensity_mean"])
    _close(c["major_axis_length"], voxels["axis_major_length"])
    _close(c["minor_axis_length"], voxels["axis_minor_length"])
    _close(c["major_axis_length_nm"], nm["axis_major_length"])
    _close(c["minor_axis_length_nm"], nm["axis_minor_length"])


def test_objects_crossing_slab_borders_are_measured_whole(scene):
    ids, found, _ = scene
    table = measure_objects(ids, block_planes=1)
    depth = table.columns["bbox_z1"] - table.columns["bbox_z0"]
    assert depth.max() >= 5  # objects spanning several one-plane slabs
    assert table.columns["voxels"].tolist() == found.voxels[1:].tolist()


def _whole_mesh_area(mask: np.ndarray, spacing) -> float:
    vertices, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(float), 0.5, spacing=spacing)
    return float(mesh_surface_area(vertices, faces))


@pytest.mark.parametrize("block_planes", [1, 6, 100])
def test_surface_areas_match_the_mesh_of_each_whole_object(scene, block_planes):
    ids, _, _ = scene
    table = measure_objects(ids, voxel_size=VOXEL_SIZE, block_planes=block_planes)
    for row, object_id in enumerate(table.columns["id"]):
        mask = ids == object_id
        expected_nm = _whole_mesh_area(mask, VOXEL_SIZE)
        expected_voxels = _whole_mesh_area(mask, (1.0, 1.0, 1.0))
        assert table.columns["surface_area_nm2"][row] == pytest.approx(expected_nm, rel=1e-6)
        assert table.columns["surface_area_voxels"][row] == pytest.approx(expected_voxels, rel=1e-6)


def test_a_ball_has_about_its_area_and_a_sphericity_near_one():
    radius = 12
    z, y, x = np.ogrid[:32, :32, :32]
    ids = ((z - 16) ** 2 + (y - 16) ** 2 + (x - 16) ** 2 <= radius**2).astype(np.uint32)
    row = next(measure_objects(ids, voxel_size=(2.0, 2.0, 2.0)).rows())
    # The mesh of a voxelised ball follows its steps: a few percent more area than the ball.
    smooth = 4 * math.pi * (2 * radius) ** 2
    assert smooth < row["surface_area_nm2"] < 1.1 * smooth
    assert 0.9 < row["sphericity"] < 1.0
    elongated = np.zeros((10, 10, 60), np.uint32)
    elongated[3:7, 3:7, 5:55] = 1
    assert next(measure_objects(elongated).rows())["sphericity"] < 0.6


def test_unknown_voxel_size_class_and_image_leave_their_columns_empty(tmp_path):
    ids = np.zeros((4, 5, 6), np.uint32)
    ids[1:3, 1:3, 1:4] = 7
    table = measure_objects(ids)
    row = next(table.rows())
    assert row["id"] == 7 and row["voxels"] == 12 and row["class"] == -1
    assert row["volume_nm3"] is None and row["centroid_z_nm"] is None
    assert row["mean_intensity"] is None and row["surface_area_nm2"] is None
    assert row["surface_area_voxels"] > 0 and row["sphericity"] > 0
    path = write_object_table(table, tmp_path / "objects.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["id"] == "7" and rows[0]["volume_nm3"] == "" and rows[0]["class"] == "-1"


def test_the_csv_holds_every_column_and_row_and_is_written_atomically(scene, tmp_path):
    ids, found, image = scene
    table = measure_objects(
        ids, class_of_id=found.class_of_id, intensity=image, voxel_size=VOXEL_SIZE
    )
    path = tmp_path / "objects.csv"
    write_object_table(table, path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert len(rows) == len(table)
    for row, expected in zip(rows, table.rows(), strict=True):
        assert int(row["id"]) == expected["id"]
        assert float(row["centroid_x_nm"]) == expected["centroid_x_nm"]  # full precision
        assert float(row["surface_area_nm2"]) == expected["surface_area_nm2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.csv"]  # no temporary left


def test_an_existing_table_is_kept_unless_replacing_is_asked(tmp_path):
    ids = np.ones((2, 2, 2), np.uint32)
    path = tmp_path / "objects.csv"
    path.write_text("a person's notes\n")
    with pytest.raises(InputError, match="objects.csv"):
        write_object_table(measure_objects(ids), path)
    assert path.read_text() == "a person's notes\n"
    write_object_table(measure_objects(ids), path, replace=True)
    assert path.read_text().startswith("id,class,voxels")


def test_bad_inputs_name_what_is_wrong():
    ids = np.ones((2, 3, 3), np.uint32)
    with pytest.raises(InputError) as error:
        measure_objects(ids, intensity=np.zeros((2, 3, 4)))
    assert error.value.where == "intensity"
    with pytest.raises(InputError) as error:
        measure_objects(ids, voxel_size=(1.0, -1.0, 1.0))
    assert error.value.where == "voxel_size"
    with pytest.raises(InputError) as error:
        measure_objects(ids, class_of_id=[0])
    assert error.value.where == "class_of_id"
    with pytest.raises(InputError) as error:
        measure_objects(np.ones((2, 3, 3), np.float32))
    assert error.value.where == "labels"

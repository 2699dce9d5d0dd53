"""API: the regions the editor's structure-following fills paint, on synthetic slices with known
objects: "take this object" answers exactly the connected component under the click, and the
edge fill stays inside the cell whose dark walls surround the click."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.webui.fill_regions import MAX_REGION_PIXELS
from webui_fixtures import Http, config_for, make_demo_folder, serve

CELL = 64  # cells of 64 x 64 pixels, walls 4 pixels wide on their top and left sides
SIZE = 3 * CELL


def cells_image() -> np.ndarray:
    """Bright, noisy cells between dark walls (stained EM in miniature)."""
    rng = np.random.default_rng(3)
    image = rng.normal(170, 18, size=(2, SIZE, SIZE))
    for start in range(0, SIZE, CELL):
        image[:, start : start + 4, :] = rng.normal(50, 10, size=(2, 4, SIZE))
        image[:, :, start : start + 4] = rng.normal(50, 10, size=(2, SIZE, 4))
    return np.clip(image, 0, 255).astype(np.uint8)


def known_objects() -> np.ndarray:
    labels = np.zeros((2, SIZE, SIZE), dtype=np.uint8)
    labels[:, 20:60, 20:60] = 1  # object A
    labels[:, 60:70, 30:40] = 1  # joined to A below it
    labels[:, 100:150, 100:150] = 1  # object B: the same class, not connected to A
    labels[:, 150:170, 100:120] = 2  # another class touching B
    return labels


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, photometric="minisblack")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("regions") / "data")
    write(root / "EM" / "cells" / "cells.tif", cells_image())
    write(root / "segmentations" / "cells" / "model-a" / "labels.tif", known_objects())
    huge = 2100  # one class over more pixels than a click may fill
    write(root / "EM" / "huge" / "huge.tif", np.full((1, huge, huge), 128, dtype=np.uint8))
    write(
        root / "segmentations" / "huge" / "flat" / "labels.tif",
        np.zeros((1, huge, huge), dtype=np.uint8),
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        yield Http(server.url)


def region_mask(answer: dict, shape=(SIZE, SIZE)) -> np.ndarray:
    flat = np.zeros(shape[0] * shape[1], dtype=bool)
    runs = answer["runs"]
    for start, length in zip(runs[0::2], runs[1::2]):
        assert length > 0
        flat[start : start + length] = True
    assert int(flat.sum()) == answer["pixels"]
    return flat.reshape(shape)


def test_take_this_object_answers_exactly_the_connected_component(site):
    reply = site.get(
        "/api/v1/datasets/cells/regions/1?mode=object&y=30&x=30&layer=segmentation:model-a"
    )
    assert reply.status == 200, reply.body
    answer = reply.json()
    assert answer["class_id"] == 1 and answer["source"] == "segmentation model-a"
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[20:60, 20:60] = True
    expected[60:70, 30:40] = True
    np.testing.assert_array_equal(region_mask(answer), expected)
    # the other object of the same class, and the class beside it, are their own objects
    other = site.get(
        "/api/v1/datasets/cells/regions/1?mode=object&y=160&x=110&layer=segmentation:model-a"
    )
    assert other.json()["class_id"] == 2 and other.json()["pixels"] == 20 * 20


def test_the_edge_fill_stays_inside_the_walled_cell_it_was_clicked_in(site):
    reply = site.get("/api/v1/datasets/cells/regions/0?mode=edges&y=96&x=96")
    assert reply.status == 200, reply.body
    filled = region_mask(reply.json())
    cell = np.zeros((SIZE, SIZE), dtype=bool)
    cell[CELL + 4 : 2 * CELL, CELL + 4 : 2 * CELL] = True  # the interior of the middle cell
    walls_around = np.zeros_like(cell)
    walls_around[CELL - 2 : 2 * CELL + 6, CELL - 2 : 2 * CELL + 6] = True  # into each wall
    assert (filled & cell).sum() >= 0.9 * cell.sum()  # the cell, not a speck of it
    assert not (filled & ~walls_around).any()  # nothing beyond the walls
    # bounds (the part on screen) cut the fill
    cut = site.get("/api/v1/datasets/cells/regions/0?mode=edges&y=96&x=96&bounds=64,64,100,191")
    assert cut.status == 200
    assert region_mask(cut.json())[101:].sum() == 0


def test_a_region_over_the_limit_is_refused_with_the_reason(site):
    reply = site.get("/api/v1/datasets/huge/regions/0?mode=object&y=5&x=5&layer=segmentation:flat")
    assert reply.status == 413
    assert reply.json()["field"] == "y" and str(MAX_REGION_PIXELS) in reply.json()["error"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("mode=object&y=1&x=1", "layer"),
        ("mode=object&y=1&x=1&layer=annotation:x", "layer"),
        ("mode=object&y=1&x=1&layer=segmentation:nope", None),
        ("mode=object&y=1&x=1&layer=live:no-such-job", "job_id"),
        ("mode=edges&y=999&x=1", "y"),
        ("mode=edges&y=1&x=1&bounds=5,5,1,1", "bounds"),
        ("mode=edges&y=1&x=1&bounds=a,b", "bounds"),
        ("mode=edges&y=150&x=150&bounds=0,0,100,100", "bounds"),
        ("mode=spray&y=1&x=1", "mode"),
    ],
)
def test_bad_requests_name_the_field(site, query, field):
    reply = site.get(f"/api/v1/datasets/cells/regions/0?{query}")
    assert reply.status in (400, 404), reply.body
    if field is not None:
        assert reply.json()["field"] == field
    else:
        assert reply.status == 404 and "nope" in reply.json()["error"]

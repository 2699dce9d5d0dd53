"""API: a segmentation's objects over real HTTP: the table paged, sorted and filtered, its CSV,
the histogram of sizes, an object's outline on a slice, the object id under a voxel, the object
scores beside the pixel scores, and the refusals (bad parameters, unknown objects, damaged or
too large tables, a card pointing outside the data folder)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import numpy as np
import pytest

from biosegment.catalog import open_catalog, refresh
from object_fixtures import (
    BOXES,
    OBJECT_SCORES,
    SPLIT_SCORES,
    write_engine_segmentation,
    write_objects_segmentation,
)
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

API = "/api/v1"
NOT_SCORED = "not scored: the model trained on every slice of this dataset"
SEGMENTATIONS = f"{API}/datasets/{DEMO_DATASET}/segmentations"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("objects") / "data")
    instances = write_objects_segmentation(root, DEMO_DATASET, "objs")
    write_objects_segmentation(root, DEMO_DATASET, "in zarr", zarr=True)
    write_objects_segmentation(root, DEMO_DATASET, "compressed", compressed=True)
    write_objects_segmentation(
        root,
        DEMO_DATASET,
        "no voxel size",
        voxel_known=False,
        card_extra={"object_scores": None, "object_scores_note": NOT_SCORED},
    )
    engine = write_engine_segmentation(root, DEMO_DATASET, "by the engine")
    plain = root / "segmentations" / DEMO_DATASET / "plain"
    plain.mkdir(parents=True)
    (plain / "labels.tif").write_bytes(
        (root / "segmentations" / DEMO_DATASET / "objs" / "labels.tif").read_bytes()
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        yield Http(server.url), root, instances, engine


def _objects(http, query="", name="objs"):
    return http.get(f"{SEGMENTATIONS}/{name.replace(' ', '%20')}/objects{query}")


def _ids(reply):
    assert reply.status == 200, reply.body
    return [row["id"] for row in reply.json()["rows"]]


def _volume(object_id):
    _, z0, z1, y0, y1, x0, x1 = BOXES[object_id]
    return (z1 - z0) * (y1 - y0) * (x1 - x0)


def test_pages_of_the_table_with_every_column_and_the_total(site):
    http, *_ = site
    first = _objects(http, "?per_page=4")
    document = first.json()
    assert _ids(first) == [1, 2, 3, 4]
    assert document["total"] == document["objects"] == 6
    assert document["columns"][:4] == ["id", "class", "class_name", "voxels"]
    row = document["rows"][0]
    assert row["voxels"] == _volume(1) and row["class_name"] == "membrane"
    assert row["volume_nm3"] == pytest.approx(_volume(1) * 800.0)
    assert (row["bbox_z0"], row["bbox_y1"], row["centroid_x"]) == (0, 20, 37.0)
    assert document["instances"] is True and document["volume_known"] is True
    assert document["object_scores"] == {
        "object_scores": OBJECT_SCORES,
        "object_scores_split": SPLIT_SCORES,
    }
    assert {c["id"]: (c["name"], c["objects"]) for c in document["classes"]} == {
        1: ("membrane", 4),
        2: ("vesicle", 2),
    }
    assert _ids(_objects(http, "?per_page=4&page=2")) == [5, 6]
    assert _ids(_objects(http, "?per_page=4&page=3")) == []


def test_sorting_by_any_column_either_way(site):
    http, *_ = site
    by_size = sorted(BOXES, key=_volume)
    assert _ids(_objects(http, "?sort=voxels")) == by_size
    assert _ids(_objects(http, "?sort=voxels&order=desc")) == by_size[::-1]
    assert _ids(_objects(http, "?sort=sphericity&order=desc")) == [1, 2, 3, 4, 5, 6]
    # text sorts as text, ties keep the table's order
    assert _ids(_objects(http, "?sort=class_name&order=desc")) == [3, 5, 1, 2, 4, 6]


def test_filters_by_class_and_size(site):
    http, *_ = site
    assert _ids(_objects(http, "?class=2")) == [3, 5]
    assert _ids(_objects(http, "?class=1,2&min_voxels=100")) == [
        i for i in BOXES if _volume(i) >= 100
    ]
    reply = _objects(http, f"?max_voxels={_volume(1)}&sort=voxels")
    assert _ids(reply) == [i for i in sorted(BOXES, key=_volume) if _volume(i) <= _volume(1)]
    assert reply.json()["total"] == len(_ids(reply))
    big = _volume(6) * 800.0
    assert _ids(_objects(http, f"?min_volume_nm3={big}&class=1")) == [6]
    assert _ids(_objects(http, "?class=1&max_volume_nm3=13000")) == [4]


def test_bad_parameters_are_refused_naming_the_field(site):
    http, *_ = site
    for query, field in (
        ("?sort=colour", "sort"),
        ("?order=sideways", "order"),
        ("?per_page=5000", "per_page"),
        ("?page=0", "page"),
        ("?class=mito", "class"),
        ("?min_voxels=-1", "min_voxels"),
        ("?colour=red", "colour"),
    ):
        reply = _objects(http, query)
        assert reply.status == 400, (query, reply.body)
        assert reply.json()["field"] == field, (query, reply.json())
    # a volume filter where the voxel size is unknown says so, naming the field
    reply = _objects(http, "?min_volume_nm3=5", name="no voxel size")
    assert reply.status == 400 and reply.json()["field"] == "min_volume_nm3"
    assert "voxel size is unknown" in reply.json()["error"]
    assert _ids(_objects(http, "?min_voxels=1000", name="no voxel size")) == [3, 6]


def test_unknown_segmentations_and_those_without_objects_are_not_found(site):
    http, *_ = site
    assert _objects(http, name="nothing here").status == 404
    reply = _objects(http, name="plain")
    assert reply.status == 404 and "objects.csv" in reply.json()["error"]
    assert http.get(f"{SEGMENTATIONS}/plain/objects/1/outline").status == 404
    assert http.get(f"{SEGMENTATIONS}/objs/objects/99/outline").status == 404
    assert http.get(f"{SEGMENTATIONS}/plain/objects.csv").status == 404


def test_the_csv_download_holds_the_filtered_sorted_table(site):
    http, *_ = site
    reply = http.get(f"{SEGMENTATIONS}/objs/objects.csv?class=1&sort=voxels&order=desc")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert reply.headers["Content-Disposition"] == (
        f'attachment; filename="{DEMO_DATASET}-objs-objects.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(reply.body.decode())))
    listed = _objects(http, "?class=1&sort=voxels&order=desc").json()
    assert [int(r["id"]) for r in rows] == [r["id"] for r in listed["rows"]] == [6, 1, 2, 4]
    assert list(rows[0]) == listed["columns"]
    assert float(rows[0]["volume_nm3"]) == listed["rows"][0]["volume_nm3"]
    unknown = http.get(f"{SEGMENTATIONS}/no%20voxel%20size/objects.csv").body.decode()
    assert next(csv.DictReader(io.StringIO(unknown)))["volume_nm3"] == ""
    assert http.get(f"{SEGMENTATIONS}/objs/objects.csv?sort=nope").status == 400


def test_the_histogram_of_volumes_in_log_bins(site):
    http, *_ = site
    reply = http.get(f"{SEGMENTATIONS}/objs/objects/histogram?bins=4")
    assert reply.status == 200, reply.body
    histogram = reply.json()
    assert histogram["measure"] == "volume_nm3"
    edges = np.array(histogram["edges"])
    assert len(edges) == 5 and edges[0] == pytest.approx(min(map(_volume, BOXES)) * 800.0)
    ratios = edges[1:] / edges[:-1]
    assert np.allclose(ratios, ratios[0])  # log-spaced
    assert sum(histogram["counts"]) == 6 and histogram["left_out"] == 0
    vesicles = http.get(f"{SEGMENTATIONS}/objs/objects/histogram?class=2&measure=voxels").json()
    assert vesicles["measure"] == "voxels" and sum(vesicles["counts"]) == vesicles["total"] == 2
    no_size = http.get(f"{SEGMENTATIONS}/no%20voxel%20size/objects/histogram").json()
    assert no_size["measure"] == "voxels"
    reply = http.get(f"{SEGMENTATIONS}/no%20voxel%20size/objects/histogram?measure=volume_nm3")
    assert reply.status == 400 and reply.json()["field"] == "measure"
    assert http.get(f"{SEGMENTATIONS}/objs/objects/histogram?bins=0").status == 400


@pytest.mark.parametrize("name", ["objs", "in zarr", "compressed"])
def test_an_objects_outline_on_a_slice(site, name):
    http, *_ = site
    base = f"{SEGMENTATIONS}/{name.replace(' ', '%20')}/objects"
    reply = http.get(f"{base}/1/outline?z=2")
    assert reply.status == 200, reply.body
    outline = reply.json()
    (polygon,) = outline["polygons"]
    points = np.array(polygon)
    # around the box's pixels, half a pixel out: rows 10..19, columns 30..44
    assert points[:, 0].min() == pytest.approx(9.5) and points[:, 0].max() == pytest.approx(19.5)
    assert points[:, 1].min() == pytest.approx(29.5) and points[:, 1].max() == pytest.approx(44.5)
    assert polygon[0] == polygon[-1]  # closed
    # default slice: the centroid's; not on a slice: no polygon
    assert http.get(f"{base}/3/outline").json()["z"] == 3
    assert http.get(f"{base}/1/outline?z=4").json()["polygons"] == []
    reply = http.get(f"{base}/1/outline?z=5")
    assert reply.status == 400 and reply.json()["field"] == "z"
    assert http.get(f"{base}/1/outline?z=-1").status == 400


def test_the_voxel_route_names_the_object_under_the_cursor(site):
    http, *_ = site
    layers = "segmentation:objs,segmentation:plain"
    inside = http.get(f"{API}/datasets/{DEMO_DATASET}/voxel?z=2&y=210&x=310&layers={layers}")
    assert inside.status == 200, inside.body
    assert inside.json()["objects"] == {"segmentation:objs": 3}  # plain has no instances
    assert inside.json()["labels"]["segmentation:objs"] == 2
    outside = http.get(f"{API}/datasets/{DEMO_DATASET}/voxel?z=0&y=0&x=0&layers={layers}")
    assert outside.json()["objects"] == {"segmentation:objs": 0}


def test_object_scores_show_beside_the_pixel_scores_and_the_viewer_knows_the_tables(site):
    http, *_ = site
    scores = http.get(f"{SEGMENTATIONS}/objs/scores").json()
    assert "mean_iou" in scores and scores["objects"] == {
        "object_scores": OBJECT_SCORES,
        "object_scores_split": SPLIT_SCORES,
    }
    assert http.get(f"{SEGMENTATIONS}/plain/scores").json()["objects"] == {}
    unscored = http.get(f"{SEGMENTATIONS}/no%20voxel%20size/scores").json()["objects"]
    assert unscored == {"object_scores_split": SPLIT_SCORES, "object_scores_note": NOT_SCORED}
    document = http.get(f"{API}/datasets/{DEMO_DATASET}").json()
    has = {
        layer["name"]: layer["objects"]
        for layer in document["layers"]
        if layer["kind"] == "segmentation"
    }
    assert has == {
        "objs": True,
        "in zarr": True,
        "no voxel size": True,
        "by the engine": True,
        "compressed": True,
        "plain": False,
    }


def test_a_table_beyond_the_row_bound_is_refused_naming_the_file(site):
    _, root, *_ = site
    config = config_for(root)
    small = dataclasses.replace(config, limits=dataclasses.replace(config.limits, object_rows=3))
    with serve(small) as limited:
        reply = _objects(Http(limited.url))
    assert reply.status == 413, reply.body
    message = reply.json()["error"]
    assert f"segmentations/{DEMO_DATASET}/objs/objects.csv" in message
    assert "object_rows = 3" in message


def test_a_rewritten_table_is_read_again_and_a_damaged_one_named(site, tmp_path):
    http, root, *_ = site
    folder = root / "segmentations" / DEMO_DATASET / "objs"
    table = folder / "objects.csv"
    before = table.read_text()
    try:
        lines = before.splitlines()
        table.write_text("\n".join(lines[:3]) + "\n")
        os.utime(table, ns=(1, 1))  # a new version even within the file system's time step
        assert _ids(_objects(http)) == [1, 2]
        table.write_text("\n".join(lines[:3] + ["7,1,membrane"]) + "\n")
        reply = _objects(http)
        assert reply.status == 400
        assert f"{DEMO_DATASET}/objs/objects.csv: line 4" in reply.json()["error"]
        table.write_text("id," + ",".join(f"m{i}" for i in range(1000)) + "\n")
        reply = _objects(http)
        assert reply.status == 400 and "1001 columns" in reply.json()["error"]
        table.write_text("name,voxels\nmito,3\n")
        reply = _objects(http)
        assert reply.status == 400 and "no id column" in reply.json()["error"]
        table.write_text("")
        assert "is empty" in _objects(http).json()["error"]
    finally:
        table.write_text(before)
    assert _ids(_objects(http)) == list(BOXES)


def test_a_card_naming_a_file_outside_the_data_folder_is_refused(site):
    http, root, *_ = site
    folder = root / "segmentations" / DEMO_DATASET / "escaping"
    folder.mkdir()
    (folder / "labels.tif").write_bytes(
        (root / "segmentations" / DEMO_DATASET / "objs" / "labels.tif").read_bytes()
    )
    (folder / "segmentation.json").write_text(json.dumps({"objects": "../../../../etc/passwd"}))
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    reply = _objects(http, name="escaping")
    assert reply.status == 400, reply.body
    assert "'..'" in reply.json()["error"]
    assert "root:" not in reply.body.decode()


def test_the_table_and_instances_the_engine_writes_are_served(site):
    http, *_, (instances, objects) = site
    name = "by%20the%20engine"
    listed = _objects(http, "?sort=voxels&order=desc&per_page=1000", name=name).json()
    assert listed["total"] == listed["objects"] == objects > 5
    assert "surface_area_nm2" in listed["columns"] and listed["volume_known"] is True
    biggest = listed["rows"][0]
    assert biggest["voxels"] == int((instances == biggest["id"]).sum())
    assert [c["name"] for c in listed["classes"]] == ["membrane"]  # the project's class name
    z = round(biggest["centroid_z"])
    outline = http.get(f"{SEGMENTATIONS}/{name}/objects/{biggest['id']}/outline").json()
    assert outline["z"] == z
    on_slice = np.argwhere(instances[z] == biggest["id"])
    points = np.concatenate([np.array(polygon) for polygon in outline["polygons"]])
    assert points.min(axis=0) == pytest.approx(on_slice.min(axis=0) - 0.5)
    assert points.max(axis=0) == pytest.approx(on_slice.max(axis=0) + 0.5)
    y, x = on_slice[0]
    voxel = http.get(
        f"{API}/datasets/{DEMO_DATASET}/voxel?z={z}&y={y}&x={x}&layers=segmentation:{name}"
    )
    assert voxel.json()["objects"] == {"segmentation:by the engine": biggest["id"]}

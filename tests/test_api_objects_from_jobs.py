"""API: the objects a real segment job counts (a real Huey consumer, the tiny model) are listed,
outlined and named under the cursor, from a TIFF and from an OME-Zarr segmentation, with the
object scores the job wrote beside the pixel scores."""

from __future__ import annotations

import dataclasses
import io
from urllib.parse import quote

import numpy as np
import pytest
import tifffile
import trimesh
import zarr

from job_fixtures import DEMO_DATASET, make_folder
from test_jobs_ome_zarr_output import run_job
from webui_fixtures import Http, serve


def _instances(folder) -> np.ndarray:
    if (folder / "instances.tif").is_file():
        return tifffile.imread(folder / "instances.tif")
    return np.asarray(zarr.open_group(str(folder / "instances.ome.zarr"), mode="r")["0"])


@pytest.mark.parametrize("output_format", ["tiff", "ome-zarr"])
def test_a_segment_jobs_objects_are_served(tmp_path, output_format):
    root, config = make_folder(tmp_path)
    row = run_job(root, config, objects="class 1", output_format=output_format, name="counted")
    assert row["state"] == "succeeded", row
    instances = _instances(root / "segmentations" / DEMO_DATASET / "counted")
    served = dataclasses.replace(config, server=dataclasses.replace(config.server, port=0))
    with serve(served) as server:
        http = Http(server.url)
        base = f"/api/v1/datasets/{DEMO_DATASET}/segmentations/counted"
        listed = http.get(f"{base}/objects?sort=voxels&order=desc&per_page=1000")
        assert listed.status == 200, listed.body
        document = listed.json()
        assert document["total"] == int(instances.max()) and document["instances"] is True
        assert document["classes"] == [{"id": 1, "name": "class 1", "objects": document["total"]}]
        biggest = document["rows"][0]
        assert biggest["voxels"] == int((instances == biggest["id"]).sum())

        outline = http.get(f"{base}/objects/{biggest['id']}/outline").json()
        on_slice = np.argwhere(instances[outline["z"]] == biggest["id"])
        points = np.concatenate([np.array(polygon) for polygon in outline["polygons"]])
        assert points.min(axis=0) == pytest.approx(on_slice.min(axis=0) - 0.5)
        assert points.max(axis=0) == pytest.approx(on_slice.max(axis=0) + 0.5)

        y, x = on_slice[0]
        layer = quote("segmentation:counted")
        voxel = http.get(
            f"/api/v1/datasets/{DEMO_DATASET}/voxel?z={outline['z']}&y={y}&x={x}&layers={layer}"
        ).json()
        assert voxel["objects"] == {"segmentation:counted": biggest["id"]}

        scores = http.get(f"{base}/scores").json()
        assert "class 1" in scores["objects"]["object_scores"]
        assert scores["objects"]["object_scores"]["class 1"]["predicted_objects"] == int(
            instances.max()
        )

        # the biggest object's mesh, as PLY and as OBJ, read back by trimesh
        for fmt in ("ply", "obj"):
            reply = http.get(f"{base}/objects/{biggest['id']}/mesh?format={fmt}")
            assert reply.status == 200, reply.body
            assert f"object-{biggest['id']}.{fmt}" in reply.headers["Content-Disposition"]
            mesh = trimesh.load(io.BytesIO(reply.body), file_type=fmt, process=True)
            # the demo's 50 x 4 x 4 nm voxels: x and y of the vertices lie around the object
            where = np.argwhere(instances == biggest["id"])
            low, high = mesh.bounds
            assert (
                low[0] >= (where[:, 2].min() - 1) * 4.0 and high[0] <= (where[:, 2].max() + 1) * 4.0
            )
            assert (
                low[2] >= (where[:, 0].min() - 1) * 50.0
                and high[2] <= (where[:, 0].max() + 1) * 50.0
            )
            assert len(mesh.faces) > 0
        missing = http.get(f"{base}/objects/{int(instances.max()) + 1}/mesh")
        assert missing.status == 404
        assert http.get(f"{base}/objects/{biggest['id']}/mesh?format=stl").status == 400

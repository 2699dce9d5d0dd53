"""Browser: the viewer's Objects panel in Chromium: filter by class and size, sort, click an
object to jump to its slice with its outline drawn and the view centred on it, the object id
under the cursor, the histogram, the object scores beside the pixel scores, and the CSV
download of the filtered list."""

from __future__ import annotations

import csv
import io

import pytest
import trimesh

from object_fixtures import BOXES, write_objects_segmentation
from test_browser_viewer import PLANE_TO_SCREEN
from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder, serve

pytestmark = pytest.mark.browser

# pixels of the XY canvas in the outline's colour (#00e5ff)
OUTLINE_PIXELS = """() => {
  const canvas = document.getElementById('view-z');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 60 && data[i + 1] > 180 && data[i + 2] > 200) n++;
  }
  return n;
}"""

LISTED = """() => [...document.querySelectorAll('#objects-table tbody tr')]
  .map((tr) => Number(tr.dataset.objectId))"""


def _volume(object_id):
    _, z0, z1, y0, y1, x0, x1 = BOXES[object_id]
    return (z1 - z0) * (y1 - y0) * (x1 - x0)


def _listed(page, expected):
    page.wait_for_function(
        f"(expected) => JSON.stringify(({LISTED})()) === JSON.stringify(expected)", arg=expected
    )


def test_filter_sort_jump_outline_hover_and_download(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    write_objects_segmentation(root, DEMO_DATASET, "objs")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.wait_for_selector("#objects-panel[data-ready=true]")
        assert page.is_visible("#objects-panel")
        _listed(page, sorted(BOXES))
        assert page.inner_text("#objects-page") == "1–6 of 6"
        assert page.get_attribute("#objects-histogram", "data-objects") == "6"
        scores = page.inner_text("#objects-scores")
        assert (
            "membrane objects: F1@0.5 0.667, precision 0.750, recall 0.600, AP-75 0.531" in scores
        )
        assert "(4 found, 5 true, 3 matched; slices 3–4)" in scores
        assert "objects (split): F1@0.5 0.813" in scores

        # filter by class, then sort by voxels (twice: descending)
        page.select_option("#objects-class", "1")
        membranes = [i for i in sorted(BOXES) if BOXES[i][0] == 1]
        _listed(page, membranes)
        assert page.inner_text("#objects-page") == "1–4 of 4 (6 in all)"
        page.wait_for_function(
            "() => document.getElementById('objects-histogram').dataset.objects === '4'"
        )
        page.click("#objects-table th[data-sort=voxels]")
        by_size = sorted(membranes, key=_volume)
        _listed(page, by_size)
        page.click("#objects-table th[data-sort=voxels]")
        _listed(page, by_size[::-1])
        # a size filter in nm³ (the voxel size is known): 50 x 4 x 4 nm per voxel
        page.fill("#objects-min", str(100 * 800))
        page.dispatch_event("#objects-min", "change")
        bigger = [i for i in by_size[::-1] if _volume(i) >= 100]
        _listed(page, bigger)

        # the CSV download holds what is listed, in the same order
        with page.expect_download() as waiting:
            page.click("#objects-download")
        download = waiting.value
        assert download.suggested_filename == f"{DEMO_DATASET}-objs-objects.csv"
        rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
        assert [int(r["id"]) for r in rows] == bigger

        # a click on object 2 (one slice, z 1) jumps there, centres it, outlines it
        page.select_option("#objects-class", "")
        page.fill("#objects-min", "")
        page.dispatch_event("#objects-min", "change")
        page.wait_for_selector("#objects-table tr[data-object-id='2']")
        assert page.get_attribute("#viewer", "data-slice") == "0"
        page.click("#objects-table tr[data-object-id='2']")
        page.wait_for_function(
            "() => { const c = document.getElementById('view-z');"
            " return c.dataset.index === '1' && c.dataset.outline === '1'"
            " && c.dataset.outlineObject === '2'; }"
        )
        assert page.inner_text("#slice-label") == "1 / 4"
        # the selected object's mesh downloads as PLY, which trimesh reads
        with page.expect_download() as waiting:
            page.click("#objects-mesh")
        mesh = waiting.value
        assert mesh.suggested_filename == f"{DEMO_DATASET}-objs-object-2.ply"
        assert len(trimesh.load(mesh.path(), file_type="ply").faces) > 0
        page.wait_for_function(f"({OUTLINE_PIXELS})() > 40")
        centre = page.evaluate(PLANE_TO_SCREEN, [120, 105])
        box = page.locator("#view-z").bounding_box()
        assert abs(centre[0] - (box["x"] + box["width"] / 2)) < 2
        assert abs(centre[1] - (box["y"] + box["height"] / 2)) < 2
        # off its slices the outline goes; back on them it returns
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.getElementById('view-z').dataset.outline === '0'")
        page.wait_for_function(f"({OUTLINE_PIXELS})() === 0")
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("() => document.getElementById('view-z').dataset.outline === '1'")

        # the object id under the cursor, from the listed segmentation (shown or not)
        assert not page.is_checked("[id='layer-segmentation:objs-visible']")
        page.mouse.move(*page.evaluate(PLANE_TO_SCREEN, [120, 105]))
        page.wait_for_function(
            "() => document.getElementById('voxel').textContent"
            ".includes('segmentation objs: membrane, object 2')"
        )

        # the object scores beside the pixel scores of the difference layer
        page.wait_for_selector("[data-scores=objs][data-ready=true]")
        scores = page.inner_text("[data-scores=objs]")
        assert "IoU" in scores and "membrane objects: F1@0.5 0.667" in scores
        assert "objects (split): F1@0.5 0.813, precision 0.750, recall 0.886, AP-75 0.400" in scores
        assert "(6 found, 7 true)" in scores
        assert browser.errors == []

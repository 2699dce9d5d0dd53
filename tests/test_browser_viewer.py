"""Browser: step slices, toggle an overlay, paint two classes, erase, undo, reload, same pixels.

Runs the real app in waitress and drives Debian's Chromium with Playwright, then reads the PNG
the editor saved with BioSegment's own reader.
"""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.volumes import read_png_slice
from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder, serve

pytestmark = pytest.mark.browser

PLANE_TO_SCREEN = """([row, col]) => {
  const view = window.biosegmentViewer.views.z;
  const box = view.canvas.getBoundingClientRect();
  return [box.left + (col + 0.5 - view.left) * view.scale / view.pixelRatio,
          box.top + (row + 0.5 - view.top) * view.scale / view.pixelRatio];
}"""

# counts pixels of the XY canvas that look like the membrane colour (#ff3030) blended on grey
REDDISH_PIXELS = """() => {
  const canvas = document.getElementById('view-z');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > data[i + 1] + 60 && data[i] > data[i + 2] + 60) n++;
  }
  return n;
}"""

CANVAS_SUM = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i] * ((i >> 2) % 7 + 1);
  return sum;
}"""


def drag(page, points, *, steps=12):
    screen = [page.evaluate(PLANE_TO_SCREEN, list(p)) for p in points]
    page.mouse.move(*screen[0])
    page.mouse.down()
    for x, y in screen[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def wait_drawn(page, z):
    page.wait_for_function(
        "z => { const c = document.getElementById('view-z');"
        " return c.dataset.index === String(z) && c.dataset.complete === 'true'; }",
        arg=z,
    )


def test_paint_erase_undo_reload_and_the_saved_png(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        wait_drawn(page, 0)
        first = page.evaluate(CANVAS_SUM, "view-z")

        # step slices with the keyboard and the slider
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        wait_drawn(page, 2)
        assert page.inner_text("#slice-label") == "2 / 4"
        assert page.evaluate(CANVAS_SUM, "view-z") != first
        page.keyboard.press("ArrowLeft")
        wait_drawn(page, 1)
        page.fill("#slice", "1")

        # the voxel under the cursor, read from the server
        x, y = page.evaluate(PLANE_TO_SCREEN, [40, 41])
        page.mouse.move(x, y)
        page.wait_for_function(
            "() => document.getElementById('voxel').textContent.includes('z 1  y 40  x 41')"
        )
        assert "grey value –" not in page.inner_text("#voxel")

        # zoom in around the centre and back: finer tiles load, the scale changes
        scale = page.evaluate("() => window.biosegmentViewer.views.z.scale")
        page.click("#zoom-in")
        page.wait_for_function(f"() => window.biosegmentViewer.views.z.scale > {scale}")
        wait_drawn(page, 1)
        page.click("#zoom-fit")

        # toggle the ground-truth overlay: membrane-coloured pixels appear, then go again
        assert page.evaluate(REDDISH_PIXELS) == 0
        page.check("#layer-ground_truth-visible")
        page.wait_for_function(f"({REDDISH_PIXELS})() > 1000")
        # (the viewer picture in the docs comes from test_browser_screenshots: a trained model)
        page.uncheck("#layer-ground_truth-visible")
        page.wait_for_function(f"({REDDISH_PIXELS})() === 0")

        # a new annotation, two classes painted, one stroke erased across, one undone
        page.fill("#annotation-name", "scribbles")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=scribbles]")
        page.click("#tool-brush")  # a drag pans until a painting tool is picked
        page.fill("#brush-size", "10")
        page.dispatch_event("#brush-size", "input")
        page.click("button[data-class-id='1']")
        drag(page, [(100, 50), (100, 200)])
        page.click("button[data-class-id='0']")
        drag(page, [(200, 50), (200, 200)])
        page.click("#tool-eraser")
        drag(page, [(185, 120), (215, 120)])
        label_at = "([r, c]) => window.biosegmentViewer.editor.labels[r * 512 + c]"
        # flood fill of the unpainted region with membrane, then undone
        # (inside the painted outline: the whole slice is on screen, so the fill may cover it)
        page.click("#tool-fill")
        page.select_option("#fill-mode", "outline")
        page.click("button[data-class-id='1']")
        drag(page, [(400, 400)], steps=1)
        page.wait_for_function(f"() => ({label_at})([400, 400]) === 1")
        assert page.evaluate(label_at, [400, 400]) == 1 and page.evaluate(label_at, [5, 5]) == 1
        assert page.evaluate(label_at, [200, 60]) == 0  # other labels stop the fill
        page.keyboard.press("Control+z")
        assert page.evaluate(label_at, [400, 400]) == 255
        page.click("#tool-brush")
        drag(page, [(300, 50), (300, 200)])
        page.keyboard.press("Control+z")  # undo the last stroke ...
        assert page.evaluate(label_at, [300, 100]) == 255
        page.keyboard.press("Control+y")  # ... redo it ...
        assert page.evaluate(label_at, [300, 100]) == 1
        page.click("#undo")  # ... and undo it again
        page.wait_for_selector("#save-state[data-state=saved]")

        saved = read_png_slice(root / "annotations" / DEMO_DATASET / "scribbles" / "z00001.png")
        assert (saved[100, 60:190] == 1).all()  # first class
        assert (saved[200, 60:110] == 0).all() and (saved[200, 130:190] == 0).all()  # second
        assert (saved[190:211, 120] == 255).all()  # erased across the second stroke
        assert (saved[290:311] == 255).all()  # the undone stroke is gone
        assert (saved[:80] == 255).all() and set(np.unique(saved)) == {0, 1, 255}

        # reload: the editor shows exactly what was painted
        page.reload()
        page.wait_for_selector("#viewer[data-ready=true]")
        # the viewer comes back on the annotation and the slice it showed
        page.wait_for_selector("#viewer[data-annotation=scribbles]")
        assert page.input_value("#annotation-select") == "scribbles"
        assert page.inner_text("#slice-label") == "1 / 4"
        wait_drawn(page, 1)
        page.wait_for_function(
            "() => window.biosegmentViewer.editor.z === 1 && "
            "window.biosegmentViewer.editor.labels[100 * 512 + 100] === 1"
        )
        shown = np.array(
            page.evaluate("() => Array.from(window.biosegmentViewer.editor.labels)"), dtype=np.uint8
        ).reshape(512, 512)
        np.testing.assert_array_equal(shown, saved)
        assert page.evaluate(REDDISH_PIXELS) > 500  # and it is drawn on the canvas
        assert browser.errors == []

"""Browser: the viewer behaves as an annotator expects.

Colours belong to a layer and a prediction looks different from the ground truth; layers and
models that land while the page is open appear on their own; a reload keeps the annotation,
slice, zoom, brush and undo history; the grey-level fill follows the image and stays on screen;
"take this object" copies a segmentation's object into the annotation's unpainted pixels; a
drag pans until a painting tool is picked, and painting asks for an annotation rather than
making one.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy import ndimage

from biosegment.catalog import open_catalog, refresh
from biosegment.volumes import read_png_slice
from test_browser_viewer import REDDISH_PIXELS, drag, wait_drawn
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    png_pixels,
    serve,
)

pytestmark = pytest.mark.browser

GREENISH_PIXELS = REDDISH_PIXELS.replace(
    "data[i] > data[i + 1] + 60 && data[i] > data[i + 2] + 60",
    "data[i + 1] > data[i] + 60 && data[i + 1] > data[i + 2] + 60",
)
LABEL_AT = "([r, c]) => window.biosegmentViewer.editor.labels[r * 512 + c]"


def add_segmentation(root, name):
    """A segmentation of the demo dataset: its ground truth, so it has plenty of membrane."""
    target = root / "segmentations" / DEMO_DATASET / name
    target.mkdir(parents=True)
    shutil.copy(root / "EM" / DEMO_DATASET / "labels" / "labels.tif", target / "labels.tif")
    with open_catalog(root) as catalog:
        refresh(catalog, root)


def open_viewer(browser, server, query=""):
    page = browser.page
    page.goto(f"{server.url}datasets/{DEMO_DATASET}{query}")
    page.wait_for_selector("#viewer[data-ready=true]")
    return page


def test_colours_belong_to_a_layer_and_a_prediction_differs_from_ground_truth(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    add_segmentation(root, "pred")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server, "?show=ground_truth")
        truth = "[data-layer='ground_truth'] input[type=color][data-class-id='1']"
        predicted = "[data-layer='segmentation:pred'] input[type=color][data-class-id='1']"
        # by default the two are told apart at a glance
        assert page.input_value(truth) != page.input_value(predicted)
        wait_drawn(page, 0)
        page.wait_for_function(f"({REDDISH_PIXELS})() > 1000")
        truth_colour = page.input_value(truth)

        # a new colour for the prediction's membrane repaints the prediction only
        page.uncheck("#layer-ground_truth-visible")
        page.check("#layer-segmentation\\:pred-visible")
        page.fill(predicted, "#00ff00")
        page.wait_for_function(f"({GREENISH_PIXELS})() > 1000")
        page.uncheck("#layer-segmentation\\:pred-visible")
        page.check("#layer-ground_truth-visible")
        page.wait_for_function(f"({REDDISH_PIXELS})() > 1000")
        assert page.evaluate(GREENISH_PIXELS) == 0
        assert page.input_value(truth) == truth_colour
        assert browser.errors == []


def test_new_segmentations_and_models_appear_without_a_reload(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        assert page.query_selector("[data-layer='segmentation:late']") is None
        add_segmentation(root, "late")
        make_tiny_model(root, "late-model")
        with open_catalog(root) as catalog:
            refresh(catalog, root)
        page.wait_for_selector("[data-layer='segmentation:late']", timeout=10_000)
        # what someone waits for is shown, not only listed
        assert page.is_checked("#layer-segmentation\\:late-visible")
        page.wait_for_selector(
            "#segment-model option[value='late-model']", state="attached", timeout=10_000
        )
        page.wait_for_selector("#train-base option[value='late-model']", state="attached")
        assert browser.errors == []


def test_a_reload_keeps_annotation_slice_zoom_brush_and_undo(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        page.fill("#annotation-name", "kept")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=kept]")
        page.click("#tool-brush")  # a drag pans until a painting tool is picked
        page.fill("#slice", "3")
        page.dispatch_event("#slice", "input")
        wait_drawn(page, 3)
        page.fill("#brush-size", "20")
        page.dispatch_event("#brush-size", "input")
        page.click("#zoom-in")
        scale = page.evaluate("() => window.biosegmentViewer.views.z.scale")
        drag(page, [(250, 200), (250, 300)])
        page.wait_for_selector("#save-state[data-state=saved]")
        assert page.evaluate(LABEL_AT, [250, 250]) == 1
        page.wait_for_timeout(600)  # the state is written a moment after the last change

        page.reload()
        page.wait_for_selector("#viewer[data-ready=true]")
        page.wait_for_selector("#viewer[data-annotation=kept]")
        assert page.input_value("#annotation-select") == "kept"
        assert page.inner_text("#slice-label") == "3 / 4"
        assert page.input_value("#brush-size") == "20"
        assert page.evaluate("() => window.biosegmentViewer.editor.brushSize") == 20
        assert page.evaluate("() => window.biosegmentViewer.views.z.scale") == pytest.approx(scale)
        page.wait_for_function(f"() => ({LABEL_AT})([250, 250]) === 1")
        # the stroke painted before the reload can still be undone
        assert page.is_enabled("#undo")
        page.click("#undo")
        assert page.evaluate(LABEL_AT, [250, 250]) == 255
        page.wait_for_selector("#save-state[data-state=saved]")
        slice_file = root / "annotations" / DEMO_DATASET / "kept" / "z00003.png"
        # an unpainted slice is stored as no file at all
        assert not slice_file.exists() or (read_png_slice(slice_file) == 255).all()
        assert browser.errors == []


def test_fill_follows_the_image_and_stays_on_screen(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        page.fill("#annotation-name", "filled")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=filled]")
        for _ in range(5):
            page.click("#zoom-in")
        wait_drawn(page, 0)
        bounds = page.evaluate("""() => { const v = window.biosegmentViewer.views.z;
            const [t, l] = v.toPlane(0, 0, false);
            const [b, r] = v.toPlane(v.canvas.width, v.canvas.height, false);
            return [Math.max(0, Math.floor(t)), Math.max(0, Math.floor(l)),
                    Math.min(511, Math.ceil(b) - 1), Math.min(511, Math.ceil(r) - 1)]; }""")
        r0, c0, r1, c1 = bounds
        assert (r1 - r0 + 1) * (c1 - c0 + 1) < 512 * 512 / 4  # zoomed in: part of the slice

        grey = png_pixels(
            Http(server.url).get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/0/0/0/0.png").body
        )
        seed = ((r0 + r1) // 2, (c0 + c1) // 2)
        tolerance = 30
        page.select_option("#fill-mode", "image")  # the grey-level fill (edges is the default)
        page.fill("#fill-tolerance", str(tolerance))
        page.dispatch_event("#fill-tolerance", "input")
        page.click("#tool-fill")
        drag(page, [seed], steps=1)
        page.wait_for_function("() => window.biosegmentViewer.editor.lastFill")
        labels = np.array(
            page.evaluate("() => Array.from(window.biosegmentViewer.editor.labels)"), dtype=np.uint8
        ).reshape(512, 512)

        # what the fill should cover: pixels near the clicked grey level, connected, on screen
        window = grey[r0 : r1 + 1, c0 : c1 + 1].astype(int)
        similar = np.abs(window - int(grey[seed])) <= tolerance
        regions, _ = ndimage.label(similar)
        expected = np.zeros((512, 512), bool)
        expected[r0 : r1 + 1, c0 : c1 + 1] = regions == regions[seed[0] - r0, seed[1] - c0]
        filled = labels == 1
        np.testing.assert_array_equal(filled, expected)
        assert 0 < filled.sum() < similar.size  # the image stopped it, not the whole view
        assert not filled[:r0].any() and not filled[r1 + 1 :].any()  # nothing off screen
        assert browser.errors == []


def test_take_this_object_copies_the_segmentation_object_into_the_unpainted_pixels(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    add_segmentation(root, "pred")
    http_base = f"/api/v1/datasets/{DEMO_DATASET}"
    with serve(config_for(root)) as server, chromium_page() as browser:
        http = Http(server.url)
        seg = png_pixels(http.get(f"{http_base}/tiles/segmentation/z/0/0/0/0.png?name=pred").body)
        # an object of a few thousand pixels, clicked where it is thickest
        components, count = ndimage.label(seg == 0)
        sizes = ndimage.sum_labels(np.ones_like(seg), components, range(1, count + 1))
        chosen = 1 + int(np.flatnonzero((sizes > 800) & (sizes < 20000))[0])
        expected = components == chosen
        depth = ndimage.distance_transform_edt(expected)
        seed = tuple(int(v) for v in np.unravel_index(np.argmax(depth), depth.shape))
        # a person already painted a few pixels of the object as class 0: they stay
        assert http.post(f"{http_base}/annotations", json_body={"name": "taken"}).status == 201
        before = np.full((512, 512), 255, dtype=np.uint8)
        before[seed[0], seed[1] - 2 : seed[1] + 3] = 0
        saved = http.put(
            f"{http_base}/annotations/taken/slices/0",
            body=before.tobytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert saved.status == 200, saved.body

        page = open_viewer(browser, server, "?show=segmentation:pred")
        page.select_option("#annotation-select", "taken")
        page.wait_for_selector("#viewer[data-annotation=taken]")
        wait_drawn(page, 0)
        page.click("#tool-object")
        drag(page, [(seed[0] + 0.5, seed[1] + 0.5)], steps=1)
        page.wait_for_function("() => window.biosegmentViewer.editor.lastFill")
        page.wait_for_selector("#save-state[data-state=saved]")
        assert "filled" in page.text_content("#fill-message")
        assert "segmentation pred" in page.text_content("#fill-message")

        stored = read_png_slice(root / "annotations" / DEMO_DATASET / "taken" / "z00000.png")
        wanted = np.where(expected, 1, 255).astype(np.uint8)
        wanted[before == 0] = 0
        np.testing.assert_array_equal(stored, wanted)
        assert browser.errors == []


VIEW_ORIGIN = "() => [window.biosegmentViewer.views.z.left, window.biosegmentViewer.views.z.top]"


def annotation_names(server):
    reply = Http(server.url).get(f"/api/v1/datasets/{DEMO_DATASET}/annotations")
    assert reply.status == 200, reply.body
    return [a["name"] for a in reply.json() if a["state"] != "missing"]


def test_a_drag_pans_and_painting_asks_for_an_annotation_instead_of_making_one(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        wait_drawn(page, 0)
        assert page.input_value("#annotation-select") == ""
        # the first drag of a new visitor pans: nothing is painted, nothing is made
        assert "active" in page.get_attribute("#tool-pan", "class")
        before = page.evaluate(VIEW_ORIGIN)
        drag(page, [(100, 100), (100, 300)])
        assert page.evaluate(VIEW_ORIGIN) != before
        assert annotation_names(server) == []

        # painting with no annotation chosen asks for one, next to the picker
        page.click("#tool-brush")
        assert page.is_hidden("#annotation-needed")
        moved = page.evaluate(VIEW_ORIGIN)
        drag(page, [(200, 100), (200, 300)])
        page.wait_for_selector("#annotation-needed", state="visible")
        assert page.evaluate("() => document.activeElement.id") == "annotation-name"
        assert page.evaluate(VIEW_ORIGIN) == moved  # a painting tool never pans
        page.wait_for_timeout(500)
        assert annotation_names(server) == []
        assert page.get_attribute("#viewer", "data-annotation") in (None, "")

        # making one is a visible step; then strokes go into it
        page.fill("#annotation-name", "mine")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=mine]")
        assert page.is_hidden("#annotation-needed")
        assert annotation_names(server) == ["mine"]
        page.fill("#brush-size", "6")
        page.dispatch_event("#brush-size", "input")
        drag(page, [(100, 100), (100, 300)])
        page.wait_for_selector("#save-state[data-state=saved]")
        saved = read_png_slice(root / "annotations" / DEMO_DATASET / "mine" / "z00000.png")
        assert (saved[100, 110:290] == 1).all() and (saved[:90] == 255).all()
        page.wait_for_timeout(600)  # the state is written a moment after the last change

        # the same browser, back from the dashboard: the annotation chosen last is chosen again
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.wait_for_selector("#viewer[data-annotation=mine]")
        assert page.input_value("#annotation-select") == "mine"
        assert annotation_names(server) == ["mine"]

        # ... unless it is gone: then none is chosen, and nothing is made in its place
        shutil.rmtree(root / "annotations" / DEMO_DATASET / "mine")
        with open_catalog(root) as catalog:
            refresh(catalog, root)
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        assert page.input_value("#annotation-select") == ""
        assert annotation_names(server) == []
        assert browser.errors == []


def test_the_visibility_box_of_the_edited_annotation_says_whether_its_strokes_show(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        page.fill("#annotation-name", "fresh")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=fresh]")
        box = "#layer-annotation\\:fresh-visible"
        page.wait_for_selector(box)
        shown = "() => window.biosegmentViewer.views.z.editorCanvas !== null"
        # a new annotation's strokes are on screen, and its box says so
        assert page.evaluate(shown) and page.is_checked(box)
        page.uncheck(box)
        page.wait_for_function(f"() => !({shown})()")
        page.check(box)
        page.wait_for_function(shown)
        assert browser.errors == []

"""Browser: the viewer behaves as an annotator expects.

Colours belong to a layer and a prediction looks different from the ground truth; layers and
models that land while the page is open appear on their own; a reload keeps the annotation,
slice, zoom, brush and undo history; fill follows the image and stays on screen; a stroke with
no annotation chosen creates one instead of panning.
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


def test_a_stroke_without_an_annotation_creates_one_instead_of_panning(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        wait_drawn(page, 0)
        assert page.input_value("#annotation-select") == ""
        before = page.evaluate(
            "() => [window.biosegmentViewer.views.z.left, window.biosegmentViewer.views.z.top]"
        )
        page.fill("#brush-size", "6")
        page.dispatch_event("#brush-size", "input")
        drag(page, [(100, 100), (100, 300)])
        page.wait_for_selector("#viewer[data-annotation^='annotation-']")
        name = page.get_attribute("#viewer", "data-annotation")
        assert page.input_value("#annotation-select") == name
        assert name in page.inner_text("#run-message")
        assert (
            page.evaluate(
                "() => [window.biosegmentViewer.views.z.left, window.biosegmentViewer.views.z.top]"
            )
            == before
        )  # no pan
        page.wait_for_selector("#save-state[data-state=saved]")
        saved = read_png_slice(root / "annotations" / DEMO_DATASET / name / "z00000.png")
        assert (saved[100, 110:290] == 1).all() and (saved[:90] == 255).all()
        assert browser.errors == []

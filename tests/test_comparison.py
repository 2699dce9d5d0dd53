"""Comparing a segmentation with ground truth: the difference tiles (false positives and false
negatives apart) and the scores, through the real HTTP API, against numbers computed here."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from test_browser_viewer import wait_drawn
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    chromium_page,
    config_for,
    make_demo_folder,
    png_pixels,
    serve,
)

COUNT_COLOUR = """([r, g, b]) => {
  const canvas = document.getElementById('view-z');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40) n++;
  }
  return n;
}"""


def folder_with_a_guess(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    truth = tifffile.imread(root / "EM" / DEMO_DATASET / "labels" / "labels.tif")
    truth = (truth > 0).astype(np.uint8)  # membrane 1, background 0
    predicted = truth.copy()
    predicted[:, 0:100, :] = 1  # a band of false positives ...
    predicted[:, 400:512, :] = 0  # ... and one of false negatives
    target = root / "segmentations" / DEMO_DATASET / "guess"
    target.mkdir(parents=True)
    tifffile.imwrite(target / "labels.tif", predicted, photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return root, truth, predicted


def test_difference_tiles_and_scores_against_ground_truth(tmp_path):
    root, truth, predicted = folder_with_a_guess(tmp_path)
    with serve(config_for(root)) as server:
        http = Http(server.url)
        layers = http.get(f"/api/v1/datasets/{DEMO_DATASET}").json()["layers"]
        assert any(layer["kind"] == "difference" and layer["name"] == "guess" for layer in layers)

        reply = http.get(
            f"/api/v1/datasets/{DEMO_DATASET}/tiles/difference/z/2/0/0/0.png?name=guess"
        )
        assert reply.status == 200, reply.body
        tile = png_pixels(reply.body)
        expected = np.zeros((512, 512), np.uint8)
        expected[(truth[2] == 0) & (predicted[2] == 1)] = 1
        expected[(truth[2] == 1) & (predicted[2] == 0)] = 2
        np.testing.assert_array_equal(tile, expected)
        assert (tile[:100] != 2).all() and (tile[400:] != 1).all()

        scores = http.get(f"/api/v1/datasets/{DEMO_DATASET}/segmentations/guess/scores").json()
        tp = int(((truth == 1) & (predicted == 1)).sum())
        fp = int(((truth == 0) & (predicted == 1)).sum())
        fn = int(((truth == 1) & (predicted == 0)).sum())
        assert scores["false_positives"] == fp and scores["false_negatives"] == fn
        assert abs(scores["iou"]["membrane"] - tp / (tp + fp + fn)) < 1e-6
        assert abs(scores["dice"]["membrane"] - 2 * tp / (2 * tp + fp + fn)) < 1e-6

        missing = http.get(f"/api/v1/datasets/{DEMO_DATASET}/segmentations/nope/scores")
        assert missing.status == 404


@pytest.mark.browser
def test_the_viewer_shows_the_difference_in_two_colours_and_the_scores(tmp_path):
    root, truth, predicted = folder_with_a_guess(tmp_path)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}?show=difference:guess")
        page.wait_for_selector("#viewer[data-ready=true]")
        wait_drawn(page, 0)
        page.evaluate(
            "() => { const l = window.biosegmentViewer.layers.find("
            "(x) => x.kind === 'difference'); l.opacity = 1; }"
        )
        # The redraw happens on a later animation frame: wait for two before reading pixels.
        page.evaluate(
            "() => new Promise((done) => { window.biosegmentViewer.views.z.requestDraw();"
            " requestAnimationFrame(() => requestAnimationFrame(done)); })"
        )
        wait_drawn(page, 0)
        magenta = page.evaluate(COUNT_COLOUR, [255, 64, 255])  # false positives
        yellow = page.evaluate(COUNT_COLOUR, [255, 208, 0])  # false negatives
        assert magenta > 1000 and yellow > 1000, (magenta, yellow)
        line = page.wait_for_selector("[data-scores=guess][data-ready=true]")
        tp = int(((truth == 1) & (predicted == 1)).sum())
        fp = int(((truth == 0) & (predicted == 1)).sum())
        fn = int(((truth == 1) & (predicted == 0)).sum())
        assert f"membrane: IoU {tp / (tp + fp + fn):.3f}" in line.inner_text()
        assert f"false positives {fp}" in line.inner_text()
        assert browser.errors == []

"""Browser: the image layer's histogram and display window; "Auto" puts the window at the 1st
and 99th percentiles of the slice, the picture is drawn through it, and a reload keeps it."""

from __future__ import annotations

import numpy as np
import pytest

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

pytestmark = pytest.mark.browser

CANVAS_GREY = """() => {
  const canvas = document.getElementById('view-z');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const values = [];
  for (let i = 0; i < data.length; i += 4 * 97) values.push(data[i]);
  return values;
}"""


def level_at(counts: np.ndarray, fraction: float) -> int:
    return int(np.searchsorted(np.cumsum(counts), fraction * counts.sum()))


def test_auto_contrast_sets_the_window_from_the_histogram(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        wait_drawn(page, 0)
        document = Http(server.url).get(f"/api/v1/datasets/{DEMO_DATASET}").json()
        coarsest = len(document["pyramid"]["z"]) - 1
        tile = png_pixels(
            Http(server.url)
            .get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/0/{coarsest}/0/0.png")
            .body
        )
        counts = np.bincount(tile.ravel(), minlength=256)
        low, high = level_at(counts, 0.01), level_at(counts, 0.99)
        before = np.array(page.evaluate(CANVAS_GREY))

        page.click("#auto-contrast")
        page.wait_for_function(
            f"() => document.getElementById('viewer').dataset.window === '{low}-{high}'"
        )
        assert page.input_value("#window-low") == str(low)
        assert page.input_value("#window-high") == str(high)
        wait_drawn(page, 0)
        page.wait_for_timeout(300)
        after = np.array(page.evaluate(CANVAS_GREY))
        # stretched: darker darks and brighter lights than before
        assert after.std() > before.std() * 1.05, (before.std(), after.std())

        page.fill("#window-low", "100")
        page.dispatch_event("#window-low", "input")
        page.fill("#window-high", "101")
        page.dispatch_event("#window-high", "input")
        page.wait_for_timeout(300)
        hard = np.array(page.evaluate(CANVAS_GREY))

        # a one-level window leaves almost no mid greys (smoothing between pixels makes a few)
        def mid_greys(values):
            return ((values > 40) & (values < 215)).mean()

        assert mid_greys(hard) < 0.5 * mid_greys(before), (mid_greys(before), mid_greys(hard))

        page.wait_for_timeout(400)
        page.reload()
        page.wait_for_selector("#viewer[data-ready=true]")
        assert page.input_value("#window-low") == "100"
        assert browser.errors == []

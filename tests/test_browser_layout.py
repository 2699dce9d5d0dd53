"""Browser: nothing a person needs to read is cut, hidden or covered.

The voxel readout grows with the layers shown and names them as the layers panel does; a long
dataset name is shown whole; number fields fit their digits; the view captions stay readable on
a bright image; a layer's box sits with its name; a running fine-tune's panel stays in view
however the sidebar is scrolled; and the corner jobs panel never covers a table's State column
or a dataset card.
"""

from __future__ import annotations

import shutil

import pytest

from biosegment.catalog import open_catalog, refresh
from test_browser_viewer import PLANE_TO_SCREEN, wait_drawn
from test_browser_viewer_behaviour import add_segmentation, open_viewer
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    serve,
)

pytestmark = pytest.mark.browser

LONG_NAME = "MEDULLA_SAMPLE_2026-11-30_fibsem_4nm_isotropic_region_of_interest_07"
SEGMENTATIONS = ["pred-a", "pred-b", "pred-c", "demo-membrane-finetuned-on-corrections"]


def add_stack(root, name):
    """Another dataset: the demo's image as one TIFF file named ``name``."""
    source = root / "EM" / DEMO_DATASET / "raw" / f"{DEMO_DATASET}.tif"
    shutil.copy(source, root / "EM" / f"{name}.tif")
    with open_catalog(root) as catalog:
        refresh(catalog, root)


def box(page, selector):
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; }",
    )


def overlap(a, b) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and (a["top"] < b["bottom"] and b["top"] < a["bottom"])
    )


def test_the_readout_shows_every_layer_by_its_name_uncut(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    for name in SEGMENTATIONS:
        add_segmentation(root, name)
    http = Http("")
    with serve(config_for(root)) as server, chromium_page() as browser:
        http.base = server.url.rstrip("/")
        reply = http.post(
            f"/api/v1/datasets/{DEMO_DATASET}/annotations", json_body={"name": "notes"}
        )
        assert reply.status == 201, reply.body
        shown = ["ground_truth", "annotation:notes"] + [f"segmentation:{n}" for n in SEGMENTATIONS]
        page = open_viewer(browser, server, "?" + "&".join(f"show={key}" for key in shown))
        wait_drawn(page, 0)
        page.mouse.move(*page.evaluate(PLANE_TO_SCREEN, [40, 41]))
        page.wait_for_function(
            "n => document.getElementById('voxel').textContent.split('\\n').length === n"
            " && !document.getElementById('voxel').textContent.includes('–')",
            arg=2 + len(shown),
        )
        lines = page.inner_text("#voxel").split("\n")
        assert lines[0] == "z 0  y 40  x 41" and lines[1].startswith("grey value ")
        readout = "\n".join(lines)
        assert "ground truth: " in readout and "annotation notes: not painted" in readout
        for name in SEGMENTATIONS:
            assert f"segmentation {name}: " in readout
        # no internal ids: the layers' keys, or class ids where a class has a name
        assert "segmentation:" not in readout and "ground_truth" not in readout
        assert all(
            line.split(": ")[1] in ("membrane", "background", "not painted") for line in lines[2:]
        ), lines
        # every line shows: the box holds them all without scrolling or cutting
        sizes = page.eval_on_selector(
            "#voxel", "e => [e.scrollHeight, e.clientHeight, e.scrollWidth, e.clientWidth]"
        )
        assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], sizes
        assert browser.errors == []


def test_a_long_dataset_name_is_shown_whole(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    add_stack(root, LONG_NAME)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{LONG_NAME}")
        page.wait_for_selector("#viewer[data-ready=true]")
        heading = "#viewer aside h3.dataset-name"
        assert page.inner_text(heading) == LONG_NAME  # as it is spelled, not upper-cased
        assert page.get_attribute(heading, "title") == LONG_NAME
        sizes = page.eval_on_selector(heading, "e => [e.scrollWidth, e.clientWidth]")
        assert sizes[0] <= sizes[1], sizes
        name, sidebar = box(page, heading), box(page, "#viewer aside")
        assert sidebar["left"] <= name["left"] and name["right"] <= sidebar["right"]
        assert browser.errors == []


# The room inside a number field for its text: its content box less the spin buttons.
FITS = """([selector, text]) => {
    const field = document.querySelector(selector), style = getComputedStyle(field);
    const measure = document.createElement('canvas').getContext('2d');
    measure.font = `${style.fontSize} ${style.fontFamily}`;
    const room = field.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 16;
    return room >= measure.measureText(text).width;
}"""

# WCAG contrast of the caption's text against its own background (over a white image).
CAPTION_CONTRAST = """(selector) => {
    const style = getComputedStyle(document.querySelector(selector));
    const parse = (c) => c.match(/[\\d.]+/g).map(Number);
    const [r, g, b, a = 1] = parse(style.backgroundColor);
    const over = [r, g, b].map((v) => v * a + 255 * (1 - a));
    const lum = (rgb) => { const [R, G, B] = rgb.map((v) => { v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * R + 0.7152 * G + 0.0722 * B; };
    const text = lum(parse(style.color).slice(0, 3)), back = lum(over);
    return (Math.max(text, back) + 0.05) / (Math.min(text, back) + 0.05);
}"""


def test_fields_captions_and_layer_names_are_readable(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    add_segmentation(root, SEGMENTATIONS[-1])
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        assert page.input_value("#window-high") == "255"
        assert page.evaluate(FITS, ["#window-high", "255"])
        assert page.evaluate(FITS, ["#window-low", "255"])
        assert page.evaluate(FITS, ["#interp-from", "9999"])

        # a caption stays readable where the image under it is white
        for view in ("z", "y", "x"):
            caption = f"#view-{view} + .label"
            assert page.evaluate(CAPTION_CONTRAST, caption) >= 4.5

        # the difference layer's box sits at the start of its (wrapped) name, and is its label
        key = f"difference:{SEGMENTATIONS[-1]}"
        layer = f"[data-layer='{key}']"
        tick = box(page, f"{layer} input[type=checkbox]")
        name = box(page, f"{layer} .row span")
        assert 0 <= name["left"] - tick["right"] <= 12, (tick, name)
        assert tick["top"] < name["top"] + 18 and name["top"] < tick["bottom"]
        checkbox = "#layer-" + key.replace(":", "\\:") + "-visible"
        was = page.is_checked(checkbox)
        page.click(f"{layer} .row span")
        assert page.is_checked(checkbox) != was
        assert browser.errors == []


def test_a_running_fine_tunes_panel_stays_in_view(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    # no queue consumer runs here: the fine-tune stays queued, its panel open
    with serve(config_for(root)) as server, chromium_page(width=1400, height=700) as browser:
        page = open_viewer(browser, server)
        page.fill("#annotation-name", "strokes")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=strokes]")
        page.click("#train-start")
        page.wait_for_selector("#live-panel:not([hidden])")
        page.click("#setup-panel summary")  # a longer sidebar
        sidebar = "#viewer aside"
        height = page.eval_on_selector(sidebar, "e => e.scrollHeight - e.clientHeight")
        assert height > 300  # the sidebar scrolls: the check below means something
        for scroll in (0, height // 2, height):
            page.eval_on_selector(sidebar, "(e, y) => { e.scrollTop = y; }", scroll)
            panel, side = box(page, "#live-panel"), box(page, sidebar)
            assert side["top"] <= panel["top"] and panel["bottom"] <= min(side["bottom"], 700)
            for button in ("#live-accept", "#live-discard"):
                centre = box(page, button)
                hit = page.evaluate(
                    "([x, y]) => document.elementFromPoint(x, y).id",
                    [
                        (centre["left"] + centre["right"]) / 2,
                        (centre["top"] + centre["bottom"]) / 2,
                    ],
                )
                assert hit == button[1:], (scroll, hit)
        assert browser.errors == []


@pytest.mark.parametrize(
    ("width", "height", "covered"),
    [(1400, 900, "#models tr > :last-child"), (1000, 700, "#datasets .card")],
)
def test_the_jobs_panel_covers_no_state_column_or_card(tmp_path, width, height, covered):
    root = make_demo_folder(tmp_path / "data")
    for n in range(8):
        make_tiny_model(root, f"tiny-{n}")
    for n in range(9):  # rows of cards reaching the panel's corner
        add_stack(root, f"stack-{n}")
    with serve(config_for(root)) as server, chromium_page(width=width, height=height) as browser:
        # no queue consumer runs here: the job stays queued, and the panel shows it
        reply = Http(server.url).post(
            "/api/v1/jobs/segment", json_body={"dataset": DEMO_DATASET, "model": "tiny-0"}
        )
        assert reply.status == 202, reply.body
        page = browser.page
        page.goto(server.url)
        page.wait_for_selector("#models tr[data-name='tiny-7']")
        page.wait_for_selector(".card[data-name='stack-8']")
        page.wait_for_selector("#jobs-panel:not([hidden])")
        bottom = page.evaluate("() => document.documentElement.scrollHeight - innerHeight")
        assert bottom > 0  # the page scrolls past the panel's corner
        for scroll in range(0, bottom + 50, 50):
            page.evaluate("y => window.scrollTo(0, y)", scroll)
            panel = box(page, "#jobs-panel")
            boxes = page.eval_on_selector_all(
                covered,
                "es => es.map(e => { const r = e.getBoundingClientRect();"
                " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })",
            )
            assert boxes
            assert not any(overlap(panel, b) for b in boxes), (scroll, panel)
        assert browser.errors == []

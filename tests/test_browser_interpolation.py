"""Browser: copy the labels of the previous slice, and fill the slices between two painted ones
by signed-distance interpolation, never over painted pixels."""

from __future__ import annotations

import pytest

from biosegment.volumes import read_png_slice
from test_browser_viewer import drag, wait_drawn
from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder, serve

pytestmark = pytest.mark.browser
LABEL_AT = "([r, c]) => window.biosegmentViewer.editor.labels[r * 512 + c]"


def go_to(page, z):
    page.fill("#slice", str(z))
    page.dispatch_event("#slice", "input")
    wait_drawn(page, z)
    page.wait_for_function(f"() => window.biosegmentViewer.editor.z === {z}")


def test_copy_from_previous_and_interpolate_between_slices(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    folder = root / "annotations" / DEMO_DATASET / "cells"
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.fill("#annotation-name", "cells")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=cells]")
        page.click("#tool-brush")  # a drag pans until a painting tool is picked
        page.fill("#brush-size", "40")
        page.dispatch_event("#brush-size", "input")
        page.click("button[data-class-id='1']")

        drag(page, [(150, 150)], steps=1)  # a disk of radius 20 on slice 0
        page.wait_for_selector("#save-state[data-state=saved]")

        # copy into slice 1, then undo the copy
        go_to(page, 1)
        page.click("#copy-previous")
        page.wait_for_function(f"() => ({LABEL_AT})([150, 150]) === 1")
        assert "copied" in page.inner_text("#interp-message")
        page.click("#undo")
        assert page.evaluate(LABEL_AT, [150, 150]) == 255

        # the same disk moved 24 pixels to the right on slice 4; one pixel painted by hand on 2
        go_to(page, 4)
        drag(page, [(150, 174)], steps=1)
        page.wait_for_selector("#save-state[data-state=saved]")
        go_to(page, 2)
        page.fill("#brush-size", "2")
        page.dispatch_event("#brush-size", "input")
        page.click("button[data-class-id='0']")
        drag(page, [(150, 162)], steps=1)
        page.wait_for_selector("#save-state[data-state=saved]")
        page.fill("#interp-from", "0")
        page.fill("#interp-to", "4")
        page.click("#interpolate")
        page.wait_for_selector("#viewer[data-interpolated='0-4']", timeout=30_000)

        # the object moves along: centred near 156, 162 and 168 on slices 1, 2 and 3
        for z, centre in ((1, 156), (2, 162), (3, 168)):
            labels = read_png_slice(folder / f"z{z:05d}.png")
            assert labels[150, centre + 10] == 1 and labels[150, centre - 10] == 1, z
            assert labels[150, centre - 35] == 255 and labels[150, centre + 35] == 255, z
            assert labels[120, centre] == 255 and labels[180, centre] == 255, z
            area = int((labels == 1).sum())
            assert 700 < area < 1400, (z, area)  # about the disks' area, pi * 20^2
        assert read_png_slice(folder / "z00002.png")[150, 162] == 0  # painted by hand: kept
        # the editor shows the interpolated slice it is on
        page.wait_for_function(f"() => ({LABEL_AT})([150, 172]) === 1")
        assert browser.errors == []

"""Small things an annotator trips over: the API page reads as text and leads back to the app,
`info` says what is not set, `reindex` reports in sentences; in the browser the voxel readout
keeps its height, long names stay in their pickers, the brush shows its outline, the jobs panel
leaves the dashboard readable and painted slices read as slices."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from test_browser_viewer import PLANE_TO_SCREEN
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    serve,
)


def test_api_descriptions_have_no_raw_markup_and_docs_lead_back(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server:
        http = Http(server.url)
        document = http.get("/api/v1/openapi.json").json()
        descriptions = [
            op.get("description", "")
            for item in document["paths"].values()
            for op in item.values()
            if isinstance(op, dict)
        ]
        assert any(descriptions)
        for text in descriptions:
            assert "<br" not in text and "``" not in text, text
            assert not re.search(r":[a-z]+:`", text), text
        assert 'id="back-to-app"' in http.get("/docs/").body.decode()


@pytest.mark.browser
def test_the_api_page_leads_back_to_the_dashboard(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}docs/")
        page.click("#back-to-app a[data-to=app]")
        page.wait_for_url(server.url)
        assert page.title() == "BioSegment: dashboard"


def test_info_and_reindex_print_for_people(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    (root / "EM" / "empty.tif").write_bytes(b"")
    runner = CliRunner()
    info = runner.invoke(main, ["--data", str(root), "info", "empty"], catch_exceptions=False)
    assert info.exit_code == 0, info.output
    assert re.search(r"^voxel_size:\s+\(not set\)$", info.output, re.M), info.output
    assert not re.search(r":\s*$", info.output, re.M)  # no key without a value
    reindex = runner.invoke(main, ["--data", str(root), "reindex"], catch_exceptions=False)
    assert reindex.exit_code == 0, reindex.output
    assert "{" not in reindex.output and "[" not in reindex.output
    assert re.search(r"datasets:\s+2 added", reindex.output), reindex.output


@pytest.mark.browser
def test_viewer_readout_pickers_and_brush_outline(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(
        root,
        "a-model-with-a-very-long-name-that-would-push-the-sidebar-wider-than-the-window-allows",
    )
    for name in ("one", "two", "three", "four", "five"):
        target = root / "segmentations" / DEMO_DATASET / name
        target.mkdir(parents=True)
        (target / "labels.tif").write_bytes(
            (root / "EM" / DEMO_DATASET / "labels" / "labels.tif").read_bytes()
        )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(
            f"{server.url}datasets/{DEMO_DATASET}?show=ground_truth"
            + "".join(f"&show=segmentation:{n}" for n in ("one", "two", "three", "four", "five"))
        )
        page.wait_for_selector("#viewer[data-ready=true]")
        aside = page.eval_on_selector(".viewer aside", "e => e.getBoundingClientRect().width")
        readout = page.eval_on_selector("#voxel", "e => e.getBoundingClientRect().height")
        x, y = page.evaluate(PLANE_TO_SCREEN, [100, 100])
        page.mouse.move(x, y)
        page.wait_for_function(
            "() => /five: [^–]/.test(document.getElementById('voxel').textContent)"
        )
        assert page.eval_on_selector("#voxel", "e => e.getBoundingClientRect().height") == readout
        select = page.eval_on_selector("#segment-model", "e => e.getBoundingClientRect().right")
        assert select <= aside + 1
        assert page.eval_on_selector(".viewer aside", "e => e.scrollWidth <= e.clientWidth")

        # the brush outline follows the cursor once painting is possible
        page.fill("#annotation-name", "outlined")
        page.click("#annotation-create")
        page.wait_for_selector("#viewer[data-annotation=outlined]")
        page.click("#tool-brush")  # the viewer starts with Pan, which has no outline
        page.mouse.move(x + 5, y + 5)
        page.wait_for_function(
            "() => document.getElementById('view-z').dataset.brushOutline === '4'"
        )
        page.click("#tool-pan")
        page.mouse.move(x, y)
        page.wait_for_function(
            "() => document.getElementById('view-z').dataset.brushOutline === ''"
        )
        assert browser.errors == []


@pytest.mark.browser
def test_dashboard_painted_slices_and_jobs_panel_leave_the_state_column_readable(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    target = root / "annotations" / DEMO_DATASET / "first"
    target.mkdir(parents=True)
    import numpy as np

    from biosegment.volumes import write_png_slice

    labels = np.full((512, 512), 255, np.uint8)
    labels[10:20, 10:20] = 1
    write_png_slice(target / "z00000.png", labels)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server, chromium_page(height=500) as browser:
        page = browser.page
        page.goto(server.url)
        row = page.wait_for_selector("#annotations tr")
        assert "1 slice: z 0" in row.inner_text()
        # a job in the queue shows the floating panel; the last State cell can still be read
        page.evaluate(
            "() => { document.getElementById('jobs-panel').hidden = false;"
            " document.body.classList.add('jobs-panel-open'); }"
        )
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        covered = page.evaluate("""() => {
            const cells = document.querySelectorAll('main td:last-child');
            const cell = cells[cells.length - 1];
            const box = cell.getBoundingClientRect();
            const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
            return !cell.contains(hit); }""")
        assert not covered
        assert browser.errors == []

"""Browser: delete an annotation from the viewer's layers panel, find it in the Trash list,
restore it, and see its painted slice come back; then rename, delete and restore a model from
its page, and restore it from the dashboard's trash.

Runs the real app in waitress and drives Debian's Chromium; the files are checked on disk.
"""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.folder_names import TRASH_DIR
from biosegment.volumes import read_png_slice
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

D = DEMO_DATASET


def test_an_annotation_deleted_in_the_viewer_comes_back_from_its_trash(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    with serve(config_for(root)) as server, chromium_page() as browser:
        http = Http(server.url)
        assert (
            http.post(f"/api/v1/datasets/{D}/annotations", json_body={"name": "scribbles"}).status
            == 201
        )
        labels = np.full((512, 512), 255, dtype=np.uint8)
        labels[10:50, 10:50] = 1
        saved = http.put(
            f"/api/v1/datasets/{D}/annotations/scribbles/slices/0",
            body=labels.tobytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert saved.status == 200
        folder = root / "annotations" / D / "scribbles"

        page = browser.page
        prompt_answer = {"text": ""}

        def answer(dialog):  # "Move ... to the trash?" and "New name of ..."
            if dialog.type == "prompt":
                dialog.accept(prompt_answer["text"])
            else:
                dialog.accept()

        page.on("dialog", answer)
        page.goto(f"{server.url}datasets/{D}")
        page.wait_for_selector("#viewer[data-ready=true]")
        layer = page.locator('.layer[data-layer="annotation:scribbles"]')
        layer.locator('button[data-action="delete"]').click()
        page.wait_for_selector('.layer[data-layer="annotation:scribbles"]', state="detached")
        assert not folder.exists()
        # the layer goes with the catalog's answer; the message follows once the list is read
        page.wait_for_function(
            "() => document.getElementById('run-message').textContent.includes('trash')"
        )
        page.wait_for_function(
            "() => !document.getElementById('annotation-select').textContent.includes('scribbles')"
        )
        browser.screenshot("viewer-trash-deleted.png")

        page.click("#trash-panel summary")
        entry = page.locator("#trash-list .trash-entry")
        assert entry.inner_text().startswith("annotation scribbles")
        (trashed,) = list((root / TRASH_DIR).iterdir())
        assert (trashed / "annotations" / D / "scribbles" / "z00000.png").is_file()
        browser.screenshot("viewer-trash-list.png")
        entry.locator("button").click()
        page.wait_for_selector('.layer[data-layer="annotation:scribbles"]')
        assert "nothing deleted" in page.inner_text("#trash-list")
        assert "scribbles" in page.inner_text("#annotation-select")
        assert np.array_equal(read_png_slice(folder / "z00000.png"), labels)
        browser.screenshot("viewer-trash-restored.png")

        # a model's page renames it and follows it to its new address
        prompt_answer["text"] = "tiny-renamed"
        page.goto(f"{server.url}models/tiny-membrane")
        page.click("#model-rename")
        page.wait_for_url("**/models/tiny-renamed")
        assert (root / "models" / "tiny-renamed" / "model.pytorch").is_file()
        page.click("#model-delete")
        page.wait_for_selector("#model-restore")
        assert not (root / "models" / "tiny-renamed").exists()
        page.click("#model-restore")
        page.wait_for_function(
            "document.getElementById('model-message').textContent === 'Restored.'"
        )
        assert (root / "models" / "tiny-renamed" / "model.pytorch").is_file()

        # deleted and the page left: the dashboard's trash brings it back
        page.click("#model-delete")
        page.wait_for_selector("#model-restore")
        page.goto(server.url)
        row = page.locator("#trash tr", has_text="model tiny-renamed")
        row.locator("button").click()
        page.wait_for_function(
            "document.getElementById('trash-message').textContent.startsWith('Restored')"
        )
        assert (root / "models" / "tiny-renamed" / "model.pytorch").is_file()
        page.wait_for_selector('#models tr[data-name="tiny-renamed"]')

"""Browser: the viewer page's state lives in one store, and the page polls through one loop.

Every panel changes the state through the store and draws what it holds, so a hidden class
stays hidden when the layers panel is drawn again for a new layer; the store tells a listener
only about changes to the part it watches; and the jobs panel, the catalog watch and the live
fine-tune panel are tasks of one polling loop, each at its own pace.
"""

from __future__ import annotations

import pytest

from test_browser_viewer import REDDISH_PIXELS, wait_drawn
from test_browser_viewer_behaviour import add_segmentation, open_viewer
from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder, serve

pytestmark = pytest.mark.browser

TASK_COUNT = "() => import('/static/js/poller.js').then((m) => m.taskCount())"


def test_the_viewer_and_the_dashboard_poll_through_one_loop(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        asked: list[str] = []
        browser.page.on("request", lambda request: asked.append(request.url))
        page = open_viewer(browser, server)
        # the jobs panel, the catalog watch and the fine-tune panel
        assert page.evaluate(TASK_COUNT) == 3
        asked.clear()
        page.wait_for_timeout(6000)  # (events arrive while Playwright waits)
        jobs_panel = [u for u in asked if u.endswith("/api/v1/jobs?limit=20")]
        live = [u for u in asked if "/api/v1/jobs?state=running&kind=train" in u]
        catalog = [u for u in asked if u.endswith(f"/api/v1/datasets/{DEMO_DATASET}")]
        # every 1.5 s, 2 s and 2.5 s: each at its own pace, none faster than it should
        assert 2 <= len(jobs_panel) <= 5, asked
        assert 2 <= len(live) <= 4, asked
        assert 1 <= len(catalog) <= 3, asked

        page.goto(server.url)
        page.wait_for_function("() => Number(document.body.dataset.datasets) > 0")
        assert page.evaluate(TASK_COUNT) == 2  # the jobs panel and the dashboard
        assert browser.errors == []


def test_a_hidden_class_stays_hidden_when_a_new_layer_arrives(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server, "?show=ground_truth")
        wait_drawn(page, 0)
        page.wait_for_function(f"({REDDISH_PIXELS})() > 1000")
        membrane = (
            "[data-layer='ground_truth'] .swatch:has([data-class-id='1']) input[type=checkbox]"
        )
        page.uncheck(membrane)
        page.wait_for_function(f"({REDDISH_PIXELS})() === 0")
        hidden = "() => [...window.biosegmentViewer.layers.find((l) => l.kind === 'ground_truth').hiddenClasses]"
        assert page.evaluate(hidden) == [1]

        add_segmentation(root, "late")  # the panel is drawn again with the new layer
        page.wait_for_selector("[data-layer='segmentation:late']", timeout=10_000)
        assert not page.is_checked(membrane)
        assert page.evaluate(hidden) == [1]
        page.uncheck("#layer-segmentation\\:late-visible")
        wait_drawn(page, 0)
        assert page.evaluate(REDDISH_PIXELS) == 0
        assert browser.errors == []


STORE_CHECK = """async () => {
  const { createStore } = await import('/static/js/viewer_store.js');
  const store = createStore({ cursor: [0, 5, 5], tool: 'brush' });
  const heard = [];
  store.subscribe((s) => s.cursor[0], (z, state, before) => heard.push([z, before, state.tool]));
  store.set({ tool: 'brush' });            // nothing changed
  store.set({ cursor: [0, 7, 7] });         // not the part watched
  store.set({ cursor: [3, 7, 7], tool: 'fill' });
  let changed = true;
  try { store.get().tool = 'pan'; } catch (_) { changed = false; }
  return { heard, frozen: Object.isFrozen(store.get()), tool: store.get().tool, changed };
}"""


def test_the_store_tells_a_listener_only_about_the_part_it_watches(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = open_viewer(browser, server)
        result = page.evaluate(STORE_CHECK)
        assert result["heard"] == [[3, 0, "fill"]]
        assert result["frozen"] and result["tool"] == "fill"
        assert browser.errors == []

"""Browser: a tile the server could not give yet (503 while a live prediction runs, say) is asked
for again after a pause, and drawn when it comes, instead of leaving a hole in the view."""

from __future__ import annotations

import pytest

from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder, serve

pytestmark = pytest.mark.browser


def test_a_tile_answered_503_is_asked_again_and_drawn(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        asked: list[str] = []

        def busy_twice(route):
            # the first two requests of slice 3's raw tile meet a busy server
            asked.append(route.request.url)
            if len(asked) <= 2:
                route.fulfill(status=503, headers={"Retry-After": "1"}, body="busy")
            else:
                route.continue_()

        page.route("**/tiles/raw/z/3/0/0/0.png*", busy_twice)
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.fill("#slice", "3")
        page.dispatch_event("#slice", "input")
        page.wait_for_function(
            "() => { const c = document.getElementById('view-z');"
            " return c.dataset.index === '3' && c.dataset.complete === 'true'; }",
            timeout=15_000,
        )
        assert len(asked) == 3, asked
        # the 503s were answered as the server gave them; nothing else failed
        assert all("503" in error for error in browser.errors), browser.errors

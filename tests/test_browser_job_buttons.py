"""Browser: a button that starts a job asks once, however fast it is clicked twice.

Chromium drives the viewer of a real app; no consumer runs, so the job stays queued. The page's
own requests are counted as the browser sends them.
"""

from __future__ import annotations

import pytest

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


def test_a_double_click_on_segment_this_dataset_sends_one_request(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        sent = []
        page.on(
            "request",
            lambda request: (
                sent.append(request.url)
                if request.method == "POST" and request.url.endswith("/api/v1/jobs/segment")
                else None
            ),
        )
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.select_option("#segment-model", "tiny-membrane")
        page.dblclick("#segment-start")
        link = page.wait_for_selector("#run-message a")
        page.wait_for_function("() => !document.getElementById('segment-start').disabled")
        assert len(sent) == 1, sent
        jobs = Http(server.url).get("/api/v1/jobs").json()
        assert [job["id"] for job in jobs] == [link.inner_text().removeprefix("job ")]
        assert browser.errors == []

"""Browser: what a person sees after ending a run. Discard in the viewer takes the fine-tune's
messages and panel away; Retry on the jobs page shows the new job, not the cancelled one.

A real daemon serves the demo folder with a tiny model; strokes are written as the viewer saves
them, and the fine-tune starts from the viewer's button, as a person starts it.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from biosegment.catalog import open_catalog, refresh
from test_browser_fine_tune_comparison import _post, _strokes
from webui_fixtures import DEMO_DATASET, chromium_page, cpu_daemon

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def daemon(tmp_path):
    with cpu_daemon(tmp_path) as running:
        root = running.config.data_dir
        _strokes(root)
        with open_catalog(root) as catalog:  # registered now, not at the watcher's next look
            refresh(catalog, root)
        yield running


def _job(url: str, job_id: str) -> dict:
    with urllib.request.urlopen(f"{url}api/v1/jobs/{job_id}", timeout=30) as reply:
        return json.loads(reply.read())


def test_discard_clears_the_fine_tune_from_the_viewer(daemon):
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.wait_for_selector("#annotation-select option[value=strokes]", state="attached")
        page.select_option("#annotation-select", "strokes")
        page.select_option("#train-base", "scratch")
        page.fill("#train-minutes", "5")
        page.click("#train-start")
        job_id = page.inner_text("#run-message a").removeprefix("job ")
        assert "Fine-tuning" in page.inner_text("#run-message")
        page.wait_for_selector("#live-panel:not([hidden])")
        page.wait_for_selector("#live-discard:not([disabled])")
        page.click("#live-discard")
        page.wait_for_selector(
            "#live-panel[data-state=cancelled]", state="attached", timeout=60_000
        )
        assert page.is_hidden("#live-panel")
        assert page.inner_text("#run-message") == ""
        assert "cancelled" not in page.inner_text("aside")
        assert _job(daemon.url, job_id)["state"] == "cancelled"
        assert browser.errors == []


def test_retry_on_the_jobs_page_follows_the_new_job(daemon):
    job = _post(
        f"{daemon.url}api/v1/jobs/train",
        {"dataset": DEMO_DATASET, "annotation": "strokes", "base_model": "scratch", "minutes": 5},
    )
    _post(f"{daemon.url}api/v1/jobs/{job['id']}/cancel", {})
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}jobs#{job['id']}")
        page.wait_for_selector(
            f"#job-detail[data-job='{job['id']}'][data-state=cancelled]", timeout=60_000
        )
        page.click("#job-retry")
        page.wait_for_function(
            "old => { const d = document.getElementById('job-detail');"
            " return d.dataset.job && d.dataset.job !== old && !d.hidden; }",
            arg=job["id"],
        )
        new_id = page.get_attribute("#job-detail", "data-job")
        assert _job(daemon.url, new_id)["params"]["retry_of"] == job["id"]
        assert page.evaluate("location.hash") == f"#{new_id}"
        assert page.get_attribute("#job-detail", "data-state") != "cancelled"
        assert page.locator("#job-rows tr.selected").get_attribute("data-job") == new_id
        _post(f"{daemon.url}api/v1/jobs/{new_id}/cancel", {})
        assert browser.errors == []

"""Browser: start a segmentation from the viewer and watch its progress reach 100 % live.

A real daemon runs in this process (watcher, queue consumer and web server), exactly what
``biosegment run --headless`` starts; the model is an untrained U-Net wide enough (fm32) that
the job takes a few seconds on one thread, so the page has progress below 100 % to show even
on a fast, idle machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from job_fixtures import wait_for
from webui_fixtures import (
    DEMO_DATASET,
    chromium_page,
    cpu_daemon,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def daemon(tmp_path):
    with cpu_daemon(tmp_path, feature_maps=32, levels=4) as running:
        yield running


def test_segmentation_started_in_the_viewer_reaches_100_percent(daemon):
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.select_option("#segment-model", "tiny-membrane")
        page.click("#segment-start")
        link = page.wait_for_selector("#run-message a")
        assert link.inner_text().startswith("job ")
        link.click()
        page.wait_for_selector("#job-detail:not([hidden])")
        seen = set()
        for _ in range(1200):  # up to two minutes when the machine is busy
            state = page.get_attribute("#job-detail", "data-state")
            seen.add(page.inner_text("#job-progress"))
            if state in ("succeeded", "failed", "cancelled"):
                break
            page.wait_for_timeout(100)
        assert state == "succeeded", page.inner_text("#job-log")
        page.wait_for_function(
            "() => document.getElementById('job-progress').textContent === '100 %'"
        )
        seen.add(page.inner_text("#job-progress"))
        assert "100 %" in seen and len(seen) >= 2, seen  # updated live, from below 100 %
        assert page.inner_text("#job-result-link").startswith("segmentation tiny-membrane")
        assert "segment isbi2012-demo with tiny-membrane" in page.text_content("#job-title")
        assert page.inner_text("#job-log").strip()
        # the new segmentation is offered as an overlay in the viewer
        page.click("#job-result-link")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.wait_for_selector("[data-layer='segmentation:tiny-membrane']")
        assert page.is_checked("#layer-segmentation\\:tiny-membrane-visible")
        page.wait_for_function(
            "() => document.getElementById('view-z').dataset.complete === 'true'"
        )
        assert browser.errors == []


def test_jobs_page_draws_training_curves(daemon):
    job = daemon.jobs.submit_train(
        dataset=DEMO_DATASET,
        base_model="scratch",
        epochs=3,
        name="curvy",
        steps_per_epoch=2,
        crop_size=64,
        batch_size=2,
        feature_maps=4,
        levels=2,
    )
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}jobs#{job['id']}")
        page.wait_for_selector(
            f"#job-detail[data-job='{job['id']}'][data-state=succeeded]", timeout=180_000
        )
        page.wait_for_function(
            "() => Number(document.getElementById('job-chart').dataset.points) >= 3"
        )
        assert page.inner_text("#job-progress") == "100 %"
        assert page.inner_text("#job-result-link") == "model curvy"
        # (the jobs picture in the docs comes from test_browser_screenshots: a trained model)
        assert browser.errors == []


def _running_fine_tune(daemon, name: str) -> dict:
    return daemon.jobs.submit_train(
        dataset=DEMO_DATASET,
        base_model="scratch",
        minutes=5,
        name=name,
        steps_per_epoch=2,
        crop_size=64,
        batch_size=2,
        feature_maps=4,
        levels=2,
    )


def test_a_running_fine_tune_is_accepted_or_discarded_from_the_jobs_page(daemon):
    """The jobs page ends a running training as the viewer does: Discard leaves nothing;
    Accept publishes the best weights under the name typed and segments the dataset."""
    root = Path(daemon.root)
    dropped = _running_fine_tune(daemon, "dropped")
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}jobs#{dropped['id']}")
        page.wait_for_selector(f"#job-detail[data-job='{dropped['id']}'][data-state=running]")
        page.wait_for_selector("#job-live:not([hidden])")
        assert page.get_attribute("#job-live-link", "href") == f"/datasets/{DEMO_DATASET}"
        page.click("#job-discard")
        page.wait_for_selector(
            f"#job-detail[data-job='{dropped['id']}'][data-state=cancelled]", timeout=60_000
        )
        assert page.is_hidden("#job-live")
        assert not (root / "models" / "dropped").exists()
        folder = root / ".biosegment" / "jobs" / dropped["id"]
        assert wait_for(
            lambda: not (folder / "model").exists() and not (folder / "live").exists(), 10
        )

        kept = _running_fine_tune(daemon, "tuning")
        page.goto(f"{daemon.url}jobs#{kept['id']}")
        page.wait_for_selector(f"#job-detail[data-job='{kept['id']}'][data-state=running]")
        page.wait_for_function(  # an epoch is done: there are weights to keep
            "() => Number(document.getElementById('job-chart').dataset.points) >= 1"
        )
        page.fill("#job-accept-name", "kept")
        page.click("#job-accept")
        page.wait_for_selector(
            f"#job-detail[data-job='{kept['id']}'][data-state=succeeded]", timeout=60_000
        )
        assert page.inner_text("#job-result-link") == "model kept"
        assert (root / "models" / "kept" / "model.pytorch").is_file()
        row = daemon.jobs.job(kept["id"])
        assert row["result"]["accepted"] and row["result"]["segmentation_job"]
        assert browser.errors == []

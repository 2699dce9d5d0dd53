"""Browser: the pictures in the docs show a model that learned something.

The shipped demo model (demo-membrane) segments the demo dataset and is fine-tuned on its ground
truth with a real daemon; the viewer shows its segmentation with its scores against the ground
truth and the fine-tuning's live panel, the fine-tune is accepted after a few epochs, and the
jobs page shows its curves. The viewer and jobs pictures in docs/screenshots come from here
(`make screenshots`).
"""

from __future__ import annotations

import dataclasses
import re
import time

import pytest

from biosegment.daemon import Daemon
from biosegment.webui.server import create_server
from test_browser_viewer import wait_drawn
from webui_fixtures import DEMO_DATASET, chromium_page, config_for, make_demo_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def daemon(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    config = config_for(root)
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, device="cpu"))
    running = Daemon(config, server_factory=create_server).start()
    try:
        yield running
    finally:
        running.stop()


def test_the_demo_model_segments_and_fine_tunes_for_the_pictures(daemon):
    segment = daemon.jobs.submit_segment(DEMO_DATASET, "demo-membrane")
    train = daemon.jobs.submit_train(
        dataset=DEMO_DATASET,
        base_model="demo-membrane",
        epochs=500,  # long enough to be running when the viewer is shown; accepted below
        name="demo-membrane-tuned",
        steps_per_epoch=2,
        crop_size=128,
        batch_size=2,
    )
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{daemon.url}jobs#{segment['id']}")
        page.wait_for_selector(
            f"#job-detail[data-job='{segment['id']}'][data-state=succeeded]", timeout=300_000
        )
        name = re.match(r"segmentation (.+) of ", page.inner_text("#job-result-link")).group(1)

        page.goto(f"{daemon.url}datasets/{DEMO_DATASET}?show=segmentation:{name}")
        page.wait_for_selector("#viewer[data-ready=true]")
        wait_drawn(page, 0)
        scores = page.wait_for_selector(
            f"[data-scores='{name}'][data-ready=true]", timeout=60_000
        ).inner_text()
        iou = float(re.search(r"membrane: IoU ([0-9.]+)", scores).group(1))
        assert iou > 0.5, scores  # the shipped model has learned membranes
        # the fine-tuning's live panel, at the top, with what its first snapshot predicts
        page.wait_for_selector("#live-panel[data-version]", timeout=300_000)
        wait_drawn(page, 0)
        browser.screenshot("viewer.png")
        # a person who likes what they see accepts: the job stops and publishes its model
        for _ in range(600):
            if len(daemon.jobs.job(train["id"]).get("metrics") or []) >= 3:
                break
            time.sleep(0.5)
        daemon.jobs.accept_training(train["id"])

        page.goto(f"{daemon.url}jobs#{train['id']}")
        page.wait_for_selector(
            f"#job-detail[data-job='{train['id']}'][data-state=succeeded]", timeout=600_000
        )
        page.wait_for_function(
            "() => Number(document.getElementById('job-chart').dataset.points) >= 3"
        )
        assert page.inner_text("#job-result-link") == "model demo-membrane-tuned"
        browser.screenshot("jobs.png")
        assert browser.errors == []

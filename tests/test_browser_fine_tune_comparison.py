"""Browser: a fine-tune says, while it runs, whether it is better or worse than its base model,
and Accept on a worse model asks first, offering to keep the base.

A real daemon serves the demo folder. The base model is small and trained for a few seconds on
the demo's ground truth, so it is good on the strokes painted below. The fine-tune is started
through the API (as a script or the CLI would), from the strokes alone; once it runs, the
strokes are repainted with the classes swapped, as a person who picked the wrong class would,
and the running job learns them: on the strokes held out at the start it then falls far below
its base model, and says so.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.engine.train_data import TrainingData
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.training import train_model
from biosegment.volumes import read_png_slice, write_png_slice
from webui_fixtures import DEMO_DATASET, chromium_page, cpu_daemon

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _trained_base(root) -> None:
    """A small membrane model trained on the demo's ground truth (all 5 slices), published."""
    dataset = root / "EM" / DEMO_DATASET
    image = tifffile.imread(dataset / "raw" / f"{DEMO_DATASET}.tif")
    truth = tifffile.imread(dataset / "labels" / "labels.tif")
    classes = (truth == 0).astype(np.uint8)  # ISBI: 0 = membrane -> class 1
    train_model(
        TrainingData(
            [(image, classes)],
            classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}],
        ),
        root / "models" / "good-membrane",
        TrainingSettings(
            feature_maps=4,
            levels=2,
            norm="none",
            max_steps=80,
            crop_size=64,
            batch_size=4,
            learning_rate=5e-3,
            validation_fraction=0,
            device="cpu",
        ),
    )


def _strokes(root) -> None:
    """Strokes of both classes on two slices, taken from the ground truth (so the base model
    agrees with them), written as the viewer saves an annotation."""
    dataset = root / "EM" / DEMO_DATASET
    truth = tifffile.imread(dataset / "labels" / "labels.tif")
    folder = root / "annotations" / DEMO_DATASET / "strokes"
    folder.mkdir(parents=True)
    for z in (1, 3):
        painted = np.full(truth.shape[1:], 255, np.uint8)
        for row in range(20, 500, 40):
            line = truth[z, row, 20:500]
            painted[row, 20:500] = np.where(line == 0, 1, 0)
        write_png_slice(folder / f"z{z:05d}.png", painted)
    classes = [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}]
    (folder / "annotation.json").write_text(json.dumps({"classes": classes}), encoding="utf-8")


def _swap_classes(root) -> None:
    """Repaint every stroke with the other class, as the viewer saves a slice."""
    folder = root / "annotations" / DEMO_DATASET / "strokes"
    for path in sorted(folder.glob("z*.png")):
        painted = read_png_slice(path)
        swapped = np.where(painted == 255, 255, 1 - np.minimum(painted, 1)).astype(np.uint8)
        write_png_slice(path, swapped)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_a_worse_fine_tune_says_so_live_and_accept_offers_to_keep_the_base(tmp_path):
    with cpu_daemon(tmp_path) as daemon:
        root = daemon.config.data_dir
        _trained_base(root)
        _strokes(root)
        with open_catalog(root) as catalog:
            refresh(catalog, root)
        job = _post(
            f"{daemon.url}api/v1/jobs/train",
            {
                "dataset": DEMO_DATASET,
                "annotation": "strokes",
                "base_model": "good-membrane",
                "minutes": 5,
                # from the strokes alone: the base model's view of the unpainted pixels
                # (keep_base) would hold the weights back
                "keep_base": 0,
                "learning_rate": 5e-3,
                "name": "ruined",
            },
        )
        with chromium_page() as browser:
            page = browser.page
            page.goto(f"{daemon.url}datasets/{DEMO_DATASET}")
            page.wait_for_selector("#viewer[data-ready=true]")
            # the viewer follows the running fine-tune; its figure is compared with the base
            page.wait_for_selector("#live-panel[data-version]", timeout=90_000)
            page.wait_for_function(
                "() => document.getElementById('live-comparison').textContent !== ''",
                timeout=90_000,
            )
            first = page.inner_text("#live-comparison")
            assert "good-membrane" in first
            # it follows every snapshot, not once per epoch: the step in the figure moves on
            step = page.inner_text("#live-validation")
            page.wait_for_function(
                "s => document.getElementById('live-validation').textContent !== s",
                arg=step,
                timeout=60_000,
            )
            # the wrong class painted over every stroke: the job learns it within seconds
            _swap_classes(root)
            page.wait_for_selector("#live-comparison[data-verdict=worse]", timeout=90_000)
            assert page.inner_text("#live-comparison").startswith("worse than good-membrane by")

            # Accept asks first and offers to keep the base model
            page.click("#live-accept")
            page.wait_for_selector("#live-worse:not([hidden])")
            assert "worse than good-membrane" in page.inner_text("#live-worse-text")
            assert page.inner_text("#live-keep-base") == "Keep good-membrane"
            page.click("#live-keep-base")
            # keeping the base discards the run: the panel goes (it has nothing left to show)
            page.wait_for_selector(
                "#live-panel[data-state=cancelled]", state="attached", timeout=90_000
            )
            assert page.is_hidden("#live-panel")
            assert browser.errors == []
        with urllib.request.urlopen(f"{daemon.url}api/v1/jobs/{job['id']}", timeout=30) as reply:
            assert json.loads(reply.read())["state"] == "cancelled"
        assert not (root / "models" / "ruined").exists()
        assert (root / "models" / "good-membrane" / "model.pytorch").is_file()

"""Browser: the dashboard shows the data folder and updates itself when something is registered."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.daemon import Daemon
from biosegment.webui.server import create_server
from webui_fixtures import (
    DEMO_DATASET,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    serve,
)

pytestmark = pytest.mark.browser


def test_dashboard_updates_without_a_reload(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(
        root,
        metrics=[{"epoch": 1, "loss": 0.7, "dice": 0.61}, {"epoch": 2, "loss": 0.4, "dice": 0.78}],
    )
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(server.url)
        card = page.wait_for_selector(f".card[data-name='{DEMO_DATASET}']")
        assert "5 x 512 x 512" in card.inner_text() and "50 x 4 x 4 nm" in card.inner_text()
        page.wait_for_function(
            "() => { const img = document.querySelector('.card img');"
            " return img && img.complete && img.naturalWidth > 0; }"
        )
        model_row = page.inner_text("#models tr[data-name='tiny-membrane']")
        assert "membrane" in model_row and "dice 0.780" in model_row and "loss 0.400" in model_row
        assert page.is_hidden("#problems")
        browser.screenshot("dashboard.png")

        # the daemon registers a new stack and finds a broken setup.json: no reload needed
        new = root / "EM" / "fresh-stack"
        new.mkdir()
        tifffile.imwrite(
            new / "fresh.tif", np.zeros((3, 64, 80), np.uint8), photometric="minisblack"
        )
        (root / "setup.json").write_text('{"datasets": [}', encoding="utf-8")
        with open_catalog(root) as catalog:
            refresh(catalog, root)
        card = page.wait_for_selector(".card[data-name='fresh-stack']", timeout=10_000)
        assert "3 x 64 x 80" in card.inner_text()
        page.wait_for_selector("#problems:not([hidden])")
        assert "setup.json" in page.inner_text("#problem-list")
        assert browser.errors == []


def test_problems_box_names_each_dataset_and_model_in_error(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    (root / "EM" / "empty.tif").write_bytes(b"")
    (root / "models" / "broken.pytorch").write_bytes(b"not a checkpoint")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(server.url)
        page.wait_for_selector("#problems:not([hidden])")
        listed = page.inner_text("#problem-list")
        assert "dataset empty: EM/empty.tif: empty file (0 bytes)" in listed
        assert "model broken" in listed and "broken.pytorch" in listed
        assert browser.errors == []


def test_a_dataset_whose_files_are_gone_leaves_the_list_and_is_named_as_a_problem(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    stack = root / "EM" / "short-lived.tif"
    tifffile.imwrite(stack, np.zeros((2, 32, 32), np.uint8), photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(server.url)
        page.wait_for_selector(".card[data-name='short-lived']")
        # the card's thumbnail must have arrived first: deleting the file under a request in
        # flight answers that request 404, which is right but not what this test is about
        page.wait_for_function(
            """() => { const img = document.querySelector(".card[data-name='short-lived'] img");
                       return img !== null && img.complete && img.naturalWidth > 0; }"""
        )
        stack.unlink()
        with open_catalog(root) as catalog:
            refresh(catalog, root)
        page.wait_for_selector(".card[data-name='short-lived']", state="detached", timeout=10_000)
        page.wait_for_selector("#problems:not([hidden])")
        assert "dataset short-lived: no longer in the data folder" in page.inner_text(
            "#problem-list"
        )
        assert page.query_selector(f".card[data-name='{DEMO_DATASET}']") is not None
        assert browser.errors == []


def test_a_deleted_dataset_leaves_the_dashboard_and_its_problems_once_confirmed_gone(tmp_path):
    """With the daemon serving: missing at first, then forgotten without a reindex."""
    root = make_demo_folder(tmp_path / "data")
    config = config_for(root)
    config = dataclasses.replace(
        config, watch=dataclasses.replace(config.watch, forget_after_seconds=2.0)
    )
    daemon = Daemon(config, server_factory=create_server).start()
    try:
        assert daemon.watcher.wait_idle(30)
        with chromium_page() as browser:
            page = browser.page
            page.goto(daemon.url)
            page.wait_for_selector(f".card[data-name='{DEMO_DATASET}']")
            stack = root / "EM" / "short-lived" / "raw" / "stack.tif"
            stack.parent.mkdir(parents=True)
            tifffile.imwrite(stack, np.zeros((2, 32, 32), np.uint8), photometric="minisblack")
            page.wait_for_selector(".card[data-name='short-lived']", timeout=15_000)
            page.wait_for_function(
                """() => { const img = document.querySelector(".card[data-name='short-lived'] img");
                           return img !== null && img.complete && img.naturalWidth > 0; }"""
            )
            shutil.rmtree(root / "EM" / "short-lived")
            page.wait_for_selector(
                ".card[data-name='short-lived']", state="detached", timeout=15_000
            )
            # once forgotten it is no longer named as a problem either
            page.wait_for_function(
                "() => document.querySelector('#problems').hidden", timeout=20_000
            )
            assert "short-lived" not in page.inner_text("body")
            assert page.query_selector(f".card[data-name='{DEMO_DATASET}']") is not None
            assert browser.errors == []
    finally:
        daemon.stop()

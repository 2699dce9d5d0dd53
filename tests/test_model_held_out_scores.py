"""The demo model's held-out evaluation (ISBI slices 25-29, NeuroProof z 200-249) is shown, each
score saying what it was computed on: in the model API, on the model page and on the dashboard."""

from __future__ import annotations

import pytest

from biosegment.datafolder import DEMO_MODEL
from biosegment.webui.held_out import describe_data
from webui_fixtures import Http, chromium_page, config_for, make_demo_folder, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("held-out") / "data")
    with serve(config_for(root)) as server:
        yield server.url


def test_data_names_in_words():
    assert describe_data("isbi_2012_slices_25_29") == "ISBI 2012 slices 25-29"
    assert describe_data("neuroproof_z200_249") == "NeuroProof z 200-249"


def test_model_api_and_dashboard_carry_the_held_out_scores(site):
    http = Http(site)
    model = http.get(f"/api/v1/models/{DEMO_MODEL}").json()
    by_data = {entry["data"]: entry for entry in model["held_out"]}
    # the card's evaluation also records the machine and the command: neither is data
    assert sorted(by_data) == ["ISBI 2012 slices 25-29", "NeuroProof z 200-249"]
    isbi = by_data["ISBI 2012 slices 25-29"]
    assert isbi["scores"]["membrane_dice"] == pytest.approx(0.8075, abs=1e-4)
    assert isbi["short"] == "Dice 0.807 on ISBI 2012 slices 25-29 (held out)"
    assert "pixel error 0.077" in isbi["text"] and "seconds" not in isbi["text"]
    assert by_data["NeuroProof z 200-249"]["short"].startswith("Dice 0.589 on NeuroProof")
    assert "never used for training" in model["held_out_note"]
    dashboard = http.get("/api/v1/dashboard").json()
    (demo,) = [m for m in dashboard["models"] if m["name"] == DEMO_MODEL]
    assert [e["short"] for e in demo["held_out"]] == [e["short"] for e in model["held_out"]]


@pytest.mark.browser
def test_model_page_and_dashboard_show_what_each_score_was_computed_on(site):
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{site}models/{DEMO_MODEL}")
        page.wait_for_selector("#model-facts .held-out")
        facts = page.inner_text("#model-facts")
        assert "Dice 0.807" in facts and "on ISBI 2012 slices 25-29 (held out)" in facts
        assert "NeuroProof z 200-249" in facts
        assert "see the held-out scores" in facts  # best metrics no longer blank
        page.goto(site)
        row = page.wait_for_selector(f"#models tr[data-name='{DEMO_MODEL}'] td.metrics div")
        assert row is not None
        column = page.inner_text(f"#models tr[data-name='{DEMO_MODEL}'] td.metrics")
        assert "Dice 0.807 on ISBI 2012 slices 25-29 (held out)" in column
        assert "machine" not in column
        assert browser.errors == []

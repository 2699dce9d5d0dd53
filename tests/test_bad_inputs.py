"""The bad-input corpus (tests/data/bad/, made by make_corpus.py): every broken stack, broken
setup.json, hostile name and hostile request yields a clear error naming what is wrong, and
leaves every other dataset and every job exactly as it was.

Each case starts from a copy of one working data folder (the demo dataset, a second small
stack, and jobs in several states), drops one bad input in, and lets the product at it the way
the daemon, the CLI and the web API would: a catalog refresh, `biosegment info` and
`biosegment status`, and real HTTP against the app served by waitress on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from biosegment.datafolder import DEMO_DATASET, init_data_folder
from webui_fixtures import Http, chromium_page, config_for, serve

BAD = Path(__file__).resolve().parent / "data" / "bad"
GOOD = ("good-a", DEMO_DATASET)

#: Each broken volume, and what its error must say (after naming the file).
VOLUMES = {
    "truncated.tif": r"truncated: the header declares 6 slices",
    "corrupt-ifd.tif": r"reading the TIFF header failed",
    "not-a-tiff.tif": r"not a TIFF file",
    "empty.tif": r"empty file \(0 bytes\)",
    "bomb-dimensions.tif": r"declares 200000x200000 pixels",
    "bomb-imagej-slices.tif": r"declares 999999 slices",
    "rgb.tif": r"multichannel .* not supported",
    "float64.tif": r"64-bit float is not supported",
    "pngseq-mixed-sizes": r"z002\.png: slice is 40x40 pixels but the first slice",
    "pngseq-broken-slice": r"z001\.png: corrupt PNG",
    "tifseq-mixed-dtypes": r"s02\.tif: slice holds uint16 but the first slice",
    "short.mrc": r"truncated: the header claims 131072 x 64 x 64 voxels .* but the file holds "
    r"32768 bytes",
    "absurd.zarr": r"shape: claims 1000000000000 x 1000000000000 x 1000000000000 = 1e\+36 "
    r"voxels, more than the limit .*limits\.max_voxels",
}

#: Each broken setup.json, and the key (or line) its problem must point at.
SETUP = {
    "trailing-comma.json": ("line 1, column 38", r"invalid JSON"),
    "truncated.json": ("line 1, column 54", r"invalid JSON"),
    "not-utf8.json": ("byte 17", r"not UTF-8"),
    "deep-nesting.json": ("(top level)", r"nested too deeply"),
    "empty.json": ("line 1, column 1", r"invalid JSON"),
    "not-an-object.json": ("(top level)", r"expected a JSON object"),
    "unknown-file-type.json": ("datasets[0].file_type", r"unknown file_type 'tif9d'"),
    "location-outside-root.json": ("EM_location", r"contains '\.\.'"),
    "absolute-location.json": ("EM_location", r"absolute path"),
    "model-location-escapes.json": ("models[0].location", r"contains '\.\.'"),
    "wrong-types.json": ("datasets[0].resolution", r"expected a list of positive numbers"),
    "datasets-not-a-list.json": ("datasets", r"expected a list"),
    "title-with-separators.json": ("datasets[0].title", r"contains '\.\.'"),
    "dataset-files-missing.json": ("datasets[0]", r"no-such-dataset.*not found"),
}

#: Variants that are valid documents with one bad entry (the rest of the document is applied).
VALID_SETUPS = {"dataset-files-missing.json"}

HOSTILE_NAMES = json.loads((BAD / "hostile_names.json").read_text(encoding="utf-8"))


def test_the_corpus_is_complete():
    """Every file the generator makes is committed, and every one of them is tested here."""
    made = {p.name for p in (BAD / "volumes").iterdir()}
    assert made == set(VOLUMES)
    assert {p.name for p in (BAD / "setup").iterdir()} == set(SETUP)
    assert len(HOSTILE_NAMES) >= 6


# -- a working data folder, copied per test ------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-inputs") / "data"
    init_data_folder(root, demo=True)
    tifffile.imwrite(
        root / "EM" / "good-a.tif",
        np.random.default_rng(0).integers(0, 256, (3, 32, 48)).astype(np.uint8),
        photometric="minisblack",
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert {catalog.dataset(name)["state"] for name in GOOD} == {"ok"}
        for state in ("queued", "succeeded", "failed"):
            job = catalog.create_job("segment", {"dataset": "good-a", "model": "m"})
            if state != "queued":
                catalog.update_job(job["id"], state=state, progress=1.0)
    return root


@pytest.fixture
def folder(template, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(template, root)
    return root


def snapshot(root: Path) -> dict:
    """Everything that must not change: the good datasets' rows and every job, in full."""
    with open_catalog(root) as catalog:
        return {
            "datasets": sorted(
                (d for d in catalog.datasets() if d["name"] in GOOD), key=lambda d: d["name"]
            ),
            "jobs": catalog.jobs(limit=1000),
        }


def refreshed(root: Path):
    with open_catalog(root) as catalog:
        return refresh(catalog, root)


def dataset_row(root: Path, name: str) -> dict:
    with open_catalog(root) as catalog:
        return catalog.dataset(name)


# -- broken image stacks -------------------------------------------------------------------


@pytest.mark.parametrize("item", sorted(VOLUMES))
def test_a_broken_stack_is_an_error_on_its_own_dataset_only(folder, item):
    before = snapshot(folder)
    source = BAD / "volumes" / item
    target = folder / "EM" / item
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    name = Path(item).stem if source.is_file() or item.endswith(".zarr") else item

    refreshed(folder)

    row = dataset_row(folder, name)
    assert row["state"] == "error"
    assert row["error"].startswith(f"EM/{item}"), row["error"]
    assert re.search(VOLUMES[item], row["error"]), row["error"]
    assert snapshot(folder) == before
    # `biosegment status` lists the folder without tripping over it
    status = CliRunner().invoke(main, ["--data", str(folder), "status", "--json"])
    assert status.exit_code == 1, status.output  # it lists the broken volume as a problem
    assert json.loads(status.output)["problems"]


@pytest.mark.parametrize("item", sorted(VOLUMES))
def test_info_names_the_file_and_the_reason_in_one_line(item):
    result = CliRunner().invoke(main, ["info", str(BAD / "volumes" / item)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and item in lines[0], result.output
    assert re.search(VOLUMES[item], lines[0]), lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("item", ["bomb-dimensions.tif", "bomb-imagej-slices.tif"])
def test_tiff_bombs_are_refused_without_allocating_what_they_declare(item):
    """Under a 1.5 GB address-space limit a 40 GB (or 1.5 GB) allocation would fail loudly."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))

    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT")}
    proc = subprocess.run(
        [sys.executable, "-m", "biosegment", "info", str(BAD / "volumes" / item)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=limit_memory,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr
    assert re.search(VOLUMES[item], proc.stderr), proc.stderr


# -- broken setup.json ---------------------------------------------------------------------


@pytest.mark.parametrize("item", sorted(SETUP))
def test_a_broken_setup_json_is_reported_and_changes_nothing(folder, item):
    before = snapshot(folder)
    shutil.copy(BAD / "setup" / item, folder / "setup.json")

    report = refreshed(folder)

    where, reason = SETUP[item]
    problem = next((p for p in report.problems if p["source"] == "setup.json"), None)
    assert problem is not None, report.problems
    assert problem["where"] == where and re.search(reason, problem["reason"]), problem
    after = snapshot(folder)
    if item in VALID_SETUPS:
        # A valid document is applied: the demo dataset it no longer declares loses its declared
        # voxel size, as it should. Everything the document does not touch stays as it was.
        assert report.setup == "valid"
        assert after["jobs"] == before["jobs"]
        assert before["datasets"][0]["name"] == "good-a"
        # good-a, which only the folder knows, follows the default project: the document lists
        # none, so it has none now; the rest of its row is as it was
        assert (
            before["datasets"][0]["project"] == "Demo" and after["datasets"][0]["project"] is None
        )
        changed = {"project", "updated_at"}
        assert {k: v for k, v in after["datasets"][0].items() if k not in changed} == {
            k: v for k, v in before["datasets"][0].items() if k not in changed
        }
    else:
        assert report.setup == "invalid"
        assert after == before
    status = CliRunner().invoke(main, ["--data", str(folder), "status"])
    assert status.exit_code == 1 and f"setup.json [{where}]" in status.output, status.output


@pytest.mark.parametrize("side_file", ["annotation.json", "segmentation.json", "annotations.json"])
def test_side_files_nested_thousands_deep_do_not_crash_a_refresh(folder, side_file):
    deep = (BAD / "setup" / "deep-nesting.json").read_bytes()
    before = snapshot(folder)
    if side_file == "segmentation.json":
        target = folder / "segmentations" / "good-a" / "deep"
        target.mkdir(parents=True)
        tifffile.imwrite(
            target / "labels.tif", np.zeros((3, 32, 48), np.uint8), photometric="minisblack"
        )
    elif side_file == "annotation.json":
        target = folder / "annotations" / "good-a" / "deep"
        target.mkdir(parents=True)
    else:
        target = folder / "annotations" / "good-a"
        target.mkdir(parents=True)
    (target / side_file).write_bytes(deep)
    refreshed(folder)
    assert snapshot(folder) == before


# -- hostile names and hostile requests over HTTP ------------------------------------------


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, template):
    root = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(template, root)
    stack = np.random.default_rng(1).integers(0, 256, (2, 32, 32)).astype(np.uint8)
    for name in HOSTILE_NAMES:
        (root / "EM" / name).mkdir()
        tifffile.imwrite(root / "EM" / name / "stack.tif", stack)
    outside = tmp_path_factory.mktemp("outside")
    tifffile.imwrite(outside / "secret.tif", stack)
    (root / "EM" / "escape").symlink_to(outside, target_is_directory=True)
    report = refreshed(root)
    with serve(config_for(root)) as server:
        yield root, Http(server.url), report


def test_hostile_names_are_registered_verbatim_and_a_symlink_out_is_refused(hostile_site):
    root, http, report = hostile_site
    names = {d["name"] for d in http.get("/api/v1/datasets").json()}
    assert set(HOSTILE_NAMES) <= names
    assert "escape" not in names
    assert any(
        p["source"] and "escape" in p["source"] and "data folder" in p["reason"]
        for p in report.problems
    ), report.problems
    for name in HOSTILE_NAMES:
        reply = http.get(f"/api/v1/datasets/{quote(name, safe='')}")
        assert reply.status == 200 and reply.json()["name"] == name, name


def test_hostile_names_are_escaped_in_pages(hostile_site):
    _, http, _ = hostile_site
    for name in HOSTILE_NAMES:
        reply = http.get(f"/datasets/{quote(name, safe='')}")
        assert reply.status == 200, name
        html = reply.body.decode()
        if any(ch in name for ch in "<>\"'&"):
            assert name not in html, f"{name!r} appears unescaped"
    assert "<img src=x onerror" not in http.get("/").body.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/datasets/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/datasets/%2e%2e",
        "/api/v1/datasets/escape",
        "/datasets/..%2Fsetup.json",
        "/api/v1/datasets/good-a/annotations/..%2F..%2Fsetup.json",
    ],
)
def test_paths_that_try_to_leave_the_folder_are_not_found(hostile_site, path):
    _, http, _ = hostile_site
    reply = http.get(path)
    assert reply.status in (400, 404), (path, reply.status, reply.body[:200])


@pytest.mark.parametrize(
    "name", ["../../escape", "..", ".hidden", "a/b", "<script>x</script>", "x" * 300]
)
def test_new_annotation_names_that_are_not_plain_folder_names_are_refused(hostile_site, name):
    root, http, _ = hostile_site
    reply = http.post("/api/v1/datasets/good-a/annotations", json_body={"name": name})
    assert reply.status == 400 and reply.json()["field"] == "name", reply.body
    assert not (root / "annotations" / "good-a" / name).exists()
    assert not (root / "escape").exists() and not (root.parent / "escape").exists()


def test_request_bodies_nested_thousands_deep_are_refused(hostile_site):
    root, http, _ = hostile_site
    deep = (BAD / "setup" / "deep-nesting.json").read_bytes()
    for path in ("/api/v1/jobs/segment", "/api/v1/datasets/good-a/annotations"):
        reply = http.post(path, body=deep, headers={"Content-Type": "application/json"})
        assert reply.status == 400, (path, reply.status, reply.body[:300])
        assert "nested" in reply.json()["error"]
    assert snapshot(root)["jobs"] == snapshot(root)["jobs"]


def test_an_annotation_slice_gzip_bomb_is_refused(hostile_site):
    root, http, _ = hostile_site
    created = http.post("/api/v1/datasets/good-a/annotations", json_body={"name": "bomb-target"})
    assert created.status == 201, created.body
    # 200 MB of zeros in about 200 KB: far past the 64 MB request bound once inflated.
    bomb = gzip.compress(bytes(200 * 2**20), compresslevel=9)
    reply = http.put(
        "/api/v1/datasets/good-a/annotations/bomb-target/slices/0",
        body=bomb,
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
    )
    assert reply.status == 413 and reply.json()["field"] == "body"
    assert not list((root / "annotations" / "good-a" / "bomb-target").glob("z*.png"))


def test_hostile_names_run_no_script_in_a_browser(hostile_site):
    root, http, _ = hostile_site
    with chromium_page() as browser:
        page = browser.page
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(http.base + "/")
        page.wait_for_function("document.body.innerText.includes('unicode-')")
        text = page.inner_text("body")
        page.goto(http.base + "/datasets/" + quote(HOSTILE_NAMES[0], safe=""))
        page.wait_for_timeout(500)
        injected = page.evaluate(
            "document.querySelectorAll('img[src=x], script:not([src])').length"
        )
    assert dialogs == [] and injected == 0
    assert "<img src=x onerror=alert(1)>" in text

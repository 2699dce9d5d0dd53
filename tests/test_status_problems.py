"""`status`, `datasets` and `models` name every entry in error with its reason, and the counts
never contradict the list (a zero-byte TIFF, a stack that is not a TIFF, a broken model file).
`status` says by its exit code whether it listed problems (1), none (0), or could not look (2)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from biosegment.cli import main
from webui_fixtures import make_demo_folder


def broken_folder(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    (root / "EM" / "empty.tif").write_bytes(b"")
    (root / "EM" / "garbage.tif").write_bytes(b"not a tiff at all")
    (root / "models" / "broken.pytorch").write_bytes(b"not a checkpoint")
    return root


def cli(root, *args, exit_code=0):
    result = CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    return result.output


def test_status_lists_each_entry_in_error_with_its_file_and_reason(tmp_path):
    root = broken_folder(tmp_path)
    out = cli(root, "status", exit_code=1)
    assert "datasets:      3 (1 ok, 2 error)" in out
    assert "Problems:    none" not in out
    problems = out.split("Problems (", 1)[1]
    assert "dataset empty: EM/empty.tif: empty file (0 bytes)" in problems
    assert "dataset garbage: EM/garbage.tif:" in problems
    assert "model broken:" in problems and "broken.pytorch" in problems
    counted = int(problems.split(")", 1)[0])
    assert counted == 3 and "problems:      3" in out

    document = json.loads(cli(root, "status", "--json", exit_code=1))
    kinds = {(p.get("kind"), p.get("name")) for p in document["problems"]}
    assert {("dataset", "empty"), ("dataset", "garbage"), ("model", "broken")} <= kinds
    assert document["counts"]["problems"]["total"] == len(document["problems"])


def test_datasets_and_models_tables_have_a_short_reason_column(tmp_path):
    root = broken_folder(tmp_path)
    datasets = cli(root, "datasets").splitlines()
    assert datasets[0].split()[-1] == "REASON"
    empty = next(line for line in datasets if line.startswith("empty "))
    assert "error" in empty and "EM/empty.tif: empty file (0 bytes)" in empty
    demo = next(line for line in datasets if line.startswith("isbi2012-demo"))
    assert demo.rstrip().endswith("ok")  # nothing to explain
    assert all(len(line) < 200 for line in datasets)
    models = cli(root, "models").splitlines()
    assert models[0].split()[-1] == "REASON"
    broken = next(line for line in models if line.startswith("broken "))
    assert "error" in broken and "broken.pytorch" in broken


def test_a_clean_folder_still_says_none(tmp_path):
    out = cli(make_demo_folder(tmp_path / "data"), "status")
    assert "Problems:    none" in out and "problems:      0" in out


def test_status_exit_code_says_whether_problems_were_listed(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    assert "Problems:    none" in cli(root, "status", exit_code=0)
    assert json.loads(cli(root, "status", "--json", exit_code=0))["problems"] == []
    (root / "EM" / "empty.tif").write_bytes(b"")
    assert "dataset empty: EM/empty.tif" in cli(root, "status", exit_code=1)
    assert json.loads(cli(root, "status", "--json", exit_code=1))["problems"]


def test_status_that_cannot_look_at_the_folder_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "nowhere"), "status"])
    assert result.exit_code == 2, result.output
    assert "biosegment init" in result.output and "Traceback" not in result.output

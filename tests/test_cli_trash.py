"""`biosegment rename`, `delete` and `trash` on a real data folder: files move, never vanish, a
model in use is refused with the reason, a restore brings everything back, and the audit log
says who did it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from biosegment.accounts import open_accounts
from biosegment.catalog import open_catalog
from biosegment.cli import main
from biosegment.folder_names import TRASH_DIR
from webui_fixtures import DEMO_DATASET, make_demo_folder, make_tiny_model


def invoke(root, *args):
    return CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)


def test_rename_delete_and_restore_a_model_from_the_command_line(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    weights = (root / "models" / "tiny-membrane" / "model.pytorch").read_bytes()

    refused = invoke(root, "delete", "model", "demo-membrane")
    assert refused.exit_code == 1
    assert "project 'Demo' has it as default_model" in refused.output
    assert (root / "models" / "demo-membrane" / "model.pytorch").is_file()
    bad = invoke(root, "rename", "model", "tiny-membrane", "no/slash")
    assert bad.exit_code == 1 and "NEW_NAME" in bad.output

    renamed = invoke(root, "rename", "model", "tiny-membrane", "tiny-v2", "--json")
    assert renamed.exit_code == 0, renamed.output
    assert json.loads(renamed.output)["location"] == "models/tiny-v2/model.pytorch"

    deleted = invoke(root, "delete", "model", "tiny-v2", "--json")
    assert deleted.exit_code == 0, deleted.output
    entry = json.loads(deleted.output)["id"]
    assert not (root / "models" / "tiny-v2").exists()
    assert (root / TRASH_DIR / entry / "models" / "tiny-v2" / "model.pytorch").read_bytes() == (
        weights
    )
    listing = invoke(root, "trash")
    assert entry in listing.output and "model tiny-v2" in listing.output
    with open_catalog(root) as catalog:
        assert "tiny-v2" not in [m["name"] for m in catalog.models()]

    restored = invoke(root, "trash", "restore", entry)
    assert restored.exit_code == 0, restored.output
    assert "Restored model tiny-v2" in restored.output
    assert (root / "models" / "tiny-v2" / "model.pytorch").read_bytes() == weights
    with open_catalog(root) as catalog:
        assert catalog.model("tiny-v2")["state"] == "ok"
    assert invoke(root, "trash", "--json").output.strip() == "[]"
    again = invoke(root, "trash", "restore", entry)
    assert again.exit_code == 1 and "no entry" in again.output

    with open_accounts(root) as accounts:
        actions = [e["action"] for e in accounts.audit_log(action="item.*")]
    assert actions == ["item.restore", "item.delete", "item.rename"]


def test_an_annotation_is_named_with_its_dataset_and_its_restore_refuses_a_taken_name(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    folder = root / "annotations" / DEMO_DATASET / "scribbles"
    folder.mkdir(parents=True)
    (folder / "annotation.json").write_text(json.dumps({"name": "scribbles", "classes": []}))

    unnamed = invoke(root, "delete", "annotation", "scribbles")
    assert unnamed.exit_code == 1 and "DATASET/NAME" in unnamed.output
    deleted = invoke(root, "delete", "annotation", f"{DEMO_DATASET}/scribbles", "--json")
    assert deleted.exit_code == 0, deleted.output
    entry = json.loads(deleted.output)["id"]
    assert not folder.exists()

    (root / "annotations" / DEMO_DATASET / "Scribbles").mkdir()
    (root / "annotations" / DEMO_DATASET / "Scribbles" / "annotation.json").write_text("{}")
    clash = invoke(root, "trash", "restore", entry)
    assert clash.exit_code == 1 and "'Scribbles'" in clash.output
    assert (root / TRASH_DIR / entry / "annotations" / DEMO_DATASET / "scribbles").is_dir()


def test_an_annotation_imported_from_an_old_annotations_json_beside_it_is_kept(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    base = root / "annotations" / DEMO_DATASET
    base.mkdir(parents=True)
    shapes = {"1": [{"type": "path", "path": "M1,1L9,1", "line": {"color": "#00FE35", "width": 3}}]}
    (base / "annotations.json").write_text(json.dumps(shapes))
    assert invoke(root, "status").exit_code == 0  # the scan imports it as .../annotations/

    refused = invoke(root, "delete", "annotation", f"{DEMO_DATASET}/annotations")
    assert refused.exit_code == 1
    assert f"imported from annotations/{DEMO_DATASET}/annotations.json" in refused.output
    assert (base / "annotations" / "annotation.json").is_file()

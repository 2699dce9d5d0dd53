"""Renaming annotations, segmentations and models, deleting them to the trash and restoring
them, over real HTTP against the app served on a real data folder.

Jobs go through the real job service into the real queue (no consumer runs here, so they stay
queued, as they do while the daemon is down): what a queued job uses cannot be renamed or
deleted. Deleted files are looked for in ``.biosegment-trash/``, where they must be whole.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import tifffile

from biosegment.accounts import open_accounts
from biosegment.catalog import open_catalog, refresh
from biosegment.config import ServerConfig
from biosegment.folder_names import TRASH_DIR
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, make_tiny_model, serve

D = DEMO_DATASET
API = "/api/v1"


def annotations_url(name: str = "") -> str:
    return f"{API}/datasets/{D}/annotations" + (f"/{quote(name)}" if name else "")


def restore_url(entry: str) -> str:
    return f"{API}/trash/{quote(entry)}/restore"


def delete(http: Http, path: str):
    return http.request("DELETE", path)


def paint(http: Http, name: str, z: int = 0) -> bytes:
    height, width = 512, 512
    labels = np.full((height, width), 255, dtype=np.uint8)
    labels[100:140, 200:260] = 1
    reply = http.put(
        f"{annotations_url(name)}/slices/{z}",
        body=labels.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status == 200, reply.body
    return labels.tobytes()


def add_segmentation(root: Path, name: str, model: str) -> Path:
    folder = root / "segmentations" / D / name
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "labels.tif", np.zeros((5, 512, 512), dtype=np.uint8))
    (folder / "segmentation.json").write_text(json.dumps({"model": model, "dataset": D}))
    return folder


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    with serve(config_for(root)) as server:
        yield root, Http(server.url)


def test_an_annotation_is_renamed_deleted_to_the_trash_and_restored_whole(site):
    root, http = site
    assert http.post(annotations_url(), json_body={"name": "scribbles"}).status == 201
    assert http.post(annotations_url(), json_body={"name": "Other"}).status == 201
    painted = paint(http, "scribbles")

    taken = http.post(f"{annotations_url('scribbles')}/rename", json_body={"name": "other"})
    assert taken.status == 409 and "'Other'" in taken.json()["error"], taken.body
    bad = http.post(f"{annotations_url('scribbles')}/rename", json_body={"name": "../up"})
    assert bad.status == 400 and bad.json()["field"] == "name"
    assert (root / "annotations" / D / "scribbles").is_dir()

    renamed = http.post(f"{annotations_url('scribbles')}/rename", json_body={"name": "cells"})
    assert renamed.status == 200, renamed.body
    assert renamed.json()["location"] == f"annotations/{D}/cells"
    assert renamed.json()["origin"] == "ui"
    assert not (root / "annotations" / D / "scribbles").exists()
    card = json.loads((root / "annotations" / D / "cells" / "annotation.json").read_text())
    assert card["name"] == "cells"
    assert http.get(annotations_url("scribbles")).status == 404
    assert http.get(f"{annotations_url('cells')}/slices/0").body == painted

    deleted = delete(http, annotations_url("cells"))
    assert deleted.status == 200, deleted.body
    entry = deleted.json()
    assert entry["item"] == {"kind": "annotation", "dataset": D, "name": "cells", "origin": "ui"}
    assert entry["moved"] == [f"annotations/{D}/cells"]
    assert not (root / "annotations" / D / "cells").exists()
    assert (root / TRASH_DIR / entry["id"] / "annotations" / D / "cells" / "z00000.png").is_file()
    assert http.get(annotations_url("cells")).status == 404
    assert [e["id"] for e in http.get(f"{API}/trash").json()] == [entry["id"]]
    # gone on purpose: not a problem to report, not a layer of the viewer
    assert "cells" not in http.get(f"{API}/problems").body.decode()
    layers = http.get(f"{API}/datasets/{D}").json()["layers"]
    assert "cells" not in [layer["name"] for layer in layers]

    # the name was taken meanwhile: the restore says by what, and moves nothing
    assert http.post(annotations_url(), json_body={"name": "Cells"}).status == 201
    clash = http.post(restore_url(entry["id"]))
    assert clash.status == 409 and "'Cells'" in clash.json()["error"], clash.body
    assert (root / TRASH_DIR / entry["id"] / "annotations" / D / "cells").is_dir()
    assert http.post(f"{annotations_url('Cells')}/rename", json_body={"name": "new"}).status == 200

    restored = http.post(restore_url(entry["id"]))
    assert restored.status == 200, restored.body
    assert restored.json()["item"]["origin"] == "ui"
    assert http.get(f"{annotations_url('cells')}/slices/0").body == painted
    assert http.get(annotations_url("cells")).json()["slices"] == [0]
    assert not (root / TRASH_DIR / entry["id"]).exists()
    assert http.get(f"{API}/trash").json() == []
    assert http.post(restore_url(entry["id"])).status == 404


def test_an_annotation_a_queued_train_job_learns_from_stays(site):
    root, http = site
    assert http.post(annotations_url(), json_body={"name": "scribbles"}).status == 201
    paint(http, "scribbles")
    job = http.post(
        f"{API}/jobs/train",
        json_body={"dataset": D, "annotation": "scribbles", "base_model": "scratch", "epochs": 1},
    )
    assert job.status == 202, job.body
    job_id = job.json()["id"]
    for reply in (
        delete(http, annotations_url("scribbles")),
        http.post(f"{annotations_url('scribbles')}/rename", json_body={"name": "cells"}),
    ):
        assert reply.status == 409, reply.body
        assert f"train job {job_id} learns from it" in reply.json()["error"]
    assert (root / "annotations" / D / "scribbles" / "z00000.png").is_file()
    assert http.post(f"{API}/jobs/{job_id}/cancel").status == 200
    assert delete(http, annotations_url("scribbles")).status == 200


def test_a_model_in_use_cannot_be_renamed_or_deleted(site):
    root, http = site
    for reply in (
        delete(http, f"{API}/models/demo-membrane"),
        http.post(f"{API}/models/demo-membrane/rename", json_body={"name": "other"}),
    ):
        assert reply.status == 409, reply.body
        assert "project 'Demo' has it as default_model" in reply.json()["error"]
        assert "setup.json declares it in its models list" in reply.json()["error"]
    assert (root / "models" / "demo-membrane" / "model.pytorch").is_file()

    job = http.post(f"{API}/jobs/segment", json_body={"dataset": D, "model": "tiny-membrane"})
    assert job.status == 202, job.body
    job_id = job.json()["id"]
    refused = delete(http, f"{API}/models/tiny-membrane")
    assert refused.status == 409
    assert f"queued segment job {job_id} segments with it" in refused.json()["error"]
    refused = http.post(f"{API}/models/tiny-membrane/rename", json_body={"name": "tiny-v2"})
    assert refused.status == 409 and job_id in refused.json()["error"]
    assert http.post(f"{API}/jobs/{job_id}/cancel").status == 200
    assert delete(http, f"{API}/models/tiny-membrane").status == 200


def test_a_renamed_model_keeps_its_provenance_and_comes_back_from_the_trash(site):
    root, http = site
    child = make_tiny_model(root, "tiny-child")
    card = json.loads((child / "model.json").read_text())
    (child / "model.json").write_text(json.dumps({**card, "parent": "tiny-membrane"}))
    add_segmentation(root, "seg-a", "tiny-membrane")
    with open_catalog(root) as catalog:
        refresh(catalog, root)

    taken = http.post(f"{API}/models/tiny-membrane/rename", json_body={"name": "DEMO-membrane"})
    assert taken.status == 409 and "'demo-membrane'" in taken.json()["error"]
    renamed = http.post(f"{API}/models/tiny-membrane/rename", json_body={"name": "tiny-v2"})
    assert renamed.status == 200, renamed.body
    assert renamed.json()["location"] == "models/tiny-v2/model.pytorch"
    card = json.loads((root / "models" / "tiny-v2" / "model.json").read_text())
    assert (card["name"], card["renamed_from"]) == ("tiny-v2", ["tiny-membrane"])
    assert http.get(f"{API}/models/tiny-membrane").status == 404
    assert http.get(f"{API}/models/tiny-child").json()["parent"] == "tiny-v2"
    assert http.get(f"{API}/datasets/{D}/segmentations/seg-a").json()["model"] == "tiny-v2"

    deleted = delete(http, f"{API}/models/tiny-v2")
    assert deleted.status == 200, deleted.body
    entry = deleted.json()
    assert (root / TRASH_DIR / entry["id"] / "models" / "tiny-v2" / "model.pytorch").is_file()
    assert "tiny-v2" not in [m["name"] for m in http.get(f"{API}/models").json()]
    restored = http.post(restore_url(entry["id"]))
    assert restored.status == 200, restored.body
    assert http.get(f"{API}/models/tiny-v2").json()["state"] == "ok"


def test_a_segmentation_is_renamed_deleted_and_restored(site):
    root, http = site
    add_segmentation(root, "seg-a", "tiny-membrane")
    add_segmentation(root, "seg-b", "tiny-membrane")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    base = f"{API}/datasets/{D}/segmentations"
    taken = http.post(f"{base}/seg-a/rename", json_body={"name": "SEG-B"})
    assert taken.status == 409 and "'seg-b'" in taken.json()["error"]
    # a name a queued segmentation job will write is taken too
    job = http.post(
        f"{API}/jobs/segment", json_body={"dataset": D, "model": "tiny-membrane", "name": "seg-c"}
    )
    assert job.status == 202, job.body
    assert http.post(f"{base}/seg-a/rename", json_body={"name": "seg-c"}).status == 409

    renamed = http.post(f"{base}/seg-a/rename", json_body={"name": "seg-first"})
    assert renamed.status == 200, renamed.body
    assert (root / "segmentations" / D / "seg-first" / "labels.tif").is_file()
    assert http.get(f"{base}/seg-a").status == 404
    deleted = delete(http, f"{base}/seg-first")
    assert deleted.status == 200, deleted.body
    assert not (root / "segmentations" / D / "seg-first").exists()
    assert http.get(f"{base}/seg-first").status == 404
    restored = http.post(restore_url(deleted.json()["id"]))
    assert restored.status == 200, restored.body
    assert http.get(f"{base}/seg-first").json()["state"] == "ok"
    assert delete(http, f"{base}/nothing").status == 404
    assert http.post(restore_url("no such entry")).status == 404


EXPOSED_HOST = "127.0.0.2"
PASSWORD = "a long enough password"


def test_with_accounts_a_viewer_may_not_and_the_audit_log_names_who_did(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    tokens = {}
    with open_accounts(root) as accounts:
        for name, role in {"ada": "admin", "anna": "annotator", "vic": "viewer"}.items():
            accounts.add_user(name, role, PASSWORD)
            tokens[name], _ = accounts.create_token(name, "tests")
    config = dataclasses.replace(config_for(root), server=ServerConfig(host=EXPOSED_HOST, port=0))

    def as_person(http: Http, name: str, method: str, path: str, body=None):
        headers = {"Authorization": f"Bearer {tokens[name]}"}
        return http.request(method, path, json_body=body, headers=headers)

    with serve(config) as server:
        http = Http(server.url)
        made = as_person(http, "anna", "POST", annotations_url(), {"name": "scribbles"})
        assert made.status == 201
        for method, path, body in [
            ("DELETE", annotations_url("scribbles"), None),
            ("POST", f"{annotations_url('scribbles')}/rename", {"name": "x"}),
            ("DELETE", f"{API}/models/tiny-membrane", None),
            ("POST", f"{API}/models/tiny-membrane/rename", {"name": "x"}),
        ]:
            reply = as_person(http, "vic", method, path, body)
            assert reply.status == 403 and "viewer" in reply.json()["error"], (path, reply.body)
        assert (root / "annotations" / D / "scribbles").is_dir()

        deleted = as_person(http, "anna", "DELETE", annotations_url("scribbles"))
        assert deleted.status == 200, deleted.body
        entry = deleted.json()["id"]
        assert as_person(http, "vic", "POST", restore_url(entry)).status == 403
        assert as_person(http, "anna", "POST", restore_url(entry)).status == 200
        audit = as_person(http, "ada", "GET", f"{API}/audit?action=item.*").json()
        assert [(e["action"], e["actor"], e["target"]) for e in audit] == [
            ("item.restore", "anna", f"annotation {D}/scribbles"),
            ("item.delete", "anna", f"annotation {D}/scribbles"),
        ]
        assert audit[1]["detail"]["trash"] == entry

"""Training jobs through the real queue: metrics per epoch, the published model, cancel.

A Huey consumer (SQLite) runs the jobs in threads of this process; the test reads the catalog
through its own connection and loads the published model with the engine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from biosegment.catalog import open_catalog, refresh
from biosegment.daemon.consumer import ConsumerHost
from biosegment.engine import load_model
from biosegment.errors import InputError, NotFoundError
from biosegment.tasks import JobService
from biosegment.volumes import write_png_slice
from job_fixtures import QUICK_TRAIN, TINY_MODEL, TRAIN_DATASET, job_row, make_folder, wait_for

TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, demo=False, training=True)


@pytest.fixture
def running(folder):
    root, config = folder
    host = ConsumerHost(config, role="worker")
    host.start()
    service = JobService(config)
    yield root, service
    service.close()
    host.stop()


def finished(root, job_id: str, timeout: float = 120) -> dict:
    return wait_for(
        lambda: (lambda row: row if row["state"] in TERMINAL else None)(job_row(root, job_id)),
        timeout=timeout,
        interval=0.05,
    ) or job_row(root, job_id)


def test_fine_tuning_from_ground_truth_publishes_a_model_with_its_parent(running):
    root, service = running
    job = service.submit_train(
        dataset=TRAIN_DATASET,
        base_model=TINY_MODEL,
        epochs=3,
        name="tuned",
        steps_per_epoch=4,
        batch_size=2,
        crop_size=32,
        validation_fraction=0.0,
    )
    assert job["params"]["base_model"] == TINY_MODEL and job["params"]["annotation"] is None
    # Metrics arrive epoch by epoch while the job runs, not only at its end.
    seen_partial = wait_for(
        lambda: (lambda r: r["state"] == "running" and 1 <= len(r["metrics"]) < 3)(
            job_row(root, job["id"])
        ),
        timeout=60,
        interval=0.01,
    )
    final = finished(root, job["id"])
    assert final["state"] == "succeeded", (final["message"], service.job_log(job["id"]))
    assert seen_partial, "no intermediate per-epoch metrics were written"
    assert [m["epoch"] for m in final["metrics"]] == [1, 2, 3]
    assert all(np.isfinite(m["train_loss"]) for m in final["metrics"])
    assert final["progress"] == 1.0 and final["result"]["model"] == "tuned"

    folder = root / "models" / "tuned"
    assert sorted(p.name for p in folder.iterdir()) == ["logs", "model.json", "model.pytorch"]
    assert any((folder / "logs").iterdir()), "no TensorBoard events were written"
    model, card = load_model(folder)
    assert model.config["feature_maps"] == 4 and card.parent == TINY_MODEL
    assert card.training["provenance"]["job"] == job["id"]
    catalog = open_catalog(root)
    try:
        row = catalog.model("tuned")
        refresh(catalog, root)  # a rescan must agree with what the job registered
        rescanned = catalog.model("tuned")
    finally:
        catalog.close()
    assert row["state"] == "ok" and row["parent"] == TINY_MODEL
    assert rescanned["parent"] == TINY_MODEL and rescanned["state"] == "ok"
    assert "model saved to models/tuned/" in service.job_log(job["id"])


def test_training_from_a_sparse_annotation_builds_a_new_network(running):
    root, service = running
    annotation = root / "annotations" / TRAIN_DATASET / "scribbles"
    annotation.mkdir(parents=True)
    painted = np.full((64, 64), 255, dtype=np.uint8)
    painted[5:20, 5:20] = 0
    painted[30:40, 30:40] = 1
    write_png_slice(annotation / "z00001.png", painted)
    write_png_slice(annotation / "z00002.png", painted)
    (annotation / "annotation.json").write_text(
        json.dumps({"classes": [{"id": 1, "name": "disc"}]}), encoding="utf-8"
    )
    catalog = open_catalog(root)
    try:
        refresh(catalog, root)
    finally:
        catalog.close()
    options = {**QUICK_TRAIN, "validation_fraction": 0.15}
    job = service.submit_train(annotation="scribbles", epochs=2, steps_per_epoch=2, **options)
    assert job["params"]["dataset"] == TRAIN_DATASET
    final = finished(root, job["id"])
    assert final["state"] == "succeeded", (final["message"], service.job_log(job["id"]))
    name = job["params"]["name"]
    assert name.startswith(f"unet-{TRAIN_DATASET}-")
    model, card = load_model(root / "models" / name)
    assert model.config["levels"] == 2 and card.parent is None
    assert card.training["provenance"]["labels"] == f"annotations/{TRAIN_DATASET}/scribbles"
    # the classes are named as they were painted (annotation.json), not "class 1"
    assert [(c["id"], c["name"]) for c in card.classes] == [(0, "background"), (1, "disc")]
    # Honest scores: held-out strokes, said so, and the ground truth on slices nobody painted.
    validation = final["result"]["validation"]
    assert validation["method"] == "strokes"
    assert validation["label"] == "on 15 % of your strokes, held out"
    truth = final["result"]["ground_truth"]
    assert truth["slices"] and not {1, 2} & set(truth["slices"])
    assert 0.0 <= truth["mean_dice"] <= 1.0 and "nobody painted" in truth["label"]
    # the card keeps both, for the model page
    model_card = json.loads((root / "models" / name / "model.json").read_text(encoding="utf-8"))
    assert model_card["training"]["validation"]["label"] == validation["label"]
    assert model_card["training"]["ground_truth"] == truth


def test_cancelling_a_running_training_stops_it_within_one_batch(running):
    root, service = running
    # One batch per epoch: the job row's metrics count the batches as they finish.
    job = service.submit_train(
        dataset=TRAIN_DATASET, epochs=500, steps_per_epoch=1, name="cancelled-run", **QUICK_TRAIN
    )
    assert wait_for(
        lambda: len(job_row(root, job["id"])["metrics"]) >= 3, timeout=60, interval=0.01
    )
    service.cancel(job["id"])
    batches_at_cancel = len(job_row(root, job["id"])["metrics"])
    final = finished(root, job["id"], timeout=30)
    assert final["state"] == "cancelled", final
    assert len(final["metrics"]) <= batches_at_cancel + 1, (
        f"{len(final['metrics']) - batches_at_cancel} batches ran after the cancel"
    )
    assert not (root / "models" / "cancelled-run").exists()
    assert "cancelled" in service.job_log(job["id"])


def test_bad_training_requests_name_what_is_wrong(folder):
    _, config = folder
    service = JobService(config)
    try:
        with pytest.raises(NotFoundError):
            service.submit_train(annotation="no-such-annotation")
        with pytest.raises(InputError) as excinfo:
            service.submit_train()
        assert excinfo.value.where == "annotation"
        with pytest.raises(InputError) as excinfo:
            service.submit_train(dataset=TRAIN_DATASET, epochs=0)
        assert excinfo.value.where == "epochs"
        with pytest.raises(InputError) as excinfo:
            service.submit_train(dataset=TRAIN_DATASET, optimiser="sgd")
        assert excinfo.value.where == "optimiser"
        with pytest.raises(InputError) as excinfo:
            service.submit_train(dataset=TRAIN_DATASET, name=TINY_MODEL)
        assert excinfo.value.where == "name"
        with pytest.raises(NotFoundError):
            service.submit_train(dataset=TRAIN_DATASET, base_model="nope")
        assert service.jobs() == []
    finally:
        service.close()

"""Blocks are sized by memory whatever the zoom to the model's pixel size.

A dataset whose pixels are much coarser than the model's is zoomed up before the network sees
it; every array computed on the zoomed grid grows with the square of the zoom. The plan must
cut such a volume into more blocks and smaller tiles so that one block's estimated memory
stays within the budget, and a real run must stay within it too.
"""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from biosegment.engine import (
    InferenceSettings,
    block_memory,
    block_plan,
    load_model,
    segment_volume,
)
from biosegment.engine._block_memory import (
    MEMORY_BUDGET,
    Shares,
    output_bytes_per_voxel,
    region_bytes_per_voxel,
)
from biosegment.engine._plan import make_plan, regions
from biosegment.engine.inference import plan_blocks
from biosegment.engine.pixel_size import zoom_for
from biosegment.errors import InputError
from biosegment.volumes import open_volume, write_volume

torch.set_num_threads(2)

DEMO = Path(__file__).resolve().parents[1] / "biosegment" / "demo"
DEMO_CARD = DEMO / "model" / "model.json"
DEMO_RAW = DEMO / "isbi2012" / "raw.tif"


def _demo_card() -> dict:
    return json.loads(DEMO_CARD.read_text(encoding="utf-8"))


def _block_estimates(shape, plan, itemsize: int, probabilities: bool) -> list[int]:
    """Each block's estimate, computed region by region from the plan's own reads."""
    depth, height, width = shape
    classes = plan.num_classes
    per_read = region_bytes_per_voxel(itemsize, classes, probabilities, plan.zoom)
    per_output = output_bytes_per_voxel(classes, probabilities)
    totals = []
    for z0, z1 in plan_blocks(shape, plan.block_z):
        largest = max(
            math.prod(s.stop - s.start for s in read) for read, _ in regions(shape, plan, z0, z1)
        )
        totals.append(
            (z1 - z0) * height * width * per_output + largest * per_read + plan.memory.network
        )
    return totals


@pytest.mark.parametrize("probabilities", [False, True])
@pytest.mark.parametrize("voxel_size", [(50, 133, 133), (50, 40, 40), (50, 4, 4), (30, 1, 1)])
def test_every_block_of_a_zoomed_volume_fits_the_memory_budget(voxel_size, probabilities):
    card = _demo_card()
    zoom = zoom_for(card["pixel_size"], voxel_size)
    if voxel_size == (50, 133, 133):
        assert zoom == pytest.approx(10.0)  # the edit the issue was found with
    shape = (3, 4096, 4096)
    settings = InferenceSettings(zoom=zoom)
    plan = make_plan(settings, card["architecture"], shape, 1, probabilities)
    estimates = _block_estimates(shape, plan, 1, probabilities)
    assert max(estimates) <= plan.memory.total <= MEMORY_BUDGET
    shares = Shares.of(MEMORY_BUDGET)
    assert plan.memory.region <= shares.region and plan.memory.outputs <= shares.outputs
    if zoom is not None and zoom > 2:
        # never one whole zoomed slice at a time, and the slices spread over blocks
        assert len(estimates) == 3
        assert plan.tile[0] * plan.tile[1] < shape[1] * shape[2]
        zoomed_tile = (plan.tile[0] + 2 * plan.context[1]) * (plan.tile[1] + 2 * plan.context[2])
        assert zoomed_tile * zoom * zoom * 4 < shares.region  # the zoomed float32 pixels alone


def test_settings_that_cannot_fit_the_budget_are_refused_with_what_fits():
    config = _demo_card()["architecture"]
    with pytest.raises(InputError) as caught:
        make_plan(InferenceSettings(block_z=64), config, (64, 8192, 8192), 1, False)
    assert caught.value.where == "block_z"
    assert "at most 4 slices fit" in str(caught.value)
    with pytest.raises(InputError) as caught:
        make_plan(
            InferenceSettings(batch_size=64, window=(256, 256)), config, (4, 2048, 2048), 1, False
        )
    assert caught.value.where == "batch_size"
    assert "windows of 256x256 per batch" in str(caught.value)
    assert "at most 4 fit in 512 MiB" in str(caught.value)
    # what the messages offer is accepted
    make_plan(InferenceSettings(block_z=4), config, (64, 8192, 8192), 1, False)
    make_plan(InferenceSettings(batch_size=4, window=(256, 256)), config, (4, 2048, 2048), 1, False)


def _traced_run(volume, model, **options) -> tuple[np.ndarray, int]:
    """The labels of a run, and the peak of the memory Python's allocators traced meanwhile."""
    tracemalloc.start()
    try:
        labels = segment_volume(volume, model, **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return labels, peak


def test_a_run_at_a_high_zoom_uses_more_blocks_and_stays_within_its_budget(tmp_path):
    model, card = load_model(DEMO_CARD.parent)
    raw = tifffile.imread(DEMO_RAW)[:2, 100:196, 100:196]
    volume = open_volume(write_volume(tmp_path / "raw.tif", raw, compression=None))
    budget = 16 * 2**20  # small, so that a volume this small must be cut up
    options = dict(
        device="cpu",
        precision="fp32",
        window=(64, 64),
        zoom=6.0,
        normalisation=dict(card.normalisation),
    )
    settings = InferenceSettings(memory_budget=budget, **options)
    assert block_plan(volume, model, settings) == [(0, 1), (1, 2)]
    estimate = block_memory(volume, model, settings)
    assert estimate.total <= budget
    # Without the budget's limits each slice's zoomed 576x576 is computed whole.
    whole, whole_peak = _traced_run(volume, model, **options)
    bounded, peak = _traced_run(volume, model, memory_budget=budget, **options)
    # NumPy's arrays (traced) stay within the region's and the results' share; PyTorch's
    # tensors (not traced) are within the estimate's other parts.
    assert peak <= estimate.region + estimate.outputs + 2**20, (peak, estimate)
    assert 2 * peak < whole_peak, (peak, whole_peak)
    # The tiles are stitched in place: the membranes are where whole slices put them (the
    # model's instance norm sees other windows, so a few per cent of voxels differ anywhere).
    assert bounded.shape == whole.shape == raw.shape
    assert np.mean(bounded == whole) >= 0.88
    both = np.logical_and(bounded == 1, whole == 1).sum()
    assert 2 * both / ((bounded == 1).sum() + (whole == 1).sum()) >= 0.7

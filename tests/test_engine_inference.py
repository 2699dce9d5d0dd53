"""Segmenting volumes: neuralnets-equivalent labels, fast defaults, streaming, resume, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from biosegment.engine import (
    InferenceSettings,
    UNet,
    assemble_parts,
    block_plan,
    load_model,
    plan_blocks,
    resolve_device,
    segment_block,
    segment_volume,
)
from biosegment.engine._windows import kept_ranges, window_starts
from biosegment.engine.inference import default_parts_dir
from biosegment.errors import CancelledError, InputError
from biosegment.volumes import open_volume, write_volume

torch.set_num_threads(2)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures" / "neuralnets"
ISBI = SHARED / "data" / "isbi2012" / "train-volume.tif"
needs_isbi = pytest.mark.skipif(
    not (FIXTURES.is_dir() and ISBI.is_file()),
    reason=f"ISBI data or neuralnets fixtures not found under {SHARED}",
)


def _volume_file(tmp_path: Path, array: np.ndarray, name: str = "raw.tif") -> Path:
    return write_volume(tmp_path / name, array, compression=None)


def _random_stack(shape, seed=0, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)


def _tiny(dims=2, norm="none", num_classes=3, seed=0) -> UNet:
    torch.manual_seed(seed)
    return UNet(dims=dims, feature_maps=4, levels=2, norm=norm, num_classes=num_classes).eval()


def _forward_labels(model: UNet, array: np.ndarray) -> np.ndarray:
    """Reference: the plain network on whole uint8 slices (2-D) or the whole volume (3-D)."""
    x = torch.from_numpy(array.astype(np.float32) / 255.0)
    with torch.inference_mode():
        if model.config["dims"] == 2:
            return model(x[:, None]).argmax(1).numpy().astype(np.uint8)
        return model(x[None, None]).argmax(1)[0].numpy().astype(np.uint8)


def _dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    a, b = a == label, b == label
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# --------------------------------------------------------------- the trained ISBI model


@pytest.fixture(scope="module")
def isbi(tmp_path_factory):
    """The trained neuralnets model, slices 25-29 as a TIFF file, and the expected labels."""
    folder = tmp_path_factory.mktemp("isbi")
    raw = tifffile.imread(ISBI)[25:30]
    path = write_volume(folder / "z25-29.tif", raw)
    model, _ = load_model(FIXTURES / "isbi_unet2d_fm16_l4_instance.pytorch")
    expected = tifffile.imread(FIXTURES / "isbi_unet2d_expected_labels_z25-29.tif")
    reference = segment_volume(
        open_volume(path),
        model,
        window=(256, 256),
        step=(128, 128),
        blend="gaussian",
        sigma_scale=0.25,
        precision="fp32",
    )
    return path, model, expected, reference


@needs_isbi
def test_neuralnets_windowing_reproduces_its_labels(isbi):
    _, _, expected, reference = isbi
    assert reference.shape == expected.shape == (5, 512, 512)
    differing = np.mean(reference != expected)
    assert differing <= 0.001, f"{differing:.4%} of pixels differ from neuralnets"


@needs_isbi
def test_bfloat16_labels_stay_within_half_a_percent_dice_of_float32(isbi):
    path, model, _, reference = isbi
    fast = segment_volume(
        open_volume(path), model, window=(256, 256), step=(128, 128), precision="bf16"
    )
    for label in (0, 1):
        assert _dice(fast, reference, label) >= 0.995


@needs_isbi
def test_default_fast_setting_agrees_with_the_neuralnets_setting(isbi):
    path, model, expected, _ = isbi
    labels = segment_volume(open_volume(path), model)
    membrane = 1  # class 1 of this model is membrane
    assert _dice(labels, expected, membrane) >= 0.97
    assert np.mean(labels == expected) >= 0.98


# --------------------------------------------------------------- windows and blending


def test_whole_slice_default_equals_the_plain_network(tmp_path):
    array = _random_stack((3, 64, 96))
    model = _tiny(norm="instance")
    labels = segment_volume(open_volume(_volume_file(tmp_path, array)), model, precision="fp32")
    np.testing.assert_array_equal(labels, _forward_labels(model, array))


def test_cropped_windows_with_enough_overlap_equal_one_big_window(tmp_path):
    # Without norm the network is the same everywhere, so windows that keep only their
    # centres must stitch to the whole-slice result exactly; with no overlap they cannot.
    array = _random_stack((2, 112, 112), seed=1)
    model = _tiny(norm="none", seed=1)
    volume = open_volume(_volume_file(tmp_path, array))
    reference = _forward_labels(model, array)
    stitched = segment_volume(
        volume, model, window=(64, 64), overlap=48, blend="crop", precision="fp32"
    )
    np.testing.assert_array_equal(stitched, reference)
    seams = segment_volume(
        volume, model, window=(16, 16), overlap=0, blend="crop", precision="fp32"
    )
    assert np.any(seams != reference)


def test_sizes_not_divisible_by_the_pooling_and_windows_larger_than_the_image(tmp_path):
    array = _random_stack((5, 37, 53), seed=2)
    volume = open_volume(_volume_file(tmp_path, array))
    for window in (None, (64, 128), (20, 20)):
        labels = segment_volume(volume, _tiny(), window=window)
        assert labels.shape == (5, 37, 53) and labels.dtype == np.uint8
        assert labels.max() < 3


def test_three_d_network_uses_three_d_windows(tmp_path):
    array = _random_stack((8, 16, 16), seed=3)
    model = _tiny(dims=3, norm="instance", num_classes=2)
    volume = open_volume(_volume_file(tmp_path, array))
    one_window = segment_volume(volume, model, precision="fp32")
    np.testing.assert_array_equal(one_window, _forward_labels(model, array))
    tiled = segment_volume(volume, model, window=(4, 8, 8), overlap=(0, 4, 4), block_z=3)
    assert tiled.shape == array.shape and set(np.unique(tiled)) <= {0, 1}


def test_batch_norm_model_in_batches(tmp_path):
    array = _random_stack((4, 32, 32), seed=4)
    model = _tiny(norm="batch")
    labels = segment_volume(
        open_volume(_volume_file(tmp_path, array)),
        model,
        window=(16, 16),
        overlap=0,
        blend="crop",
        batch_size=5,
        precision="fp32",
    )
    per_window = segment_volume(
        open_volume(_volume_file(tmp_path, array, "b.tif")),
        model,
        window=(16, 16),
        overlap=0,
        blend="crop",
        batch_size=1,
        precision="fp32",
    )
    np.testing.assert_array_equal(labels, per_window)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_uint16_and_float32_volumes_are_scaled_like_uint8(tmp_path, dtype):
    array8 = _random_stack((2, 32, 32), seed=5)
    scaled = array8.astype(np.float32) / 255.0
    array = (scaled * 65535).round().astype(np.uint16) if dtype == np.uint16 else scaled
    model = _tiny(norm="instance")
    labels = segment_volume(open_volume(_volume_file(tmp_path, array)), model, precision="fp32")
    same = np.mean(labels == _forward_labels(model, array8))
    assert same >= 0.999


def test_window_positions_cover_the_axis_and_crops_partition_it():
    assert window_starts(512, 256, 128) == [0, 128, 256]
    assert window_starts(100, 128, 32) == [0]
    starts = window_starts(1000, 512, 32)
    assert starts[0] == 0 and starts[-1] + 512 == 1000
    ranges = kept_ranges(starts, 512, 1000)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_small_memory_budget_chunks_slices_then_tiles_them(tmp_path):
    from biosegment.engine import _plan

    array = _random_stack((4, 96, 80), seed=6)
    model = _tiny(norm="none")  # 3 classes
    volume = open_volume(_volume_file(tmp_path, array))
    options = dict(precision="fp32", window=(32, 32), overlap=16, blend="crop")
    whole = segment_volume(volume, model, **options)
    bytes_per_voxel = 1 + 4 + 1 + (3 + 1) * 4
    # A region may take a quarter of the budget.
    two_slices = 4 * bytes_per_voxel * 96 * 80 * 2
    settings = InferenceSettings(
        window=(32, 32), overlap=16, blend="crop", memory_budget=two_slices
    )
    plan = _plan.make_plan(settings, model.config, volume.shape, 1, False)
    assert (plan.chunk_z, plan.tile) == (2, (96, 80))
    np.testing.assert_array_equal(
        segment_volume(volume, model, memory_budget=two_slices, **options), whole
    )

    less_than_a_slice = 4 * bytes_per_voxel * 3000
    settings = InferenceSettings(
        window=(32, 32), overlap=16, blend="crop", memory_budget=less_than_a_slice
    )
    plan = _plan.make_plan(settings, model.config, volume.shape, 1, False)
    assert plan.chunk_z == 1 and plan.tile[0] < 96 and plan.tile[1] < 80
    tiled = segment_volume(volume, model, memory_budget=less_than_a_slice, **options)
    assert np.mean(tiled == whole) >= 0.99


# --------------------------------------------------------------- files, parts, resume


def test_output_file_probabilities_and_no_leftovers(tmp_path):
    array = _random_stack((5, 40, 40), seed=7)
    model = _tiny(norm="instance")
    volume = open_volume(_volume_file(tmp_path, array))
    in_memory = segment_volume(volume, model, block_z=2)
    seen = []
    out = segment_volume(
        volume,
        model,
        block_z=2,
        output=tmp_path / "seg" / "labels.tif",
        probabilities=tmp_path / "seg" / "probabilities",
        progress=seen.append,
    )
    assert out == tmp_path / "seg" / "labels.tif"
    np.testing.assert_array_equal(tifffile.imread(out), in_memory)
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["labels.tif", "probabilities"]
    probabilities = np.stack(
        [tifffile.imread(tmp_path / "seg" / "probabilities" / f"class_{c}.tif") for c in range(3)]
    )
    assert probabilities.shape == (3, 5, 40, 40)
    assert np.all(np.abs(probabilities.astype(int).sum(0) - 255) <= 2)
    np.testing.assert_array_equal(
        probabilities.argmax(0)[probabilities.max(0) > 130], in_memory[probabilities.max(0) > 130]
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3


def test_cancel_stops_between_batches_and_a_rerun_resumes(tmp_path):
    array = _random_stack((6, 32, 32), seed=8)
    model = _tiny(norm="instance")
    volume = open_volume(_volume_file(tmp_path, array))
    output = tmp_path / "labels.tif"
    polls = []

    def cancel_in_second_block() -> bool:
        polls.append(1)
        return len(polls) > 4  # block 1 polls before and after its 2 batches

    with pytest.raises(CancelledError):
        segment_volume(
            volume,
            model,
            output=output,
            block_z=2,
            batch_size=1,
            should_cancel=cancel_in_second_block,
        )
    parts = default_parts_dir(output)
    assert not output.exists()
    assert sorted(p.name for p in parts.glob("z*.npy")) == ["z00000-00002.npy"]

    seen, polls_on_rerun = [], []

    def never_cancel() -> bool:
        polls_on_rerun.append(1)
        return False

    segment_volume(
        volume,
        model,
        output=output,
        block_z=2,
        batch_size=1,
        progress=seen.append,
        should_cancel=never_cancel,
    )
    assert seen[0] >= 2 / 6  # the finished block counts as done from the start
    assert len(polls_on_rerun) == 2 * 3  # two blocks computed, the finished one reused
    np.testing.assert_array_equal(tifffile.imread(output), segment_volume(volume, model, block_z=2))
    assert not parts.exists()


def test_parts_of_another_model_are_discarded_not_mixed(tmp_path):
    array = _random_stack((4, 32, 32), seed=9)
    volume = open_volume(_volume_file(tmp_path, array))
    output = tmp_path / "labels.tif"
    first, second = _tiny(seed=1), _tiny(seed=2)
    parts = default_parts_dir(output)
    segment_block(volume, first, 0, 2, settings=InferenceSettings(block_z=2), parts_dir=parts)
    with pytest.raises(InputError, match="different segmentation"):
        segment_block(volume, second, 2, 4, settings=InferenceSettings(block_z=2), parts_dir=parts)
    segment_volume(volume, second, output=output, block_z=2)
    np.testing.assert_array_equal(
        tifffile.imread(output), segment_volume(volume, second, block_z=2)
    )


def test_workers_segment_blocks_then_one_assembles(tmp_path):
    array = _random_stack((7, 24, 24), seed=10)
    path = _volume_file(tmp_path, array)
    model = _tiny(norm="instance")
    settings = InferenceSettings(block_z=3, precision="fp32")
    parts = tmp_path / ".labels.tif.parts"
    blocks = block_plan(open_volume(path), model, settings)
    assert blocks == plan_blocks((7, 24, 24), 3) == [(0, 3), (3, 6), (6, 7)]
    for z0, z1 in blocks[:2]:  # e.g. two workers, each with its own reader
        with open_volume(path) as volume:
            result = segment_block(volume, model, z0, z1, settings=settings, parts_dir=parts)
            assert result.labels.shape == (z1 - z0, 24, 24)
    with pytest.raises(InputError, match="1 of 3 blocks"):
        assemble_parts(parts, tmp_path / "labels.tif")
    assert parts.is_dir() and not (tmp_path / "labels.tif").exists()
    with open_volume(path) as volume:
        segment_block(volume, model, 6, 7, settings=settings, parts_dir=parts)
    assemble_parts(parts, tmp_path / "labels.tif")
    assert not parts.exists()
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "labels.tif"), _forward_labels(model, array)
    )


def test_block_outside_the_plan_is_refused(tmp_path):
    volume = open_volume(_volume_file(tmp_path, _random_stack((4, 16, 16))))
    with pytest.raises(ValueError, match="block plan"):
        segment_block(
            volume,
            _tiny(),
            1,
            3,
            settings=InferenceSettings(block_z=2),
            parts_dir=tmp_path / "parts",
        )


def test_cancel_before_anything_is_computed_leaves_no_output(tmp_path):
    volume = open_volume(_volume_file(tmp_path, _random_stack((2, 16, 16))))
    with pytest.raises(CancelledError):
        segment_volume(volume, _tiny(), output=tmp_path / "labels.tif", should_cancel=lambda: True)
    assert not (tmp_path / "labels.tif").exists()


# --------------------------------------------------------------- settings and devices


@pytest.mark.parametrize(
    "kwargs, where",
    [
        (dict(blend="median"), "blend"),
        (dict(precision="fp8"), "precision"),
        (dict(window=(32, 32, 32)), "window"),
        (dict(window=(32, 32), overlap=32), "overlap"),
        (dict(step=16), "step"),
        (dict(batch_size=0), "batch_size"),
        (dict(probabilities=Path("p")), "probabilities"),
        (dict(device="tpu"), "device"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path, kwargs, where):
    volume = open_volume(_volume_file(tmp_path, _random_stack((1, 16, 16))))
    with pytest.raises(InputError) as caught:
        segment_volume(volume, _tiny(), **kwargs)
    assert caught.value.where == where


def test_settings_travel_as_json_dicts():
    settings = InferenceSettings(window=(256, 256), overlap=128, precision="fp32", block_z=8)
    assert InferenceSettings.from_dict(settings.as_dict()) == settings


def test_device_names_resolve_or_fail_clearly():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("banana")
    if torch.cuda.device_count() < 8:
        with pytest.raises(InputError, match="cuda:7"):
            resolve_device("cuda:7")


def test_parallel_windows_match_one_thread_and_leave_thread_settings_alone(tmp_path):
    import threading

    array = _random_stack((3, 48, 48), seed=11)
    model = _tiny(norm="instance")
    volume = open_volume(_volume_file(tmp_path, array))
    options = dict(window=(16, 16), overlap=8, precision="fp32")
    original = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parallel = segment_volume(volume, model, **options)
        seen_by_new_thread = []
        worker = threading.Thread(target=lambda: seen_by_new_thread.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert torch.get_num_threads() == 2 and seen_by_new_thread == [2]
        torch.set_num_threads(1)
        serial = segment_volume(volume, model, **options)
    finally:
        torch.set_num_threads(original)
    np.testing.assert_array_equal(parallel, serial)


@pytest.mark.parametrize("classes", [1, 2, 5])
def test_class_axis_helpers_match_torch(classes):
    from biosegment.engine._classes import argmax_over_classes, softmax_over_classes

    generator = torch.Generator().manual_seed(classes)
    logits = torch.randn((classes, 3, 17, 19), generator=generator) * 20
    logits[:, 0, 0, 0] = 1.5  # a tie: the first class wins, as with argmax
    np.testing.assert_allclose(
        softmax_over_classes(logits).numpy(), torch.softmax(logits, dim=0).numpy(), atol=1e-6
    )
    np.testing.assert_array_equal(argmax_over_classes(logits).numpy(), logits.argmax(dim=0).numpy())


def test_workers_that_mount_the_data_folder_elsewhere_share_one_parts_folder(tmp_path):
    """One machine sees the volume under /mnt/a, another under /data: their parts still match."""
    import shutil

    array = _random_stack((6, 24, 24), seed=11)
    first = _volume_file(tmp_path / "mount-a", array)
    second = tmp_path / "mount-b" / first.name
    second.parent.mkdir(parents=True)
    shutil.copy2(first, second)  # same name, bytes and modification time, other path
    model = _tiny(norm="instance")
    settings = InferenceSettings(block_z=3, precision="fp32")
    parts = tmp_path / "shared" / ".labels.tif.parts"
    with open_volume(first) as volume:
        segment_block(volume, model, 0, 3, settings=settings, parts_dir=parts)
    with open_volume(second) as volume:
        segment_block(volume, model, 3, 6, settings=settings, parts_dir=parts)
    assemble_parts(parts, tmp_path / "labels.tif")
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "labels.tif"), _forward_labels(model, array)
    )

"""The U-Net reproduces the old neuralnets library: same keys, same shapes, same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biosegment.engine.unet import UNet, architecture_dict

torch.set_num_threads(2)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "neuralnets"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"neuralnets fixtures not found at {FIXTURES}"
)

# Each fixture checkpoint with the architecture its README says it was written with.
FIXTURE_ARCHITECTURES = {
    "unet2d_fm8_l3_batch": dict(dims=2, feature_maps=8, levels=3, norm="batch", num_classes=3),
    "unet3d_fm4_l2_instance": dict(
        dims=3, feature_maps=4, levels=2, norm="instance", num_classes=2
    ),
    "isbi_unet2d_fm16_l4_instance": dict(
        dims=2, feature_maps=16, levels=4, norm="instance", num_classes=2
    ),
}


def _fixture_state(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pytorch", map_location="cpu", weights_only=True)


@needs_fixtures
@pytest.mark.parametrize("name", sorted(FIXTURE_ARCHITECTURES))
def test_state_dict_keys_and_shapes_match_neuralnets(name):
    reference = _fixture_state(name)
    ours = UNet(**FIXTURE_ARCHITECTURES[name]).state_dict()
    assert list(ours) == list(reference)
    for key, tensor in reference.items():
        assert tuple(ours[key].shape) == tuple(tensor.shape), key


@needs_fixtures
@pytest.mark.parametrize("name", ["unet2d_fm8_l3_batch", "unet3d_fm4_l2_instance"])
def test_fixture_outputs_are_reproduced(name):
    model = UNet(**FIXTURE_ARCHITECTURES[name])
    model.load_state_dict(_fixture_state(name))
    model.eval()
    io = np.load(FIXTURES / f"{name}_io.npz")
    with torch.inference_mode():
        logits = model(torch.from_numpy(io["input"])).numpy()
    assert logits.shape == io["output"].shape
    np.testing.assert_allclose(logits, io["output"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("dims, shape", [(2, (2, 1, 48, 80)), (3, (1, 1, 8, 16, 24))])
def test_output_has_one_logit_per_class_at_input_size(dims, shape):
    model = UNet(dims=dims, num_classes=4, feature_maps=4, levels=3)
    with torch.inference_mode():
        logits = model(torch.rand(shape))
    assert logits.shape == (shape[0], 4, *shape[2:])
    assert logits.dtype == torch.float32


def test_config_records_the_architecture():
    model = UNet(dims=3, in_channels=2, num_classes=5, feature_maps=6, levels=2, norm="none")
    assert model.config == {
        "dims": 3,
        "in_channels": 2,
        "num_classes": 5,
        "feature_maps": 6,
        "levels": 2,
        "norm": "none",
    }


def test_norm_choice_changes_the_layers():
    batch_keys = set(UNet(norm="batch", feature_maps=4, levels=1).state_dict())
    plain = UNet(norm="none", feature_maps=4, levels=1)
    instance = UNet(norm="instance", feature_maps=4, levels=1)
    assert any(key.endswith("unit.norm.running_mean") for key in batch_keys)
    # Instance norm has no parameters: its keys equal those of no norm, but it normalises.
    assert set(plain.state_dict()) == set(instance.state_dict())
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in plain.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in instance.modules())


def test_spatial_size_not_a_multiple_of_two_to_the_levels_is_refused():
    model = UNet(feature_maps=4, levels=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 1, 20, 24))


def test_wrong_number_of_dimensions_is_refused():
    with pytest.raises(ValueError, match="3-D U-Net"):
        UNet(dims=3, feature_maps=4, levels=1)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize(
    "bad",
    [
        dict(dims=4),
        dict(norm="group"),
        dict(levels=0),
        dict(feature_maps=2.5),
        dict(num_classes=True),
    ],
)
def test_invalid_hyper_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        architecture_dict(**bad)


@needs_fixtures
@pytest.mark.parametrize("name", ["unet2d_fm8_l3_batch", "unet3d_fm4_l2_instance"])
def test_fast_inference_pass_matches_the_fixture_outputs(name):
    from biosegment.engine._fast_forward import FastUNet

    model = UNet(**FIXTURE_ARCHITECTURES[name])
    model.load_state_dict(_fixture_state(name))
    io = np.load(FIXTURES / f"{name}_io.npz")
    x = torch.from_numpy(io["input"])
    with torch.inference_mode():
        fp32 = FastUNet(model.eval(), torch.device("cpu"), "fp32")(x).numpy()
        bf16 = FastUNet(model, torch.device("cpu"), "bf16")(x).numpy()
    np.testing.assert_allclose(fp32, io["output"], atol=1e-4, rtol=0)
    # bfloat16 keeps about three significant digits: close logits, nearly the same labels.
    assert np.abs(bf16 - io["output"]).max() < 0.05 * np.abs(io["output"]).max()
    assert np.mean(bf16.argmax(1) == io["output"].argmax(1)) > 0.99


def test_fast_inference_pass_handles_batches_of_instance_norm_samples():
    from biosegment.engine._fast_forward import FastUNet

    torch.manual_seed(0)
    model = UNet(feature_maps=4, levels=2).eval()
    x = torch.rand(3, 1, 32, 48)
    with torch.inference_mode():
        np.testing.assert_allclose(
            FastUNet(model, torch.device("cpu"))(x).numpy(), model(x).numpy(), atol=1e-5, rtol=0
        )


def _counted_flops_per_voxel(model: UNet, shape: tuple[int, ...]) -> float:
    """FLOPs of one forward pass counted from the convolutions actually run, per voxel."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        in_channels = inputs[0].shape[1]
        taps = (
            1
            if isinstance(module, (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d))
            else int(np.prod(module.kernel_size))
        )
        total += 2 * output.numel() * in_channels * taps

    kinds = (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    with torch.inference_mode():
        model(torch.zeros(shape))
    for hook in hooks:
        hook.remove()
    return total / np.prod(shape[2:])


@pytest.mark.parametrize(
    "config, shape",
    [
        (dict(), (1, 1, 64, 64)),
        (dict(dims=3, feature_maps=4, levels=2, num_classes=3), (1, 1, 8, 8, 8)),
    ],
)
def test_flop_count_matches_the_convolutions_run(config, shape):
    from biosegment.engine.unet import flops_per_voxel

    model = UNet(**config).eval()
    assert flops_per_voxel(model.config) == pytest.approx(
        _counted_flops_per_voxel(model, shape), rel=1e-9
    )
    if not config:
        assert flops_per_voxel(model.config) == pytest.approx(92_000, rel=0.01)  # SPEC 9

"""Checkpoints: legacy files load without side files, new models save and load with model.json."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from biosegment.engine.checkpoint import infer_architecture, load_model, save_model
from biosegment.engine.model_card import ModelCard
from biosegment.engine.unet import UNet
from biosegment.errors import InputError

torch.set_num_threads(2)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "neuralnets"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"neuralnets fixtures not found at {FIXTURES}"
)


def _tiny(**overrides) -> UNet:
    torch.manual_seed(0)
    return UNet(**{"feature_maps": 4, "levels": 2, **overrides}).eval()


def _logits(model: UNet, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(x).numpy()


@needs_fixtures
@pytest.mark.parametrize(
    "name, expected",
    [
        (
            "unet2d_fm8_l3_batch",
            dict(dims=2, in_channels=1, num_classes=3, feature_maps=8, levels=3, norm="batch"),
        ),
        (
            "unet3d_fm4_l2_instance",
            dict(dims=3, in_channels=1, num_classes=2, feature_maps=4, levels=2, norm="instance"),
        ),
        (
            "isbi_unet2d_fm16_l4_instance",
            dict(dims=2, in_channels=1, num_classes=2, feature_maps=16, levels=4, norm="instance"),
        ),
    ],
)
def test_architecture_is_inferred_from_keys_and_shapes(name, expected):
    state = torch.load(FIXTURES / f"{name}.pytorch", weights_only=True)
    assert infer_architecture(state) == expected


@needs_fixtures
@pytest.mark.parametrize("name", ["unet2d_fm8_l3_batch", "unet3d_fm4_l2_instance"])
def test_bare_legacy_file_loads_and_reproduces_its_outputs(name):
    model, card = load_model(FIXTURES / f"{name}.pytorch")
    io = np.load(FIXTURES / f"{name}_io.npz")
    np.testing.assert_allclose(
        _logits(model, torch.from_numpy(io["input"])), io["output"], atol=1e-4, rtol=0
    )
    assert not model.training
    assert card.name == name
    assert [c["id"] for c in card.classes] == list(range(model.config["num_classes"]))
    assert card.classes[0]["name"] == "background"


def test_save_then_load_round_trips_weights_and_card(tmp_path):
    model = _tiny(norm="batch", num_classes=3)
    card = ModelCard(
        name="mito",
        classes=[
            {"id": 0, "name": "background", "color": "#000000"},
            {"id": 1, "name": "mitochondrion", "color": "#00c0ff"},
            {"id": 2, "name": "ER", "color": "#ff4040"},
        ],
        training={"data": ["annotations/ds/a"], "params": {"epochs": 3}},
        metrics=[{"epoch": 1, "loss": 0.5}],
        parent="models/base",
    )
    written = save_model(model, card, tmp_path / "models" / "mito")
    assert written == tmp_path / "models" / "mito" / "model.pytorch"
    assert sorted(p.name for p in written.parent.iterdir()) == ["model.json", "model.pytorch"]

    stored = torch.load(written, weights_only=True)
    assert "encoder.features.convblock1.conv1.unit.norm.running_mean" in stored
    assert "decoder.output.weight" in stored
    document = json.loads((written.parent / "model.json").read_text())
    assert document["architecture"] == model.config
    assert document["parent"] == "models/base"

    loaded, loaded_card = load_model(written.parent)
    x = torch.rand(1, 1, 32, 32)
    np.testing.assert_array_equal(_logits(loaded, x), _logits(model, x))
    assert loaded_card.classes[1]["name"] == "mitochondrion"
    assert loaded_card.metrics == [{"epoch": 1, "loss": 0.5}]
    assert loaded_card.training["params"] == {"epochs": 3}


def test_half_precision_weights_load_as_float32(tmp_path):
    model = _tiny()
    half = OrderedDict((k, v.half()) for k, v in model.state_dict().items())
    torch.save(half, tmp_path / "half.pytorch")
    loaded, _ = load_model(tmp_path / "half.pytorch")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(1, 1, 16, 16)
    np.testing.assert_allclose(_logits(loaded, x), _logits(model, x), atol=2e-2)


def test_wrapped_and_data_parallel_state_dicts_load(tmp_path):
    model = _tiny()
    prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": prefixed, "epoch": 7}, tmp_path / "wrapped.pytorch")
    loaded, _ = load_model(tmp_path / "wrapped.pytorch")
    x = torch.rand(1, 1, 16, 16)
    np.testing.assert_array_equal(_logits(loaded, x), _logits(model, x))


def test_card_saying_no_norm_overrides_the_instance_guess(tmp_path):
    model = _tiny(norm="none")
    save_model(model, ModelCard(name="plain"), tmp_path)
    loaded, card = load_model(tmp_path / "model.pytorch")
    assert loaded.config["norm"] == "none" and card.architecture["norm"] == "none"
    x = torch.rand(1, 1, 16, 16)
    np.testing.assert_array_equal(_logits(loaded, x), _logits(model, x))


def test_card_beside_a_bare_file_uses_the_same_stem(tmp_path):
    torch.save(_tiny().state_dict(), tmp_path / "mito.pytorch")
    (tmp_path / "mito.json").write_text(json.dumps({"name": "Mitochondria v2"}))
    _, card = load_model(tmp_path / "mito.pytorch")
    assert card.name == "Mitochondria v2"
    assert card.architecture["feature_maps"] == 4


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken"])
def test_corrupt_checkpoint_raises_input_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.pytorch"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_model(path)
    assert caught.value.source == str(path)
    assert path.read_bytes() == content  # nothing that existed is lost


def test_truncated_checkpoint_raises_input_error(tmp_path):
    path = tmp_path / "model.pytorch"
    torch.save(_tiny().state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_model(tmp_path)


def test_missing_model_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="not found") as caught:
        load_model(tmp_path / "empty-folder")
    assert "empty-folder" in caught.value.source


def test_state_dict_of_another_network_is_refused(tmp_path):
    path = tmp_path / "resnet.pytorch"
    torch.save({"conv1.weight": torch.zeros(8, 1, 3, 3)}, path)
    with pytest.raises(InputError) as caught:
        load_model(path)
    assert caught.value.source == str(path)
    assert caught.value.where == "encoder.features.convblock1.conv1.unit.0.weight"


def test_state_dict_with_a_missing_tensor_is_refused(tmp_path):
    state = _tiny().state_dict()
    del state["decoder.features.convblock1.conv2.unit.0.bias"]
    torch.save(state, tmp_path / "partial.pytorch")
    with pytest.raises(InputError, match="do not fit"):
        load_model(tmp_path / "partial.pytorch")


def test_card_contradicting_the_weights_is_refused(tmp_path):
    save_model(_tiny(), ModelCard(name="x"), tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["architecture"]["feature_maps"] = 32
    (tmp_path / "model.json").write_text(json.dumps(document))
    with pytest.raises(InputError) as caught:
        load_model(tmp_path)
    assert caught.value.where == "architecture.feature_maps"
    assert caught.value.source == str(tmp_path / "model.json")


def test_card_with_bad_json_names_the_line(tmp_path):
    save_model(_tiny(), ModelCard(name="x"), tmp_path)
    (tmp_path / "model.json").write_text('{\n  "name": "x",\n  oops\n}')
    with pytest.raises(InputError) as caught:
        load_model(tmp_path)
    assert caught.value.where.startswith("line 3")


def test_card_with_wrong_field_type_names_the_key():
    with pytest.raises(InputError) as caught:
        ModelCard.from_json('{"classes": {"0": "background"}}', source="m.json")
    assert caught.value.where == "classes"


def test_legacy_card_gets_defaults():
    card = ModelCard.from_json("{}")
    assert card.normalisation["method"] == "dtype_range"
    assert card.parent is None and card.metrics == [] and card.created


def test_saving_over_a_model_replaces_it_whole(tmp_path):
    save_model(_tiny(), ModelCard(name="first"), tmp_path)
    save_model(_tiny(feature_maps=8), ModelCard(name="second"), tmp_path)
    model, card = load_model(tmp_path)
    assert card.name == "second" and model.config["feature_maps"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pytorch"]

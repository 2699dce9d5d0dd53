"""SegmentSettings: the one definition of a segmentation's options, their defaults and bounds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import click
import pytest

from biosegment.cli import main
from biosegment.engine.inference import PRECISIONS as INFERENCE_PRECISIONS
from biosegment.engine.label_output import SEGMENTATION_FORMATS
from biosegment.engine.segment_settings import PERSON_OPTIONS, SegmentSettings
from biosegment.engine.train_settings import PRECISIONS as TRAINING_PRECISIONS
from biosegment.errors import InputError
from biosegment.webui.api.schemas import SegmentRequest


def test_defaults_leave_every_choice_to_the_engine_and_config():
    settings = SegmentSettings()
    assert settings.as_dict() == {
        "block_z": None,
        "batch_size": None,
        "window": None,
        "precision": "auto",
        "device": None,
        "output_format": None,
        "probabilities": None,
        "objects": None,
        "split": None,
        "min_object_voxels": None,
        "min_object_nm3": None,
    }
    assert settings.window_for(2) is None
    assert not settings.wants_probabilities


def test_one_window_edge_serves_every_axis_the_network_sees():
    settings = SegmentSettings(window=128)
    assert settings.window_for(2) == (128, 128)
    assert settings.window_for(3) == (128, 128, 128)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"block_z": 0}, "block_z"),
        ({"block_z": "two"}, "block_z"),
        ({"block_z": True}, "block_z"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"window": 8}, "window"),
        ({"window": 100_000}, "window"),
        ({"precision": "fp8"}, "precision"),
        ({"output_format": "nifti"}, "output_format"),
        ({"device": ""}, "device"),
        ({"device": 3}, "device"),
        ({"tile_size": 3}, "tile_size"),
    ],
)
def test_a_bad_value_is_an_input_error_naming_the_field(changes, field):
    with pytest.raises(InputError) as caught:
        SegmentSettings.from_dict(changes)
    assert caught.value.where == field


def test_replace_checks_like_a_new_one():
    settings = SegmentSettings(block_z=4)
    assert settings.replace(precision="bf16") == SegmentSettings(block_z=4, precision="bf16")
    with pytest.raises(InputError) as caught:
        settings.replace(block_z=-1)
    assert caught.value.where == "block_z"
    with pytest.raises(InputError) as caught:
        settings.replace(learning_rate=0.1)
    assert caught.value.where == "learning_rate"


def test_a_row_round_trips_and_an_older_row_with_flat_options_still_reads():
    settings = SegmentSettings(block_z=2, window=256, precision="fp32", output_format="ome-zarr")
    row = {"dataset": "d", "model": "m", "name": "n", "settings": settings.as_dict()}
    assert SegmentSettings.from_job(row) == settings
    older = {"dataset": "d", "model": "m", "name": "n", "trigger": "cli", "block_z": 2}
    assert SegmentSettings.from_job(older) == SegmentSettings(block_z=2)


def test_precision_choices_are_spelled_once():
    assert TRAINING_PRECISIONS is INFERENCE_PRECISIONS
    [rule] = [rule for rule in PERSON_OPTIONS if rule.name == "precision"]
    assert rule.choices is TRAINING_PRECISIONS
    [formats] = [rule for rule in PERSON_OPTIONS if rule.name == "output_format"]
    assert formats.choices == SEGMENTATION_FORMATS


def test_cli_options_and_api_request_are_made_from_the_rules():
    command = main.commands["segment"]
    with click.Context(command) as ctx:
        params = {param.name: param for param in command.get_params(ctx)}
    schema = SegmentRequest.model_json_schema()["properties"]
    for rule in PERSON_OPTIONS:
        option = params[rule.name]
        assert option.opts == ["--" + rule.name.replace("_", "-")]
        described = next(s for s in schema[rule.name]["anyOf"] if s["type"] != "null")
        if rule.choices:
            assert tuple(option.type.choices) == rule.choices
            assert tuple(described["enum"]) == rule.choices
        else:
            assert (option.type.min, option.type.max) == (rule.low, rule.high)
            assert (described["minimum"], described["maximum"]) == (rule.low, rule.high)


def test_the_settings_modules_import_without_torch():
    # The engine package's __init__ imports torch; load the settings modules past it, with
    # torch made unimportable, so a torch import in them (or what they import) fails here.
    script = textwrap.dedent(
        """
        import sys, types
        from pathlib import Path
        import biosegment
        engine = types.ModuleType("biosegment.engine")
        engine.__path__ = [str(Path(biosegment.__file__).parent / "engine")]
        sys.modules["biosegment.engine"] = engine
        sys.modules["torch"] = None
        import biosegment.engine.segment_settings
        import biosegment.engine.train_settings
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

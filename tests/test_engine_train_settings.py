"""TrainingSettings: the one definition of training options, checked field by field."""

from __future__ import annotations

import pytest

from biosegment.engine.train_settings import (
    DEFAULT_MINUTES,
    FINE_TUNE_LEARNING_RATE,
    NEW_NETWORK_LEARNING_RATE,
    PERSON_OPTIONS,
    TrainingSettings,
)
from biosegment.errors import InputError


def test_defaults_are_a_timed_run_of_the_small_fast_network():
    settings = TrainingSettings()
    assert settings.minutes == DEFAULT_MINUTES and settings.time_budget_s == DEFAULT_MINUTES * 60
    assert settings.network() == {"dims": 2, "feature_maps": 8, "levels": 4, "norm": "instance"}
    assert (settings.crop_size, settings.batch_size, settings.learning_rate) == (128, 16, None)
    # the learning rate follows how the run starts, unless it is given
    assert settings.for_start(fine_tune=False).learning_rate == NEW_NETWORK_LEARNING_RATE == 5e-3
    assert settings.for_start(fine_tune=True).learning_rate == FINE_TUNE_LEARNING_RATE
    assert FINE_TUNE_LEARNING_RATE < NEW_NETWORK_LEARNING_RATE
    given = TrainingSettings(learning_rate=0.01)
    assert given.for_start(fine_tune=True).learning_rate == 0.01
    assert settings.validation_fraction == 0.15 and settings.precision == "auto"


def test_an_epoch_or_step_budget_replaces_the_default_minutes():
    assert TrainingSettings(epochs=4).minutes is None
    assert TrainingSettings(max_steps=10).budget_text() == "10 steps"
    both = TrainingSettings(minutes=2, epochs=5)
    assert both.budget_text() == "2 min or 5 epochs"


def test_round_trip_through_plain_data():
    settings = TrainingSettings(
        epochs=3, crop_size=[4, 32, 32], dims=3, class_weights=[1, 2.5], threads=2
    )
    data = settings.as_dict()
    assert data["crop_size"] == [4, 32, 32] and data["class_weights"] == [1.0, 2.5]
    assert TrainingSettings.from_dict(data) == settings
    assert TrainingSettings.from_dict({"class_weights": "auto"}).class_weights == "auto"


@pytest.mark.parametrize(
    "data, where",
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": "soon"}, "minutes"),
        ({"minutes": True}, "minutes"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"max_steps": -1}, "max_steps"),
        ({"feature_maps": 0}, "feature_maps"),
        ({"levels": 9}, "levels"),
        ({"norm": "group"}, "norm"),
        ({"dims": 4}, "dims"),
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": [16]}, "crop_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"class_weights": "rare"}, "class_weights"),
        ({"class_weights": [1, -1]}, "class_weights"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"select_best_by": "luck"}, "select_best_by"),
        ({"precision": "fp8"}, "precision"),
        ({"threads": -2}, "threads"),
        ({"seed": -1}, "seed"),
        ({"optimiser": "sgd"}, "optimiser"),
    ],
)
def test_bad_values_are_input_errors_naming_the_field(data, where):
    with pytest.raises(InputError) as caught:
        TrainingSettings.from_dict(data)
    assert caught.value.where == where


def test_replace_checks_like_a_new_one():
    with pytest.raises(InputError) as caught:
        TrainingSettings().replace(batch_size=0)
    assert caught.value.where == "batch_size"
    with pytest.raises(InputError) as caught:
        TrainingSettings().replace(momentum=0.9)
    assert caught.value.where == "momentum"


def test_every_person_option_is_a_field_checked_at_its_bounds():
    """The CLI and API options come from PERSON_OPTIONS; the settings enforce the same bounds."""
    names = TrainingSettings.field_names()
    for rule in PERSON_OPTIONS:
        assert rule.name in names
        edge = int(rule.high) if rule.kind is int else rule.high
        if rule.name == "crop_size":
            edge = 4096 - 4096 % 16
        TrainingSettings(**{rule.name: edge})  # the upper bound itself is accepted
        over = edge + 1 if rule.kind is int else rule.high * 1.5
        with pytest.raises(InputError) as error:
            TrainingSettings(**{rule.name: over})
        assert error.value.where == rule.name
        under = rule.low if rule.low_open else rule.low - 1
        with pytest.raises(InputError) as error:
            TrainingSettings(**{rule.name: int(under) if rule.kind is int else under})
        assert error.value.where == rule.name and rule.describe().startswith(rule.help)

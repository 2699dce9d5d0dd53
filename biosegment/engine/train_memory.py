"""How much memory a training step of the U-Net takes, and what fits when that is too much.

:func:`training_memory` counts what a step holds at its peak:

- the network: its weights, their gradients and AdamW's two moments (16 bytes a parameter),
  plus the bfloat16 copies autocast keeps under ``bf16``;
- per crop of the batch: the outputs the forward pass keeps for the backward pass at every
  level (convolutions, norms, pooling with its indices, up-sampling, concatenation), the input
  and labels, the logits and the loss's softmax, times a factor for the backward pass's own
  buffers;
- a fixed amount for torch's working buffers.

The factors were fitted to the peak RSS of real forward and backward passes on the CPU (22
settings: 2-D and 3-D networks, float32 and bfloat16, 0.1 to 1 GB) and rounded up: the
estimate came to 1.0 to 1.45 times the measurement, never below it, and
tests/test_train_memory.py keeps checking it against real steps. A GPU step keeps the same
tensors; the factors were not measured on one. The estimate counts the step, not the training
material held in memory (the dataset's slices), which depends on the data, not the settings.

:func:`require_training_fits` compares the estimate with what the device can give
(:mod:`biosegment.engine.device_memory`) and refuses with an input error that names the
settings and says which values of each would fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from biosegment.engine.device_memory import DeviceMemory
from biosegment.engine.train_settings import PERSON_OPTIONS, TrainingSettings, crop_shape_for
from biosegment.errors import InputError

__all__ = [
    "TrainingMemory",
    "training_memory",
    "training_network",
    "parameter_count",
    "computed_precision",
    "require_training_fits",
    "WORKING_BYTES",
]

#: torch's own working memory during a step, whatever the settings (fitted: about 100 MB).
WORKING_BYTES = 128 * 2**20
# Bytes an AdamW step holds per parameter: the weight, its gradient and two moments (float32).
_TRAINING_BYTES_PER_PARAMETER = 16
# Per activation counted (in float32 units), the bytes a step holds at its peak: the saved
# outputs plus the backward pass's gradients and temporary buffers (fitted 1.13 for float32,
# 0.63 for bfloat16 autocast, which keeps the norms and the loss in float32).
_ACTIVATION_FACTOR = {"fp32": 1.25, "bf16": 0.75}
_RULE_HIGH = {rule.name: int(rule.high) for rule in PERSON_OPTIONS}


@dataclass(frozen=True, slots=True)
class TrainingMemory:
    """The memory one training step needs, in bytes, in the parts that scale differently."""

    network: int  #: weights, gradients and optimizer state
    per_crop: int  #: the activations of one crop of the batch
    batch_size: int
    precision: str  #: ``fp32`` or ``bf16``: what the step computes in
    fixed: int = WORKING_BYTES

    @property
    def total(self) -> int:
        return self.network + self.batch_size * self.per_crop + self.fixed


def parameter_count(architecture: Mapping) -> int:
    """Parameters of a U-Net (:func:`biosegment.engine.unet.architecture_dict` keys)."""
    dims, fm, levels = architecture["dims"], architecture["feature_maps"], architecture["levels"]
    taps = 3**dims
    norm = 2 if architecture.get("norm") == "batch" else 0  # a scale and a shift per channel
    total, channels_in = 0, architecture.get("in_channels", 1)
    for level in range(levels + 1):  # the encoder's levels, then the centre block
        channels = fm * 2**level
        total += channels_in * channels * taps + channels * channels * taps
        total += 2 * channels + 2 * norm * channels
        channels_in = channels
    for level in range(levels):  # the decoder: up-sampling, then two convolutions
        channels = fm * 2**level
        total += 2 * channels * channels * 2**dims + channels
        total += 2 * channels * channels * taps + channels * channels * taps
        total += 2 * channels + 2 * norm * channels
    classes = architecture.get("num_classes", 2)
    return total + fm * classes + classes


def _activations_per_crop(architecture: Mapping, voxels: int) -> float:
    """Values the forward pass keeps for the backward one, per crop of ``voxels``."""
    dims, fm, levels = architecture["dims"], architecture["feature_maps"], architecture["levels"]
    shrink = 2**dims  # each pooling divides the voxels by this
    # a convolution unit keeps its output, and its norm's output too (the ReLU works in place)
    per_unit = 1 if architecture.get("norm") == "none" else 2
    # the input, and the labels as int64 (two float32 units)
    total = float(architecture.get("in_channels", 1) + 2)
    for level in range(levels):
        channels, share = fm * 2**level, voxels / shrink**level
        total += 2 * per_unit * channels * share  # the encoder's two units
        total += 3 * channels * share / shrink  # pooled output and its int64 indices
        total += (3 * channels + 2 * per_unit * channels) * share  # up, concatenated, two units
    total += 2 * per_unit * fm * 2**levels * voxels / shrink**levels  # the centre block
    # the logits, their softmax and their gradients
    return total + 4 * architecture.get("num_classes", 2) * voxels


def training_memory(
    architecture: Mapping, crop: tuple[int, ...], batch_size: int, precision: str
) -> TrainingMemory:
    """The memory of one training step of ``batch_size`` crops of shape ``crop``.

    :param architecture: the U-Net (``dims``, ``feature_maps``, ``levels``, ``norm``,
        ``num_classes``, ``in_channels``).
    :param precision: ``fp32`` or ``bf16`` (see :func:`computed_precision`).
    """
    parameters = parameter_count(architecture)
    network = parameters * (_TRAINING_BYTES_PER_PARAMETER + (2 if precision == "bf16" else 0))
    per_crop = _activations_per_crop(architecture, math.prod(crop)) * 4
    return TrainingMemory(
        network=network,
        per_crop=math.ceil(per_crop * _ACTIVATION_FACTOR[precision]),
        batch_size=batch_size,
        precision=precision,
    )


def computed_precision(precision: str, memory: DeviceMemory) -> str:
    """What ``precision`` computes in on the device of ``memory``: ``auto`` is bf16 only where
    the device has it natively (float32 where that is not known: it needs more)."""
    if precision == "auto":
        return "bf16" if memory.fast_bf16 else "fp32"
    return precision


def training_network(
    settings: TrainingSettings, *, base: Mapping | None = None, num_classes: int = 2
) -> dict:
    """The architecture a run trains: the base model's (a fine-tune), or the settings' new one;
    with at least ``num_classes`` outputs."""
    if base is not None:
        architecture = {"in_channels": 1, "norm": "instance", **base}
        architecture["num_classes"] = max(int(architecture.get("num_classes", 2)), num_classes)
        return architecture
    return {**settings.network(), "in_channels": 1, "num_classes": max(num_classes, 2)}


def require_training_fits(
    settings: TrainingSettings,
    memory: DeviceMemory,
    *,
    architecture: Mapping,
    fine_tune: bool,
) -> TrainingMemory:
    """The step's memory estimate, or an input error when it exceeds what ``memory`` can give.

    The error names the settings, says what they need and what the device has, and which
    value of each setting a person may change would fit with the others as given (the
    network's width and depth only for a new network: a fine-tune keeps its base model's).
    The crop size is checked against the network's depth first.

    :raises InputError: ``where`` is the first setting whose change would fit (else
        ``batch_size``).
    """
    crop = crop_shape_for(settings.crop_size, architecture["dims"], architecture["levels"])
    precision = computed_precision(settings.precision, memory)
    estimate = training_memory(architecture, crop, settings.batch_size, precision)
    usable = memory.usable
    if usable is None or estimate.total <= usable:
        return estimate
    named = {"crop_size": settings.crop_size, "batch_size": settings.batch_size}
    if not fine_tune:
        named |= {"feature_maps": architecture["feature_maps"], "levels": architecture["levels"]}
    settings_text = ", ".join(f"{key} {_value_text(value)}" for key, value in named.items())
    network_text = "" if not fine_tune else " (with the base model's network)"
    assert memory.available is not None  # usable is known
    need = (
        f"{settings_text}{network_text} need about {_amount(estimate.total)} to train on "
        f"{memory.device} ({precision}), more than the {_amount(usable)} of {memory.kind} a "
        f"run may use here ({memory.share:.0%} of the {_amount(memory.available)} available "
        "now)"
    )
    fits = _what_fits(settings, architecture, crop, precision, usable, fine_tune=fine_tune)
    if fits:
        choices = "; ".join(f"{key} up to {value}" for key, value in fits.items())
        raise InputError(
            f"{need}. Any one of these fits with the other settings as given: {choices}",
            where=next(iter(fits)),
        )
    together = _together(architecture, estimate, precision, fine_tune=fine_tune)
    raise InputError(
        f"{need}. Changing one of them alone does not make it fit; {together}",
        where="batch_size",
    )


def _together(
    architecture: Mapping, estimate: TrainingMemory, precision: str, *, fine_tune: bool
) -> str:
    """What to change together when no one setting fits alone."""
    if fine_tune:
        return (
            "choose a smaller crop_size and batch_size together (the base model's network "
            f"alone needs {_amount(estimate.network + estimate.fixed)})"
        )
    default = TrainingSettings()
    network = training_network(default, num_classes=architecture.get("num_classes", 2))
    crop = crop_shape_for(default.crop_size, network["dims"], network["levels"])
    need = training_memory(network, crop, default.batch_size, precision).total
    return (
        f"the defaults (crop_size {default.crop_size}, batch_size {default.batch_size}, "
        f"feature_maps {default.feature_maps}, levels {default.levels}) need about "
        f"{_amount(need)}"
    )


def _what_fits(
    settings: TrainingSettings,
    architecture: Mapping,
    crop: tuple[int, ...],
    precision: str,
    usable: int,
    *,
    fine_tune: bool,
) -> dict[str, int]:
    """The largest value of each setting that fits with the others as given (those that do)."""

    def fits(network: Mapping, shape: tuple[int, ...], batch: int) -> bool:
        return training_memory(network, shape, batch, precision).total <= usable

    found: dict[str, int] = {}
    one = training_memory(architecture, crop, 1, precision)
    room = usable - one.network - one.fixed
    if room >= one.per_crop:
        found["batch_size"] = min(room // one.per_crop, settings.batch_size - 1)
    multiple = 2 ** architecture["levels"]
    if isinstance(settings.crop_size, int):
        edges = range(settings.crop_size - multiple, multiple - 1, -multiple)
        edge = next(
            (e for e in edges if fits(architecture, (e,) * len(crop), settings.batch_size)), None
        )
        if edge is not None:
            found["crop_size"] = edge
    if fine_tune:
        return found
    widths = range(architecture["feature_maps"] - 1, 0, -1)
    width = next(
        (w for w in widths if fits({**architecture, "feature_maps": w}, crop, settings.batch_size)),
        None,
    )
    if width is not None:
        found["feature_maps"] = width
    depths = range(architecture["levels"] - 1, 0, -1)
    depth = next(
        (d for d in depths if fits({**architecture, "levels": d}, crop, settings.batch_size)), None
    )
    if depth is not None:
        found["levels"] = depth
    return {key: min(value, _RULE_HIGH[key]) for key, value in found.items()}


def _value_text(value: object) -> str:
    return "x".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def _amount(size: float) -> str:
    """Bytes in words: ``412.3 TB``, ``950 MB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1e6:.0f} MB"

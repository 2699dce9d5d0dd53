"""How a volume is segmented: the one definition of every segmentation option and its default.

:class:`SegmentSettings` is what a ``segment`` job stores in its row (``settings.as_dict()``),
what ``biosegment segment`` builds from its options, what the API's segment request is checked
against and what the job's handler turns into the engine's
:class:`~biosegment.engine.inference.InferenceSettings`. The options a person sets are
:data:`PERSON_OPTIONS`, from which the CLI's options and the API's request schema are made. A
bad value is an :class:`~biosegment.errors.InputError` naming the field.

Every option defaults to "choose for me": blocks of 16 slices (3-D networks: one window deep),
one window per slice up to 512x512, batches that fill 2**18 voxels, bfloat16 where the
hardware multiplies it natively, the configured device (``[engine] device``) and the
configured label format (``[engine] segmentation_format``). Importing this module does not
import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from biosegment.engine.label_output import PROBABILITY_FORMATS, SEGMENTATION_FORMATS
from biosegment.engine.object_settings import OBJECT_SPLITS
from biosegment.engine.precision import AUTO_PRECISION, PRECISIONS
from biosegment.errors import InputError

__all__ = ["SegmentSettings", "SegmentOption", "PERSON_OPTIONS"]


@dataclass(frozen=True, slots=True)
class SegmentOption:
    """The bounds and meaning of one segmentation option that a person sets.

    The CLI's options and the API's segment request are built from these rules, and
    :class:`SegmentSettings` checks its fields against the same ones, so the three cannot
    disagree. A whole-number option has ``low`` and ``high``; a text option has ``choices``.
    """

    name: str
    help: str
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    #: a free text of at most this many characters (the classes to count as objects)
    text: int = 0

    @property
    def kind(self) -> type:
        """``str`` for an option with choices or text, else ``int``."""
        return str if self.choices or self.text else int

    def check(self, value: Any) -> None:
        """An input error naming the option unless ``value`` is within the rule."""
        if self.text:
            if not isinstance(value, str) or len(value) > self.text:
                raise InputError(
                    f"must be a text of at most {self.text} characters, not {value!r}",
                    where=self.name,
                )
            return
        if self.choices:
            if value not in self.choices:
                raise InputError(
                    f"must be one of {', '.join(self.choices)}, not {value!r}", where=self.name
                )
            return
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole and self.low <= value <= self.high):
            raise InputError(
                f"must be a whole number from {self.low} to {self.high}, not {value!r}",
                where=self.name,
            )

    def describe(self) -> str:
        """The help text (the CLI and the API list a text option's choices themselves)."""
        return self.help


#: The options a person may set from the CLI (``--block-z``) and the API (``block_z``).
PERSON_OPTIONS = (
    SegmentOption(
        "block_z",
        "slices per z-block; blocks are shared between workers and are the unit of resuming",
        low=1,
        high=100_000,
    ),
    SegmentOption(
        "batch_size",
        "windows per forward pass (default: enough to fill 2**18 voxels)",
        low=1,
        high=4096,
    ),
    SegmentOption(
        "window",
        "edge of the windows the network sees, in pixels, rounded up to what the network "
        "divides (default: whole slices up to 512x512)",
        low=16,
        high=4096,
    ),
    SegmentOption(
        "precision",
        "arithmetic of the network (auto: bf16 where the hardware has it natively, else fp32)",
        choices=PRECISIONS,
    ),
    SegmentOption(
        "output_format",
        "file format of the labels (default: [engine] segmentation_format)",
        choices=SEGMENTATION_FORMATS,
    ),
    SegmentOption(
        "probabilities",
        "also write each class's probability (uint8, 255 = 1) as an image with a channel axis, "
        "probabilities.ome.zarr, the input of ilastik, plantseg and multicut workflows "
        "(default: none)",
        choices=PROBABILITY_FORMATS,
    ),
    SegmentOption(
        "objects",
        "classes to count as objects, by name or id, separated by commas: each object gets "
        "its own id in instances.tif and a row in objects.csv (default: the classes the "
        'project marks "objects": true in setup.json; none: no objects)',
        text=200,
    ),
    SegmentOption(
        "split",
        "split touching objects with a seeded watershed: seeds from the distance transform "
        "(distance) or from the class probability (probability); default: none",
        choices=OBJECT_SPLITS,
    ),
    SegmentOption(
        "min_object_voxels",
        "objects smaller than this many voxels are dropped (default: 0)",
        low=0,
        high=10**12,
    ),
    SegmentOption(
        "min_object_nm3",
        "objects smaller than this many cubic nanometres are dropped, where the voxel size is "
        "known (default: 0)",
        low=0,
        high=10**18,
    ),
)
_RULES = {rule.name: rule for rule in PERSON_OPTIONS}


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """Every option of a segmentation; ``None`` means "choose for me".

    - ``block_z``: slices per z-block, the unit of resuming and of work shared by workers.
    - ``batch_size``: windows per forward pass.
    - ``window``: the edge of the windows, the same on every axis the network sees.
    - ``precision``: ``auto``, ``fp32`` or ``bf16``.
    - ``device``: a device name such as ``cpu`` or ``cuda:1`` (None: ``[engine] device``).
    - ``output_format``: ``tiff`` or ``ome-zarr`` (None: ``[engine] segmentation_format``).
    - ``probabilities``: ``ome-zarr`` also writes the class probabilities; ``none`` (or None)
      does not.
    - ``objects``: the classes whose objects are counted and measured (names or ids, comma
      separated; None: the project's choice; ``none``: no objects).
    - ``split``: ``none``, ``distance`` or ``probability`` (the watershed's seeds).
    - ``min_object_voxels``, ``min_object_nm3``: the smallest object kept.
    """

    block_z: int | None = None
    batch_size: int | None = None
    window: int | None = None
    precision: str = AUTO_PRECISION
    device: str | None = None
    output_format: str | None = None
    probabilities: str | None = None
    objects: str | None = None
    split: str | None = None
    min_object_voxels: int | None = None
    min_object_nm3: int | None = None

    @property
    def wants_probabilities(self) -> bool:
        """Whether ``probabilities.ome.zarr`` is written."""
        return self.probabilities not in (None, "none")

    @property
    def keeps_probabilities(self) -> bool:
        """Whether the blocks keep class probabilities (written, or seeding the split)."""
        return self.wants_probabilities or self.split == "probability"

    def __post_init__(self) -> None:
        for rule in PERSON_OPTIONS:
            value = getattr(self, rule.name)
            if value is not None:
                rule.check(value)
        if self.device is not None and not (isinstance(self.device, str) and self.device.strip()):
            raise InputError("must be a device name such as auto, cpu or cuda", where="device")

    def window_for(self, dims: int) -> tuple[int, ...] | None:
        """The window as the engine takes it: one edge for each of the network's ``dims`` axes."""
        return None if self.window is None else (self.window,) * dims

    def replace(self, **changes: Any) -> SegmentSettings:
        """A copy with some fields changed (checked like a new one)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise InputError(_unknown_text(), where=unknown[0])
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready plain data."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentSettings:
        """Settings from plain data (a request, a job row); an unknown key is an input error.

        Missing keys take their defaults; a ``None`` value counts as missing.
        """
        if not isinstance(data, Mapping):
            raise InputError("segmentation settings must be an object", where="settings")
        known = set(cls.field_names())
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise InputError(_unknown_text(), where=unknown[0])
        return cls(**{key: value for key, value in data.items() if value is not None})

    @classmethod
    def from_job(cls, params: Mapping[str, Any]) -> SegmentSettings:
        """The settings of a ``segment`` job row: its ``settings``, or, in a row written before
        the settings had their own entry, the options stored beside the dataset and model."""
        stored = params.get("settings")
        if stored is not None:
            return cls.from_dict(stored)
        known = set(cls.field_names())
        return cls.from_dict({key: value for key, value in params.items() if key in known})


def _unknown_text() -> str:
    return (
        f"unknown segmentation option; expected one of {', '.join(SegmentSettings.field_names())}"
    )

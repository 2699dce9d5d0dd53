"""How a network is trained: the one definition of every training option and its default.

:class:`TrainingSettings` is what the engine's :func:`~biosegment.engine.training.train_model`
takes, what a ``train`` job stores in its row (``settings.as_dict()``), what ``biosegment
train`` builds from its options and what the API's train request is checked against: the
options a person sets are :data:`PERSON_OPTIONS`, from which the CLI's options and the API's
request schema are made. A bad value is an :class:`~biosegment.errors.InputError` naming the
field.

The defaults are the fastest good settings measured on a 2-core CPU (benchmarks/RESULTS.md): a
small U-Net (8 feature maps, 4 levels, instance norm) trained on batches of 16 crops of 128²
pixels at a learning rate of 5e-3 with a cosine decay reaches its level in about 200 s; a
fine-tune starts at 2e-4, which harms a good base model least. A run
is bounded by wall-clock ``minutes`` (default 3) unless ``epochs`` or ``max_steps`` are given;
when several are given, whichever is reached first ends the run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from biosegment.engine.precision import PRECISIONS
from biosegment.errors import InputError

__all__ = [
    "TrainingSettings",
    "DEFAULT_MINUTES",
    "NORMS",
    "SCHEDULES",
    "PRECISIONS",
    "SELECTION_METRICS",
    "NETWORK_FIELDS",
    "MAX_MINUTES",
    "NEW_NETWORK_LEARNING_RATE",
    "FINE_TUNE_LEARNING_RATE",
    "OptionRule",
    "PERSON_OPTIONS",
    "crop_shape_for",
]

#: Minutes a run trains when no budget is given: enough for the defaults to level off on 2 cores.
DEFAULT_MINUTES = 3.0
#: The longest time budget accepted (a week), so a typo of a few zeros is caught.
MAX_MINUTES = 7 * 24 * 60.0
NORMS = ("instance", "batch", "none")
SCHEDULES = ("cosine", "constant")
#: Metrics that can choose the best epoch, and whether higher is better.
SELECTION_METRICS = {"val_loss": False, "pixel_error": False, "mean_iou": True, "mean_dice": True}
#: The learning rate a run starts at when none is given: a new network learns fast; a fine-tune
#: starts 25 times lower, so a few strokes adjust what the base model knows instead of
#: overwriting it. Measured (benchmarks/RESULTS.md, fine-tuning loop): the lowest rate tried
#: harmed a good base model least and adapted pretrained features to a new target as fast.
NEW_NETWORK_LEARNING_RATE = 5e-3
FINE_TUNE_LEARNING_RATE = 2e-4
#: The fields describing a new network (ignored when fine-tuning a base model).
NETWORK_FIELDS = ("dims", "feature_maps", "levels", "norm")


@dataclass(frozen=True, slots=True)
class OptionRule:
    """The bounds and meaning of one training option that a person sets.

    The CLI's options and the API's train request are built from these rules, and
    :class:`TrainingSettings` checks its fields against the same ones, so the three cannot
    disagree. ``kind`` is ``int`` or ``float``; ``low_open`` excludes ``low`` itself.
    """

    name: str
    kind: type
    low: float
    high: float
    help: str
    low_open: bool = False

    def check(self, value: Any) -> None:
        """An input error naming the option unless ``value`` is within the rule."""
        number = _is_int(value) if self.kind is int else _is_number(value)
        above = number and (value > self.low if self.low_open else value >= self.low)
        if above and value <= self.high:
            return
        what = "a whole number" if self.kind is int else "a number"
        low = f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        raise InputError(
            f"must be {what} {low} and at most {self.high:g}, not {value!r}", where=self.name
        )

    def describe(self) -> str:
        """The help text with the default appended (from :class:`TrainingSettings`)."""
        default = _DEFAULTS.get(self.name)
        if self.name == "minutes":
            return f"{self.help}; default: {DEFAULT_MINUTES:g} when no other budget is given"
        return self.help if default is None else f"{self.help}; default: {default:g}"


#: The options a person may set from the CLI (``--max-steps``) and the API (``max_steps``).
PERSON_OPTIONS = (
    OptionRule(
        "minutes",
        float,
        0,
        MAX_MINUTES,
        "training time budget in minutes, validation and saving included; with several "
        "budgets the first reached ends the run",
        low_open=True,
    ),
    OptionRule("epochs", int, 1, 100_000, "stop after this many epochs"),
    OptionRule("max_steps", int, 1, 10_000_000, "stop after this many optimizer steps"),
    OptionRule(
        "steps_per_epoch",
        int,
        1,
        1_000_000,
        "batches per epoch (default: enough crops to see the labelled pixels once)",
    ),
    OptionRule("batch_size", int, 1, 1024, "crops per batch"),
    OptionRule(
        "crop_size",
        int,
        16,
        4096,
        "edge of the training crops in pixels, a multiple of 2 to the power of levels",
    ),
    OptionRule(
        "learning_rate",
        float,
        0,
        1,
        f"initial learning rate; default: {NEW_NETWORK_LEARNING_RATE:g} for a new network, "
        f"{FINE_TUNE_LEARNING_RATE:g} when fine-tuning (0 trains nothing: the start is kept)",
    ),
    OptionRule(
        "feature_maps",
        int,
        1,
        256,
        "width of a new network, the feature maps of its first level (a fine-tune keeps its "
        "base model's)",
    ),
    OptionRule("levels", int, 1, 8, "depth of a new network (a fine-tune keeps its base model's)"),
    OptionRule(
        "keep_base",
        float,
        0,
        10,
        "weight of what the base model said of the pixels nobody painted, in a fine-tune "
        "whose classes are the base model's own (0: learn from the strokes alone)",
    ),
    OptionRule(
        "spread",
        float,
        0,
        10,
        "weight of the classes a pixel classifier fitted on the strokes gives the pixels "
        "nobody painted, where it is sure, in a run without the base model's classes "
        "(0: learn from the strokes alone)",
    ),
)
_RULES = {rule.name: rule for rule in PERSON_OPTIONS}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_whole(name: str, value: Any, low: int, high: int | None = None) -> None:
    """An input error naming ``name`` unless ``value`` is a whole number in ``low..high``."""
    if _is_int(value) and value >= low and (high is None or value <= high):
        return
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"
    raise InputError(f"must be a whole number {span}, not {value!r}", where=name)


def _require_number(name: str, value: Any, low: float, high: float) -> None:
    """An input error naming ``name`` unless ``value`` is a number in ``low..high``."""
    if not (_is_number(value) and low <= value <= high):
        raise InputError(f"must be a number from {low:g} to {high:g}, not {value!r}", where=name)


def _require_choice(name: str, value: Any, choices: Collection[str]) -> None:
    """An input error naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"must be one of {', '.join(choices)}, not {value!r}", where=name)


def crop_shape_for(crop_size: int | tuple[int, ...], dims: int, levels: int) -> tuple[int, ...]:
    """The size per axis of the crops a network of ``dims`` and ``levels`` trains on.

    Every size must be a multiple of ``2 ** levels``: each of the U-Net's poolings halves it
    (:func:`biosegment.engine.unet.size_multiple`). An input error naming ``crop_size`` says
    the nearest sizes that are.
    """
    sizes = (crop_size,) * dims if isinstance(crop_size, int) else tuple(crop_size)
    multiple = 2**levels
    if len(sizes) != dims:
        raise InputError(
            f"give one edge, or {dims} sizes for a {dims}-D network, not {crop_size!r}",
            where="crop_size",
        )
    bad = next((size for size in sizes if size < multiple or size % multiple), None)
    if bad is None:
        return sizes
    below = bad // multiple * multiple
    near = " or ".join(str(size) for size in (below, below + multiple) if size >= multiple)
    raise InputError(
        f"must be a multiple of {multiple} (2 ** levels, with levels {levels}), not {bad}; "
        f"for example {near}",
        where="crop_size",
    )


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """Every option of a training run; ``None`` means "not used" or "choose for me".

    Budget (at least one; none given means ``minutes = 3``):

    - ``minutes``: wall-clock time for the whole run, validation and saving included.
    - ``epochs``: epochs of ``steps_per_epoch`` batches (default: enough crops to see the
      labelled pixels once, at least 50).
    - ``max_steps``: optimizer steps in total.

    A new network (no base model): ``dims`` (2 or 3), ``feature_maps``, ``levels``, ``norm``.

    Optimisation: ``crop_size`` (an edge, or one size per axis; a multiple of ``2 ** levels``),
    ``batch_size``, ``learning_rate`` (None: chosen by :meth:`for_start`, lower for a
    fine-tune) with ``lr_schedule`` (``cosine`` decays to 2 %, or
    ``constant``), ``weight_decay``, ``dice_weight`` (a soft Dice term beside cross-entropy),
    ``class_weights`` (one per class, or ``"auto"``: from the inverse label frequencies),
    ``seed``.

    Learning from strokes: ``keep_base`` weighs the base model's own classes on the pixels
    nobody painted, in a fine-tune whose classes are the base model's (see
    :mod:`biosegment.engine.teacher`; the strokes are then also weighted to the class shares
    the base model sees). ``spread`` weighs, in every other run on strokes (a new network, or
    a base model that knows other classes), the classes a pixel classifier fitted on the
    strokes in a few seconds gives the unpainted pixels it is sure of (see
    :mod:`biosegment.engine.spread`; 0 by default: the strokes alone, since it did not clearly
    help mitochondria on the benchmark, benchmarks/RESULTS.md). Dense
    labels are never spread.

    Validation: ``validation_fraction`` of the labelled material is held out (whole slices,
    or whole painted strokes; see :func:`biosegment.engine.samples.split_validation`) and
    ``select_best_by`` picks the epoch kept as the model.

    Computation: ``precision`` (``auto`` = bf16 only where the hardware has it natively),
    ``device`` (None = the configured one), ``threads`` (CPU threads; 0 = the configured
    ``[engine] threads``, and 0 there lets PyTorch choose).
    """

    minutes: float | None = None
    epochs: int | None = None
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    dims: int = 2
    feature_maps: int = 8
    levels: int = 4
    norm: str = "instance"
    crop_size: int | tuple[int, ...] = 128
    batch_size: int = 16
    learning_rate: float | None = None
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    dice_weight: float = 0.0
    keep_base: float = 1.0
    spread: float = 0.0
    class_weights: str | tuple[float, ...] | None = None
    validation_fraction: float = 0.15
    select_best_by: str = "val_loss"
    precision: str = "auto"
    device: str | None = None
    threads: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        self._check_budget()
        self._check_network()
        self._check_optimisation()
        self._check_rest()

    # -- checks ------------------------------------------------------------------------------
    def _check_budget(self) -> None:
        for name in ("minutes", "epochs", "max_steps", "steps_per_epoch"):
            if getattr(self, name) is not None:
                _RULES[name].check(getattr(self, name))
        if self.minutes is None and self.epochs is None and self.max_steps is None:
            object.__setattr__(self, "minutes", DEFAULT_MINUTES)
        if self.minutes is not None:
            object.__setattr__(self, "minutes", float(self.minutes))

    def _check_network(self) -> None:
        if self.dims not in (2, 3) or not _is_int(self.dims):
            raise InputError(f"must be 2 or 3, not {self.dims!r}", where="dims")
        _RULES["feature_maps"].check(self.feature_maps)
        _RULES["levels"].check(self.levels)
        _require_choice("norm", self.norm, NORMS)

    def _check_optimisation(self) -> None:
        crop = self.crop_size
        if isinstance(crop, (list, tuple)):
            crop = tuple(crop)
            object.__setattr__(self, "crop_size", crop)
            sizes = crop
        else:
            sizes = (crop,)
        if not sizes or not all(_is_int(c) and 1 <= c <= 4096 for c in sizes):
            raise InputError(
                f"must be a whole number of pixels up to 4096 (or one per axis), not {crop!r}",
                where="crop_size",
            )
        if isinstance(crop, tuple) and len(crop) not in (2, 3):
            raise InputError("give one edge, or 2 or 3 sizes (one per axis)", where="crop_size")
        if not isinstance(crop, tuple):
            _RULES["crop_size"].check(crop)
        _RULES["batch_size"].check(self.batch_size)
        if self.learning_rate is not None:
            _RULES["learning_rate"].check(self.learning_rate)
        _require_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        for name in ("weight_decay", "dice_weight", "keep_base", "spread"):
            _require_number(name, getattr(self, name), 0, 10)
        weights = self.class_weights
        if isinstance(weights, (list, tuple)):
            weights = tuple(weights)
            if not weights or not all(_is_number(w) and w >= 0 for w in weights):
                raise InputError(
                    "must be one non-negative number per class, or 'auto'", where="class_weights"
                )
            object.__setattr__(self, "class_weights", tuple(float(w) for w in weights))
        elif weights is not None and weights != "auto":
            raise InputError(
                f"must be 'auto' or one number per class, not {weights!r}", where="class_weights"
            )

    def _check_rest(self) -> None:
        _require_number("validation_fraction", self.validation_fraction, 0, 0.5)
        _require_choice("select_best_by", self.select_best_by, SELECTION_METRICS)
        _require_choice("precision", self.precision, PRECISIONS)
        if self.device is not None and not (isinstance(self.device, str) and self.device.strip()):
            raise InputError("must be a device name such as auto, cpu or cuda", where="device")
        if not (_is_int(self.threads) and 0 <= self.threads <= 1024):
            raise InputError(
                f"must be a whole number from 0 (choose for me) up, not {self.threads!r}",
                where="threads",
            )
        _require_whole("seed", self.seed, 0)

    # -- views -------------------------------------------------------------------------------
    @property
    def time_budget_s(self) -> float | None:
        """The ``minutes`` budget in seconds (None: no time limit)."""
        return None if self.minutes is None else self.minutes * 60.0

    def network(self) -> dict:
        """U-Net keyword arguments for a new network."""
        return {name: getattr(self, name) for name in NETWORK_FIELDS}

    def budget_text(self) -> str:
        """The budget in words, e.g. ``3 min`` or ``10 epochs or 500 steps``."""
        parts = []
        if self.minutes is not None:
            parts.append(f"{self.minutes:g} min")
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}")
        if self.max_steps is not None:
            parts.append(f"{self.max_steps} step{'s' if self.max_steps != 1 else ''}")
        return " or ".join(parts)

    def for_start(self, *, fine_tune: bool) -> TrainingSettings:
        """These settings with the learning rate chosen for how the run starts (when not given):
        :data:`FINE_TUNE_LEARNING_RATE` from a base model, else
        :data:`NEW_NETWORK_LEARNING_RATE`."""
        if self.learning_rate is not None:
            return self
        chosen = FINE_TUNE_LEARNING_RATE if fine_tune else NEW_NETWORK_LEARNING_RATE
        return replace(self, learning_rate=chosen)

    def replace(self, **changes: Any) -> TrainingSettings:
        """A copy with some fields changed (checked like a new one)."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise InputError(_unknown_text(), where=unknown[0])
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """The settings as JSON-ready plain data (tuples become lists)."""
        data = asdict(self)
        for key in ("crop_size", "class_weights"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        return data

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSettings:
        """Settings from plain data (a job row, a request); an unknown key is an input error.

        Missing keys take their defaults; a ``None`` value counts as missing.
        """
        if not isinstance(data, dict):
            raise InputError("training settings must be an object", where="settings")
        known = set(cls.field_names())
        unknown = sorted(key for key in data if key not in known)
        if unknown:
            raise InputError(_unknown_text(), where=str(unknown[0]))
        return cls(**{key: value for key, value in data.items() if value is not None})


_DEFAULTS = {f.name: f.default for f in fields(TrainingSettings)}


def _unknown_text() -> str:
    return f"unknown training option; expected one of {', '.join(TrainingSettings.field_names())}"

"""Turning a training run's data and settings into the parts a :class:`Trainer` runs with.

:func:`build_parts` reads the labelled material, sets a validation part aside, loads the base
model or creates a new network, and builds the sample pool, the loss, the optimizer, the base
model's teacher (``keep_base``) and the card the weights will be saved with. It returns those
parts with the settings resolved for the run's start (a learning rate and a number of steps per
epoch chosen where none was given). The order of the random draws here (the network's
initialisation after seeding) is part of a repeatable run: the same seed gives the same
weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.checkpoint import load_model
from biosegment.engine.device import apply_threads, has_fast_bfloat16, resolve_device
from biosegment.engine.freed_memory import release_freed_memory
from biosegment.engine.losses import SegmentationLoss
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.model_card import ModelCard, default_classes
from biosegment.engine.precision import PRECISIONS
from biosegment.engine.samples import (
    LabelledStack,
    SamplePool,
    collect_stacks,
    describe_stacks,
    split_validation,
)
from biosegment.engine.spread import spread_strokes
from biosegment.engine.teacher import Teacher, classes_match, prior_weights
from biosegment.engine.train_data import TrainingData, as_pairs
from biosegment.engine.train_settings import TrainingSettings, crop_shape_for
from biosegment.engine.trainer import TrainingParts, TrainingSources
from biosegment.engine.unet import UNet
from biosegment.engine.validation import validation_label
from biosegment.errors import InputError

__all__ = ["build_parts", "BaseModel", "automatic_class_weights"]

#: A base model: a model file or folder, or a loaded network with its card.
BaseModel = Path | str | tuple[UNet, ModelCard]


def build_parts(
    data: TrainingData,
    output: Path | str,
    settings: TrainingSettings,
    *,
    base_model: BaseModel | None = None,
    augment: AugmentConfig | None = None,
) -> tuple[TrainingParts, TrainingSettings]:
    """The parts of a run and its settings resolved for the start; see the module docstring.

    Applies the settings' thread count to the process and seeds torch (the network's initial
    weights are part of the repeatable run).

    :raises InputError: for bad data or options, naming the pair, key or option.
    """
    if settings.threads:
        apply_threads(settings.threads)
    folder = Path(output)
    device = resolve_device(settings.device or "auto")
    autocast_dtype = _autocast_dtype(device, settings.precision)
    pairs = as_pairs(data.training, label="training")

    # Seed before building the network: its initial weights are part of the repeatable run.
    torch.manual_seed(settings.seed)
    base = _load_base(base_model) if base_model is not None else None
    settings = settings.for_start(fine_tune=base is not None)
    dims = base[0].dims if base else settings.dims
    normalisation = dict(data.normalisation) if data.normalisation is not None else None
    if normalisation is None:
        normalisation = dict(base[1].normalisation) if base else ModelCard().normalisation
    stacks = collect_stacks(pairs, dims=dims, normalisation=normalisation)
    if data.validation is not None:
        validation_stacks = collect_stacks(
            as_pairs(data.validation, label="validation"), dims=dims, normalisation=normalisation
        )
        train_stacks, validation_method = stacks, "given"
    else:
        train_stacks, validation_stacks, validation_method = split_validation(
            stacks, fraction=settings.validation_fraction
        )
    model = _network(settings.network(), base, data.classes, [*stacks, *validation_stacks])
    class_list = _class_list(data.classes, model.num_classes, base[1].classes if base else None)
    crop_shape = crop_shape_for(settings.crop_size, model.dims, model.levels)
    teacher = None
    if settings.keep_base > 0 and base is not None and classes_match(base[1].classes, class_list):
        # The base model's own classes on unpainted pixels: predicted once, before training.
        teacher = Teacher(copy.deepcopy(model).to(device))
        teacher.teach(train_stacks, device=device, autocast_dtype=autocast_dtype)
    spread = 0.0
    if teacher is None and settings.spread > 0:
        # No base model's classes to keep: the strokes are spread by a pixel classifier.
        if spread_strokes(train_stacks, num_classes=model.num_classes, seed=settings.seed):
            spread = settings.spread
    augment = augment or AugmentConfig()
    pool = SamplePool(train_stacks, crop_size=crop_shape, augment=augment)
    # Reading, splitting and teaching large slices freed far more than training keeps; on one
    # machine the web server's live previews allocate beside this run (engine.freed_memory).
    release_freed_memory()
    steps_per_epoch = settings.steps_per_epoch
    if steps_per_epoch is None:
        coverage = math.ceil(pool.labelled_pixels / (settings.batch_size * math.prod(crop_shape)))
        steps_per_epoch = min(max(coverage, 50), 1000)
    weights = _class_weights(settings.class_weights, train_stacks, model.num_classes)
    if weights is None and teacher is not None:
        # strokes weighted to the class shares the base model sees on the training slices
        weights = prior_weights(train_stacks, model.num_classes)
    model = model.to(device)
    loss = SegmentationLoss(
        num_classes=model.num_classes,
        dice_weight=settings.dice_weight,
        class_weights=weights,
        keep_base=settings.keep_base if teacher is not None else spread,
    )
    learning_rate = settings.learning_rate
    assert learning_rate is not None  # for_start chose one
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=settings.weight_decay
    )
    fraction = settings.validation_fraction if data.validation is None else None
    card_template = ModelCard(
        name=data.name or folder.name,
        classes=class_list,
        parent=(data.parent or base[2]) if base else data.parent,
        normalisation=dict(normalisation),
        pixel_size=dict(base[1].pixel_size) if base else {},
        training={
            "data": describe_stacks(train_stacks),
            "validation": {
                "method": validation_method,
                "fraction": fraction,
                "label": validation_label(validation_method, fraction),
                "data": describe_stacks(validation_stacks),
            },
            "params": {
                **settings.as_dict(),
                "time_budget_s": settings.time_budget_s,
                "steps_per_epoch": int(steps_per_epoch),
                "crop_size": list(crop_shape),
                "class_weights": weights,
                "keep_base": settings.keep_base if teacher is not None else 0.0,
                "spread": spread,
                "augment": augment.as_dict(),
                "device": str(device),
                "precision": "bf16" if autocast_dtype is not None else "fp32",
                "threads": torch.get_num_threads(),
            },
            **({"provenance": dict(data.provenance)} if data.provenance else {}),
        },
    )
    parts = TrainingParts(
        folder=folder,
        model=model,
        device=device,
        autocast_dtype=autocast_dtype,
        pool=pool,
        validation_stacks=validation_stacks,
        loss=loss,
        optimizer=optimizer,
        card_template=card_template,
        sources=TrainingSources(dims=dims, normalisation=dict(normalisation)),
        teacher=teacher,
        spread_seed=settings.seed if spread > 0 else None,
        boundary_class=data.boundary_class,
        evaluate_base=base is not None,
        validation_method=validation_method,
    )
    return parts, settings.replace(steps_per_epoch=int(steps_per_epoch))


def automatic_class_weights(stacks: Sequence[LabelledStack], num_classes: int) -> list[float]:
    """Cross-entropy weights from label frequencies: rare classes count more.

    Each class gets the inverse of its share of the labelled pixels, scaled so the weights
    average 1 and capped at 10 times the smallest; a class without pixels gets 1.
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    for stack in stacks:
        ids = stack.labels[stack.labels != IGNORE_LABEL]
        counts += np.bincount(ids.ravel(), minlength=num_classes)[:num_classes]
    present = counts > 0
    if not present.any():
        return [1.0] * num_classes
    inverse = np.where(present, counts.sum() / np.maximum(counts, 1), 0.0)
    inverse = np.minimum(inverse, inverse[present].min() * 10.0)
    inverse = inverse / inverse[present].mean()
    return [float(w) if present[i] else 1.0 for i, w in enumerate(inverse)]


def _class_weights(
    chosen: str | tuple[float, ...] | None, stacks: Sequence[LabelledStack], num_classes: int
) -> list[float] | None:
    """The settings' class weights, ``"auto"`` computed from ``stacks``; one per class."""
    if chosen is None:
        return None
    weights = automatic_class_weights(stacks, num_classes) if chosen == "auto" else chosen
    if len(weights) != num_classes:
        raise InputError(
            f"{len(weights)} class weights for {num_classes} classes", where="class_weights"
        )
    return [float(w) for w in weights]


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 where the hardware computes it natively (it is then 1.5-2x faster), else fp32."""
    if precision not in PRECISIONS:
        raise InputError(
            f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}",
            where="precision",
        )
    if precision == "bf16" or (precision == "auto" and has_fast_bfloat16(device)):
        return torch.bfloat16
    return None


def _highest_label(stacks: Sequence[LabelledStack]) -> tuple[int, str]:
    highest, source = -1, ""
    for stack in stacks:
        ids = stack.labels[stack.labels != IGNORE_LABEL]
        if ids.size and int(ids.max()) > highest:
            highest, source = int(ids.max()), stack.source
    return highest, source


def _adapt_output_classes(model: UNet, num_classes: int) -> UNet:
    """A copy of ``model`` with ``num_classes`` outputs; shared class rows keep their weights.

    Fine-tuning a 2-class model on annotations with a third class keeps everything the base
    learned except the new class's output row, which starts from a fresh initialisation.
    """
    config = dict(model.config, num_classes=num_classes)
    adapted = UNet(**config)
    state = model.state_dict()
    fresh = adapted.state_dict()
    shared = min(model.num_classes, num_classes)
    for key in ("decoder.output.weight", "decoder.output.bias"):
        fresh[key][:shared] = state[key][:shared]
    state.update({key: fresh[key] for key in ("decoder.output.weight", "decoder.output.bias")})
    adapted.load_state_dict(state)
    return adapted


def _load_base(base_model: BaseModel) -> tuple[UNet, ModelCard, str]:
    if isinstance(base_model, tuple):
        model, card = base_model
        # Train a copy: the caller's network (perhaps serving segmentations) stays as it was.
        return copy.deepcopy(model), card, card.name or "base model"
    path = Path(base_model)
    loaded, loaded_card = load_model(path)
    return loaded, loaded_card, str(path)


def _class_list(
    classes: Sequence[Mapping] | None, num_classes: int, fallback: list[dict] | None
) -> list[dict]:
    if classes is None:
        chosen = (
            fallback if fallback and len(fallback) == num_classes else default_classes(num_classes)
        )
    else:
        chosen = [dict(entry) for entry in classes]
    ids = sorted(int(entry.get("id", -1)) for entry in chosen)
    if ids != list(range(num_classes)):
        raise InputError(f"classes must have ids 0..{num_classes - 1}, got {ids}", where="classes")
    return sorted(chosen, key=lambda entry: int(entry["id"]))


def _network(
    network: Mapping,
    base: tuple[UNet, ModelCard, str] | None,
    classes: Sequence[Mapping] | None,
    stacks: Sequence[LabelledStack],
) -> UNet:
    """The network to train: the base model (with an output row per class) or a new one."""
    highest, highest_source = _highest_label(stacks)
    if base is not None:
        model = base[0]
        wanted = len(classes) if classes is not None else max(model.num_classes, highest + 1)
        if wanted != model.num_classes:
            model = _adapt_output_classes(model, wanted)
    else:
        config = dict(network)
        config.setdefault(
            "num_classes", len(classes) if classes is not None else max(2, highest + 1)
        )
        try:
            model = UNet(**config)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc), where="architecture") from None
    if highest >= model.num_classes:
        raise InputError(
            f"label id {highest} but the model has classes 0..{model.num_classes - 1}",
            source=highest_source,
            where="labels",
        )
    return model

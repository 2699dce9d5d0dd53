"""Score a network on the labelled material held out from training.

Held-out stacks are in memory already, so this predicts them directly instead of going through
the volume-level inference path: only the bounding box of each stack's labels (plus context)
is computed, which keeps validation cheap when the labels are a few scribbles on a large slice.
Large planes are cut into tiles with overlapping context so memory stays bounded. The scores
are those of :mod:`biosegment.engine.metrics`, plus the mean cross-entropy over labelled pixels
as the validation loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from biosegment.engine.metrics import IGNORE_LABEL, boundary_scores, segmentation_scores
from biosegment.engine.samples import LabelledStack
from biosegment.engine.unet import UNet, size_multiple

__all__ = ["predict_logits", "logit_tiles", "evaluate_stacks", "validation_label"]

# Context around the labelled box, and the largest plane computed in one piece: a network's
# activations for one 512² piece (and its margin) stay within a few hundred MB, where a 1024²
# piece took most of a gigabyte beside a fine-tune that holds its slices.
_CONTEXT = 64
_TILE = 512
_TILE_MARGIN = 48
# Sparse held-out labels are scored in windows of this edge (pixels) that hold some; below
# this labelled share a stack counts as sparse.
_WINDOW = 128
_WINDOW_CONTEXT = 32
_DENSE_SHARE = 0.25


def _forward_padded(
    model: UNet, image: np.ndarray, *, device: torch.device, autocast_dtype: torch.dtype | None
) -> torch.Tensor:
    """Logits ``(C, *spatial)`` (float32, CPU) of a scaled image of any spatial size."""
    multiple = size_multiple(model.levels)
    padding = [(0, -extent % multiple) for extent in image.shape]
    # Mirrored padding looks like tissue to the network; zeros would look like a black border.
    padded = np.pad(image, padding, mode="symmetric") if any(p[1] for p in padding) else image
    tensor = torch.from_numpy(np.ascontiguousarray(padded))[None, None].to(device)
    with torch.autocast(
        device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
    ):
        logits = model(tensor)[0]
    crop = (slice(None), *(slice(0, extent) for extent in image.shape))
    return logits[crop].float().cpu()


def predict_logits(
    model: UNet,
    image: np.ndarray,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Raw network output for one 2-D plane or 3-D stack already scaled to [0, 1].

    :param model: the network (put in eval mode by the caller).
    :param image: float32 ``(y, x)`` for 2-D models, ``(z, y, x)`` for 3-D models.
    :param device: where the network runs.
    :param autocast_dtype: ``torch.bfloat16`` for mixed precision, None for float32.
    :returns: float32 logits ``(num_classes, *image.shape)`` on the CPU.
    """
    height, width = image.shape[-2:]
    if model.dims == 3 or (height <= _TILE and width <= _TILE):
        return _forward_padded(model, image, device=device, autocast_dtype=autocast_dtype)
    logits = torch.empty((model.num_classes, height, width), dtype=torch.float32)
    for (rows, columns), tile in logit_tiles(
        model, image, device=device, autocast_dtype=autocast_dtype
    ):
        logits[:, rows, columns] = tile
    return logits


def logit_tiles(
    model: UNet,
    plane: np.ndarray,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[tuple[tuple[slice, slice], torch.Tensor]]:
    """A 2-D model's logits of one plane, a tile at a time: what :func:`predict_logits` puts
    together, for callers that keep less than a plane of logits per class.

    :param plane: ``(y, x)`` pixels, scaled to [0, 1] unless ``scale`` is given.
    :param scale: turns a piece of the plane into the network's input (an element-wise
        scaling, such as :func:`~biosegment.volumes.base.normalise`); applied to each tile
        with its margin, so the plane is never copied whole.
    :returns: ``((rows, columns), logits)`` per tile, the logits ``(classes, rows, columns)``
        float32 on the CPU; the tiles cover the plane once.
    """
    height, width = plane.shape
    if height <= _TILE and width <= _TILE:
        whole = plane if scale is None else scale(plane)
        logits = _forward_padded(model, whole, device=device, autocast_dtype=autocast_dtype)
        yield (slice(0, height), slice(0, width)), logits
        return
    for y0 in range(0, height, _TILE):
        for x0 in range(0, width, _TILE):
            y1, x1 = min(y0 + _TILE, height), min(x0 + _TILE, width)
            # Each tile sees a margin of its neighbours, so its border pixels have context.
            cy0, cx0 = max(y0 - _TILE_MARGIN, 0), max(x0 - _TILE_MARGIN, 0)
            cy1, cx1 = min(y1 + _TILE_MARGIN, height), min(x1 + _TILE_MARGIN, width)
            piece = plane[cy0:cy1, cx0:cx1]
            tile = _forward_padded(
                model,
                piece if scale is None else scale(piece),
                device=device,
                autocast_dtype=autocast_dtype,
            )
            yield (
                (slice(y0, y1), slice(x0, x1)),
                tile[:, y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0],
            )


def _labelled_box(labels: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero((labels != IGNORE_LABEL).any(axis=(0, 2)))
    columns = np.flatnonzero((labels != IGNORE_LABEL).any(axis=(0, 1)))
    height, width = labels.shape[1:]
    return (
        slice(max(rows[0] - _CONTEXT, 0), min(rows[-1] + 1 + _CONTEXT, height)),
        slice(max(columns[0] - _CONTEXT, 0), min(columns[-1] + 1 + _CONTEXT, width)),
    )


def _labelled_parts(
    model: UNet,
    stack: LabelledStack,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(truth, logits)`` of the parts of a stack that hold labels.

    A 2-D model predicts only windows of :data:`_WINDOW` pixels that hold held-out strokes
    (with context), so scoring a few strokes on a large slice costs a few small predictions;
    a 3-D model, or labels covering most of a slice, predict the labelled box whole.
    """
    sparse = stack.labelled_pixels < _DENSE_SHARE * stack.labels.size
    if model.dims == 3 or not sparse:
        rows, columns = _labelled_box(stack.labels)
        image = stack.scaled(stack.image[:, rows, columns])
        truth = stack.labels[:, rows, columns]
        if model.dims == 3:
            logits = predict_logits(model, image, device=device, autocast_dtype=autocast_dtype)
        else:
            logits = torch.stack(
                [
                    predict_logits(model, plane, device=device, autocast_dtype=autocast_dtype)
                    for plane in image
                ],
                dim=1,
            )
        yield truth, logits
        return
    height, width = stack.labels.shape[1:]
    for index in range(stack.labels.shape[0]):
        labelled = stack.labels[index] != IGNORE_LABEL
        for y0 in range(0, height, _WINDOW):
            for x0 in range(0, width, _WINDOW):
                y1, x1 = min(y0 + _WINDOW, height), min(x0 + _WINDOW, width)
                if not labelled[y0:y1, x0:x1].any():
                    continue
                cy0, cx0 = max(y0 - _WINDOW_CONTEXT, 0), max(x0 - _WINDOW_CONTEXT, 0)
                cy1, cx1 = min(y1 + _WINDOW_CONTEXT, height), min(x1 + _WINDOW_CONTEXT, width)
                image = stack.scaled(stack.image[index, cy0:cy1, cx0:cx1])
                logits = predict_logits(model, image, device=device, autocast_dtype=autocast_dtype)
                part = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
                truth = stack.labels[index, y0:y1, x0:x1]
                yield truth[None], logits[(slice(None), *part)][:, None]


def evaluate_stacks(
    model: UNet,
    stacks: Sequence[LabelledStack],
    *,
    device: torch.device,
    class_names: Sequence[str],
    boundary_class: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict:
    """Validation loss and scores of ``model`` on held-out stacks.

    :param model: the network; it is switched to eval mode and back to training mode.
    :param stacks: held-out material from :func:`biosegment.engine.samples.split_validation`.
    :param device: where the network runs.
    :param class_names: one name per class, keys of the per-class scores.
    :param boundary_class: membrane class for Rand error and VI; only fully labelled stacks
        are scored that way (scribbles say nothing about object boundaries).
    :param autocast_dtype: mixed-precision type, or None for float32.
    :returns: ``val_loss`` (mean cross-entropy over labelled pixels) and the keys of
        :func:`biosegment.engine.metrics.segmentation_scores`.
    """
    was_training = model.training
    model.eval()
    truths, predictions, boundary_rows = [], [], []
    loss_sum, labelled = 0.0, 0
    try:
        with torch.no_grad():
            for stack in stacks:
                if not stack.labelled_pixels:
                    continue
                for truth, logits in _labelled_parts(model, stack, device, autocast_dtype):
                    target = torch.from_numpy(truth.astype(np.int64))
                    loss_sum += float(
                        F.cross_entropy(
                            logits[None], target[None], ignore_index=IGNORE_LABEL, reduction="sum"
                        )
                    )
                    labelled += int((truth != IGNORE_LABEL).sum())
                    predicted = logits.argmax(dim=0).numpy().astype(np.uint8)
                    truths.append(truth.ravel())
                    predictions.append(predicted.ravel())
                    if boundary_class is not None and stack.is_fully_labelled:
                        boundary = boundary_scores(truth, predicted, boundary_class=boundary_class)
                        if boundary["slices_scored"]:
                            boundary_rows.append(boundary)
    finally:
        model.train(was_training)
    if not truths:
        return {"val_loss": None, "labelled_pixels": 0}
    scores = segmentation_scores(
        np.concatenate(truths),
        np.concatenate(predictions),
        num_classes=len(class_names),
        class_names=class_names,
    )
    scores["val_loss"] = loss_sum / labelled if labelled else None
    if boundary_rows:
        scores.update(_weighted_boundary_mean(boundary_rows))
    return scores


def _weighted_boundary_mean(rows: list[dict]) -> dict:
    weights = np.array([row["slices_scored"] for row in rows], dtype=np.float64)
    merged = {}
    for key in ("rand_error", "vi_split", "vi_merge", "vi"):
        values = np.array([row[key] for row in rows], dtype=np.float64)
        mean = float(np.sum(values * weights) / weights.sum())
        merged[key] = None if math.isnan(mean) else mean
    merged["slices_scored"] = int(weights.sum())
    return merged


def validation_label(method: str | None, fraction: float | None) -> str:
    """Which pixels a run's validation scores were computed on, in words for people.

    ``method`` and ``fraction`` are the card's ``training.validation`` entry (see
    :func:`biosegment.engine.samples.split_validation`).
    """
    share = f"{round(fraction * 100):g} % of " if isinstance(fraction, (int, float)) else ""
    return {
        "strokes": f"on {share}your strokes, held out",
        "slices": f"on {share}the labelled slices, held out",
        "regions": f"on {share}each labelled slice (its right-hand part), held out",
        "given": "on the validation data given",
    }.get(method or "", "no validation: nothing was held out")

"""Short summaries of catalog rows for the dashboard: a model's best metrics, a dataset's classes.

Models store their training history as one dict per epoch (SPEC 5). The dashboard and the model
page show the same thing for every model: the validation scores of one epoch, the one with the
lowest validation loss (the epoch training keeps by default), never a training loss beside a
Dice. A history without validation scores shows the best value of each other metric (lowest for
losses and errors, highest for the rest), training metrics still left out.
Beside them the model page says which pixels those scores were computed on (the held-out part,
from the card) and, for a fine-tune on a dataset with ground truth, its score on slices nobody
painted. Classes come from the dataset's project in ``setup.json``, with background (0) always first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biosegment.errors import NotFoundError

__all__ = ["best_metrics", "card_scores", "dataset_classes", "BACKGROUND", "DEFAULT_CLASSES"]

BACKGROUND = {"id": 0, "name": "background", "color": "#3a7bff"}
DEFAULT_CLASSES = [{"id": 1, "name": "class 1", "color": "#ff3030"}]
_LOWER_IS_BETTER = ("loss", "error", "vi", "rand")
#: Per-epoch bookkeeping that is not a measure of quality.
_NOT_METRICS = frozenset(
    {
        "epoch",
        "step",
        "steps",
        "elapsed_s",
        "seconds",
        "labelled_pixels",
        "learning_rate",
        "lr",
        "batch_size",
    }
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in _LOWER_IS_BETTER)


def card_scores(card_path: Path) -> dict[str, Any]:
    """What the model card beside a checkpoint says of its scores: ``validation`` (which
    pixels were held out, in words), ``ground_truth`` (scores on slices nobody painted) and,
    for a fine-tune, ``comparison`` with its base model on those pixels; empty where the card is absent or unreadable, as for a bare legacy checkpoint."""
    try:
        training = json.loads(card_path.read_text(encoding="utf-8")).get("training") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    validation = training.get("validation") if isinstance(training, dict) else None
    scores: dict[str, Any] = {}
    if isinstance(validation, dict) and isinstance(validation.get("label"), str):
        scores["validation"] = validation["label"]
    truth = training.get("ground_truth") if isinstance(training, dict) else None
    if isinstance(truth, dict):
        scores["ground_truth"] = {
            key: value
            for key, value in truth.items()
            if key in ("label", "slices") or _is_number(value)
        }
    comparison = training.get("comparison") if isinstance(training, dict) else None
    if isinstance(comparison, dict):
        # a fine-tune against its base model: on held-out strokes, and on the ground truth
        scores["comparison"] = {
            where: {key: entry.get(key) for key in ("base", "verdict", "delta", "text")}
            for where, entry in comparison.items()
            if where in ("strokes", "ground_truth") and isinstance(entry, dict)
        }
    return scores


def best_metrics(metrics: Any) -> dict[str, float]:
    """Best value per metric over a list of per-epoch dicts (a plain dict is returned as is)."""
    if isinstance(metrics, dict):
        return {
            k: v
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    epochs = [epoch for epoch in metrics or [] if isinstance(epoch, dict)]
    validated = [e for e in epochs if _is_number(e.get("val_loss"))]
    if validated:
        chosen = min(validated, key=lambda e: e["val_loss"])
        return {
            key: value
            for key, value in chosen.items()
            if key not in _NOT_METRICS and not key.startswith("train") and _is_number(value)
        }
    best: dict[str, float] = {}
    for epoch in epochs:
        if not isinstance(epoch, dict):
            continue
        for key, value in epoch.items():
            if (
                key in _NOT_METRICS
                or key.startswith("train")
                or isinstance(value, bool)
                or not isinstance(value, (int, float))
            ):
                continue
            if key not in best:
                best[key] = value
            elif _lower_is_better(key):
                best[key] = min(best[key], value)
            else:
                best[key] = max(best[key], value)
    return best


def dataset_classes(catalog, dataset: dict) -> list[dict]:
    """Background plus the classes of the dataset's project (or one default class)."""
    classes = None
    project = dataset.get("project")
    if project:
        try:
            classes = catalog.project(project).get("classes")
        except NotFoundError:
            classes = None
    listed = [c for c in (classes or DEFAULT_CLASSES) if isinstance(c, dict) and c.get("id") != 0]
    return [dict(BACKGROUND)] + [
        {
            "id": int(c["id"]),
            "name": str(c.get("name", c["id"])),
            "color": str(c.get("color", "#ff3030")),
        }
        for c in listed
    ]

"""What a model card says of scores on data kept out of training, in words a person reads.

A benchmark writes its evaluation into the card under ``training.evaluation``: one entry per
piece of held-out data (the demo model's ``isbi_2012_slices_25_29`` and
``neuroproof_z200_249``), each a dict of scores, and ``training.provenance.held_out`` says in a
sentence what was never used for training. The model page and the dashboard show these beside
the training history's metrics, each score saying what it was computed on ("Dice 0.807 on ISBI
2012 slices 25-29 (held out)"), so a model trained without a validation split no longer looks
as if nobody had measured it.

Cards are read once per change of the file (size and modification time), since the dashboard
asks for every model's scores at each poll.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

__all__ = ["held_out_scores", "describe_data", "score_words"]

#: How each score is called in words; the first one a result has is its headline score.
_SCORE_WORDS = {
    "membrane_dice": "Dice",
    "mean_dice": "Dice",
    "dice": "Dice",
    "mean_iou": "IoU",
    "iou": "IoU",
    "pixel_error": "pixel error",
    "rand_error": "Rand error",
    "vi": "VI",
    "accuracy": "accuracy",
    "f1": "F1",
}
#: Entries of an evaluation that measure speed or bookkeeping, not quality.
_NOT_SCORES = ("seconds", "megavoxel", "pixels", "slices", "steps")
#: Data set names as their authors write them.
_PROPER_NAMES = {"isbi": "ISBI", "neuroproof": "NeuroProof", "cremi": "CREMI", "snemi": "SNEMI"}
_CACHE_SIZE = 64

_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe_data(key: str) -> str:
    """``isbi_2012_slices_25_29`` -> ``ISBI 2012 slices 25-29``; ``neuroproof_z200_249`` ->
    ``NeuroProof z 200-249``: two numbers in a row are a range, a letter before a number an axis."""
    words: list[str] = []
    for token in key.split("_"):
        axis = re.fullmatch(r"([a-z])(\d+)", token)
        if axis:
            words += [axis.group(1), axis.group(2)]
        else:
            words.append(_PROPER_NAMES.get(token.lower(), token))
    joined: list[str] = []
    for word in words:
        # a range is two numbers after a word that counts things (slices 25 29, z 200 249),
        # never a year after a name (ISBI 2012 slices)
        if (
            joined
            and word.isdigit()
            and joined[-1].isdigit()
            and len(joined) >= 2
            and not joined[-2][0].isupper()
        ):
            joined[-1] = f"{joined[-1]}-{word}"
        else:
            joined.append(word)
    return " ".join(joined)


def score_words(metric: str) -> str:
    """A score's name in words: ``membrane_dice`` -> ``Dice``."""
    return _SCORE_WORDS.get(metric, metric.replace("_", " "))


def _entry(key: str, values: dict) -> dict[str, Any] | None:
    scores = {
        metric: float(value)
        for metric, value in values.items()
        if _is_number(value) and not any(word in metric for word in _NOT_SCORES)
    }
    if not any(metric in _SCORE_WORDS for metric in scores):
        return None  # a record of the machine or the run (cores, load), not of data scored
    label = values.get("label")
    data = label if isinstance(label, str) and label.strip() else describe_data(key)
    ordered = sorted(scores, key=lambda m: list(_SCORE_WORDS).index(m) if m in _SCORE_WORDS else 99)
    parts = [f"{score_words(m)} {scores[m]:.3f}" for m in ordered]
    where = f"on {data} (held out)"
    return {
        "data": data,
        "scores": {m: scores[m] for m in ordered},
        "text": f"{', '.join(parts)} {where}",
        "short": f"{parts[0]} {where}",
    }


def _from_card(card: dict) -> dict[str, Any]:
    training = card.get("training") if isinstance(card, dict) else None
    if not isinstance(training, dict):
        return {}
    found: dict[str, Any] = {}
    evaluation = training.get("evaluation")
    if isinstance(evaluation, dict):
        entries = [
            _entry(key, values) for key, values in evaluation.items() if isinstance(values, dict)
        ]
        listed = [entry for entry in entries if entry is not None]
        if listed:
            found["held_out"] = listed
    validation = training.get("validation")
    if (
        isinstance(validation, dict)
        and validation.get("method") not in (None, "none")
        and isinstance(validation.get("label"), str)
    ):
        # what the training history's validation scores (the "best metrics") were computed on
        found["metrics_on"] = validation["label"]
    provenance = training.get("provenance")
    note = provenance.get("held_out") if isinstance(provenance, dict) else None
    if isinstance(note, str) and note.strip():
        found["held_out_note"] = note.strip()
    return found


def held_out_scores(card_path: Path) -> dict[str, Any]:
    """``held_out`` (a list of ``data``, ``scores``, ``text``, ``short``), ``held_out_note``
    and ``metrics_on`` (the pixels the training history's validation scores were computed on)
    from the card at ``card_path``; empty when it has none or cannot be read."""
    path = Path(card_path)
    try:
        stat = path.stat()
    except OSError:
        return {}
    stamp = (stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        found = _from_card(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        found = {}
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[path] = (stamp, found)
    return found

"""Is a fine-tuned model better or worse than the model it started from? In numbers and words.

A fine-tune is scored against its base model on the same pixels: the strokes held out from
training (every snapshot of a running job, and its end) and, where the dataset has ground
truth, the slices nobody painted. :func:`compare` turns two score records into the verdict
the viewer, the jobs page and the model card show: ``better``, ``worse`` or ``same`` (within
:data:`SAME_WITHIN`), by how much, on which figure and which pixels.
"""

from __future__ import annotations

import math

__all__ = ["compare", "SAME_WITHIN", "FIGURES"]

#: Figures compared, the first one both records have wins, and whether higher is better.
FIGURES = (("mean_dice", True), ("mean_iou", True), ("pixel_error", False), ("val_loss", False))
_NAMES = {
    "mean_dice": "mean Dice",
    "mean_iou": "mean IoU",
    "pixel_error": "pixel error",
    "val_loss": "validation loss",
}
#: Differences smaller than this count as no change.
SAME_WITHIN = 0.005


def _number(record: dict | None, key: str) -> float | None:
    value = (record or {}).get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def compare(base: dict | None, current: dict | None, *, base_name: str, where: str) -> dict | None:
    """The verdict of ``current`` against ``base`` (None when they share no figure).

    :param base: the base model's scores (an epoch-0 record, or ground-truth scores).
    :param current: the fine-tuned weights' scores on the same pixels.
    :param base_name: the base model's name, for the words.
    :param where: which pixels were scored, in words (``on 15 % of your strokes, held out``).
    :returns: ``{"base", "metric", "base_value", "value", "delta", "verdict", "where", "text"}``;
        ``delta`` is signed so that positive is better whichever way the figure runs.
    """
    for metric, higher_is_better in FIGURES:
        before, after = _number(base, metric), _number(current, metric)
        if before is None or after is None:
            continue
        gain = after - before if higher_is_better else before - after
        verdict = "same" if abs(gain) < SAME_WITHIN else ("better" if gain > 0 else "worse")
        name = _NAMES[metric]
        if verdict == "same":
            text = f"as good as {base_name} ({name} {after:.3f} {where})"
        else:
            text = (
                f"{verdict} than {base_name} by {abs(after - before):.3f} "
                f"({name} {after:.3f} against {before:.3f} {where})"
            )
        return {
            "base": base_name,
            "metric": metric,
            "base_value": round(before, 4),
            "value": round(after, 4),
            "delta": round(gain, 4),
            "verdict": verdict,
            "where": where,
            "text": text,
        }
    return None

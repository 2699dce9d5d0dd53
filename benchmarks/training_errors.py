"""Where a membrane model goes wrong on ISBI 2012: per slice, and by distance to the label edge.

Segments all 30 ISBI slices with the product's ``segment_volume`` and prints the pixel error of
each slice, the mean over the training slices 0-24 and the test slices 25-29, and for the test
slices how the wrong pixels spread over bands of distance to the nearest pixel of the other
class in the labels. Errors that sit next to a label edge are questions of where an annotator
put the membrane's border; errors far from any edge are real mistakes (a missed membrane, an
organelle taken for one).

    python benchmarks/training_errors.py biosegment/demo/model
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isbi_training import (  # noqa: E402  (the helper sits beside this script)
    TEST_SLICES,
    TRAIN_SLICES,
    default_isbi_folder,
    isbi_labels,
    predict_slices,
)

from biosegment.engine.checkpoint import load_model  # noqa: E402

__all__ = ["main", "distance_bands"]

#: Upper ends (pixels, inclusive) of the distance bands reported.
_BANDS = (1, 2, 3, 5, None)


def distance_bands(truth: np.ndarray, wrong: np.ndarray) -> list[dict]:
    """Share of pixels, share of errors and error rate per band of distance to a label edge.

    :param truth: class ids ``(z, y, x)`` of a two-class labelling.
    :param wrong: boolean ``(z, y, x)``, True where the prediction differs.
    """
    distance = np.stack(
        [
            np.maximum(
                ndimage.distance_transform_edt(plane == 1),
                ndimage.distance_transform_edt(plane == 0),
            )
            for plane in truth
        ]
    )
    rows, low, errors = [], 0.0, max(int(wrong.sum()), 1)
    for high in _BANDS:
        band = distance > low if high is None else (distance > low) & (distance <= high)
        rows.append(
            {
                "band": f"> {low:g} px" if high is None else f"{low:g}-{high:g} px",
                "pixels": float(band.mean()),
                "errors": float((wrong & band).sum() / errors),
                "error_rate": float(wrong[band].mean()) if band.any() else 0.0,
            }
        )
        low = float(high) if high is not None else low
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder or checkpoint")
    parser.add_argument("--data", type=Path, default=default_isbi_folder())
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model)
    every_slice = range(TRAIN_SLICES.start, TEST_SLICES.stop)
    prediction, _ = predict_slices(model, args.data, every_slice)
    truth = isbi_labels(args.data, every_slice)
    wrong = prediction != truth
    per_slice = wrong.mean(axis=(1, 2))
    print("pixel error per slice: " + " ".join(f"{e:.3f}" for e in per_slice))
    print(
        f"training slices 0-24: {per_slice[list(TRAIN_SLICES)].mean():.4f}, "
        f"test slices 25-29: {per_slice[list(TEST_SLICES)].mean():.4f}"
    )
    test = list(TEST_SLICES)
    print("test slices by distance to the nearest label edge:")
    for row in distance_bands(truth[test], wrong[test]):
        print(
            f"  {row['band']:>9}: {row['pixels']:6.1%} of pixels, {row['errors']:6.1%} of "
            f"errors, {row['error_rate']:6.1%} wrong"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

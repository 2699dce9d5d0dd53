"""How well each fill of the annotation editor takes one object of real EM with one click.

Objects come from the ground truth of held-out slices: ISBI 2012 slices 25-29 (ssTEM; an
object is a 4-connected cell, a region of non-membrane pixels) and NeuroProof training_sample2
slices 200, 210, ..., 240 (FIB-SEM; an object is a 4-connected piece of one neuron id in the
slice). Objects under 300 pixels are left out. Each object is clicked once, at its most
interior pixel (the maximum of its distance transform), with the whole slice on screen, and
each fill is scored by:

- recall: the share of the object's pixels the fill covers;
- leak: the share of the filled pixels outside the object (membrane pixels count as outside).

The figures printed are the median over objects (and the mean leak, which large floods move).
The fills:

- ``grey tolerance 12`` and ``40``: the old "follows the image" fill (4-connected pixels
  within the tolerance of the clicked grey level, fill.js), computed here by scikit-image's
  flood, which is the same rule;
- ``edges (default)``: the product's edge fill (:func:`biosegment.webui.fill_regions.edge_basins`:
  the watershed basin of the inverted, Gaussian-smoothed image);
- ``take this object``: the connected object of the bundled model's segmentation under the
  click (:func:`biosegment.webui.fill_regions.connected_object`), the model segmenting with the
  product's own inference;
- the candidates the edge fill was chosen from: the watershed of Sobel edges of the smoothed
  image, Felzenszwalb and SLIC superpixels.

    python benchmarks/bench_fills.py [--json out.json]

It prints the CPU model and load average: the timings (per slice) depend on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from skimage.filters import gaussian, sobel
from skimage.measure import label as connected_labels
from skimage.morphology import h_minima
from skimage.segmentation import felzenszwalb, flood, slic, watershed

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from isbi_training import default_isbi_folder, machine_note  # noqa: E402
from membrane_data import default_neuroproof_folder  # noqa: E402

from biosegment.engine.checkpoint import load_model  # noqa: E402
from biosegment.engine.inference import segment_volume  # noqa: E402
from biosegment.volumes import open_volume  # noqa: E402
from biosegment.webui.fill_regions import connected_object, edge_basins  # noqa: E402

MODEL = HERE.parent / "biosegment" / "demo" / "model"
ISBI_SLICES = range(25, 30)
NEUROPROOF_SLICES = range(200, 250, 10)
MIN_OBJECT_PIXELS = 300

# A fill: the slice's grey levels (and the model's labels) -> a function from click to mask.
Fill = Callable[[np.ndarray, np.ndarray], Callable[[tuple[int, int]], np.ndarray]]


def isbi_part() -> tuple[np.ndarray, list[np.ndarray]]:
    folder = default_isbi_folder()
    image = tifffile.imread(folder / "train-volume.tif")[ISBI_SLICES.start : ISBI_SLICES.stop]
    truth = tifffile.imread(folder / "train-labels.tif")[ISBI_SLICES.start : ISBI_SLICES.stop]
    cells = [connected_labels(plane == 255, connectivity=1) for plane in truth]
    return image, cells


def neuroproof_part() -> tuple[np.ndarray, list[np.ndarray]]:
    folder = default_neuroproof_folder()
    z = list(NEUROPROOF_SLICES)
    image = tifffile.imread(folder / "image.tif")[z]
    bodies = tifffile.imread(folder / "bodies.tif")[z]
    pieces = []
    for plane in bodies:
        out = np.zeros(plane.shape, dtype=np.int64)
        for body in np.unique(plane[plane > 0]):
            parts = connected_labels(plane == body, connectivity=1)
            out[parts > 0] = parts[parts > 0] + out.max()
        pieces.append(out)
    return image, pieces


def objects(labels: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """(mask, most interior pixel) of each object of at least MIN_OBJECT_PIXELS."""
    found = []
    sizes = np.bincount(labels.ravel())
    for index in np.flatnonzero(sizes >= MIN_OBJECT_PIXELS):
        if index == 0:
            continue
        mask = labels == index
        depth = ndimage.distance_transform_edt(mask)
        seed = np.unravel_index(int(np.argmax(depth)), mask.shape)
        found.append((mask, (int(seed[0]), int(seed[1]))))
    return found


def segment(image: np.ndarray) -> np.ndarray:
    """The bundled model's class ids for ``image`` (slices), by the product's inference."""
    model, card = load_model(MODEL)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "part.tif"
        tifffile.imwrite(path, image, photometric="minisblack")
        with open_volume(path) as volume:
            return segment_volume(volume, model, device="cpu", normalisation=card.normalisation)


def by_basins(make: Callable[[np.ndarray], np.ndarray]) -> Fill:
    def fill(grey, _labels):
        basins = make(grey)
        return lambda seed: basins == basins[seed]

    return fill


def tolerance(levels: int) -> Fill:
    return lambda grey, _labels: lambda seed: flood(grey, seed, tolerance=levels, connectivity=1)


def take_object(grey, labels):
    return lambda seed: connected_object(labels, *seed).mask


def sobel_basins(grey: np.ndarray, sigma: float = 3.0, depth: float = 4.0) -> np.ndarray:
    edges = sobel(gaussian(grey.astype(np.float32), sigma, preserve_range=True))
    return watershed(edges, connected_labels(h_minima(edges, depth), connectivity=1))


FILLS: dict[str, Fill] = {
    "grey tolerance 12 (old)": tolerance(12),
    "grey tolerance 40 (old)": tolerance(40),
    "edges (default)": by_basins(edge_basins),
    "take this object": take_object,
    "candidate: Sobel watershed": by_basins(sobel_basins),
    "candidate: Felzenszwalb 300": by_basins(
        lambda g: felzenszwalb(g, scale=300, sigma=1.0, min_size=50)
    ),
    "candidate: SLIC 300": by_basins(
        lambda g: slic(g, n_segments=300, compactness=0.1, channel_axis=None, start_label=1)
    ),
}


def score(fill: Fill, image, predicted, truth) -> dict:
    recalls, leaks, seconds = [], [], 0.0
    for grey, labels, objects_of_slice in zip(image, predicted, truth):
        started = time.perf_counter()
        at = fill(grey, labels)
        seconds += time.perf_counter() - started
        for mask, seed in objects_of_slice:
            started = time.perf_counter()
            filled = at(seed)
            seconds += time.perf_counter() - started
            count = int(filled.sum())
            recalls.append(float((filled & mask).sum()) / float(mask.sum()))
            leaks.append(float((filled & ~mask).sum()) / count if count else 0.0)
    return {
        "objects": len(recalls),
        "median_recall": round(float(np.median(recalls)), 3),
        "median_leak": round(float(np.median(leaks)), 3),
        "mean_leak": round(float(np.mean(leaks)), 3),
        "seconds_per_slice": round(seconds / len(image), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict = {"machine": machine_note(), "parts": {}}
    print(
        f"CPU: {results['machine']['cpu']} ({results['machine']['cores']} cores), load "
        f"average {results['machine']['load_average_1_5_15']}"
    )
    parts = {
        "ISBI 2012 z25-29 (cells)": isbi_part(),
        "NeuroProof z200-240 step 10 (neuron pieces)": neuroproof_part(),
    }
    for name, (image, labelled) in parts.items():
        predicted = segment(image)
        truth = [objects(plane) for plane in labelled]
        print(f"\n{name}: {sum(len(t) for t in truth)} objects")
        print(f"  {'fill':30s} {'recall':>7s} {'leak':>6s} {'mean leak':>9s} {'s/slice':>8s}")
        results["parts"][name] = {}
        for fill_name, fill in FILLS.items():
            figures = score(fill, image, predicted, truth)
            results["parts"][name][fill_name] = figures
            print(
                f"  {fill_name:30s} {figures['median_recall']:7.2f} {figures['median_leak']:6.2f}"
                f" {figures['mean_leak']:9.2f} {figures['seconds_per_slice']:8.3f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

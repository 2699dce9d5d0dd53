"""Build the demo dataset that ships inside the package (``biosegment/demo/isbi2012/``).

Takes ISBI 2012 training slices 25-29 (the slices the demo model was not trained on) with
their labels, converts the labels to BioSegment class ids (0 background = cell interior,
1 membrane) and writes both as zlib-compressed multi-page TIFFs.

    python benchmarks/make_demo_dataset.py [--isbi ../shared/data/isbi2012]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

DEMO_SLICES = range(25, 30)
OUT = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "isbi2012"
VOXEL_SIZE_NM = (50.0, 4.0, 4.0)  # z, y, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--isbi",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012",
    )
    args = parser.parse_args()
    raw = tifffile.imread(args.isbi / "train-volume.tif")[list(DEMO_SLICES)]
    isbi_labels = tifffile.imread(args.isbi / "train-labels.tif")[list(DEMO_SLICES)]
    labels = (isbi_labels == 0).astype(np.uint8)  # ISBI: 0 = membrane -> class 1
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in (("raw.tif", raw), ("labels.tif", labels)):
        tifffile.imwrite(
            OUT / name,
            data,
            compression="zlib",
            compressionargs={"level": 9},
            imagej=False,
            metadata={"axes": "ZYX"},
            resolution=(1e3 / VOXEL_SIZE_NM[2], 1e3 / VOXEL_SIZE_NM[1]),
            resolutionunit="MICROMETER",
        )
        print(f"{OUT / name}: {data.shape} {data.dtype}, {(OUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
